r"""Exact policy gradients on small finite-horizon MDPs: dynamic programming and enumeration.

This module is the oracle of the estimator tests: on an MDP small enough to list every trajectory,
the expectation and the covariance of any gradient estimator are computed exactly, so "unbiased" is
checked to 1e-10 instead of within sampling noise.

The MDP
-------
States ``s in {0..S-1}``, actions ``a in {0..A-1}``, horizon ``T``, discount ``gamma in [0, 1]``,
initial distribution ``mu0(s)``, transitions ``P[s, a, s'] = p(s'|s, a)`` and rewards ``R[s, a]``
(or ``R[s, a, s']``, a reward that also depends on the next state). A trajectory is
``tau = (s_0, a_0, r_0, ..., s_{T-1}, a_{T-1}, r_{T-1})``; the policy sees the one-hot vector of the
state, ``x(s) = e_s`` (so any purepg ``CategoricalPolicy(S, A, hidden=...)`` acts on it). The objective is

    J(theta) = E_tau[ sum_{t=0}^{T-1} gamma^t r_t ].                                          (T1)

Dynamic programming
-------------------
Write ``pi(a|s)`` for the policy table and ``rbar(s, a) = sum_s' P[s, a, s'] R[s, a, s']`` for the
expected reward (``rbar = R`` for 2-D rewards). The state distributions run forward,

    d_0 = mu0,    d_{t+1}(s') = sum_{s, a} d_t(s) pi(a|s) P[s, a, s'],                          (T2)

and the action values run backward (``Q_t`` discounts from time ``t`` on),

    Q_{T-1} = rbar,   V_t(s) = sum_a pi(a|s) Q_t(s, a),   Q_t = rbar + gamma P V_{t+1}.         (T3)

So ``J = sum_s mu0(s) V_0(s)``. Differentiating (T1) through the policy only (the likelihood-ratio
argument of docs/math/reinforce.md, eq. (1.3), grouped by time step) gives the policy-gradient theorem for a finite horizon,

    grad J = sum_t gamma^t sum_s d_t(s) sum_a pi(a|s) grad log pi(a|s) Q_t(s, a).              (T4)

The inner sum is a weighted sum of score rows ``grad log pi(a|e_s)`` over the ``S A`` pairs with
weights ``W(s, a) = sum_t gamma^t d_t(s) pi(a|s) Q_t(s, a)``: one call of ``pol.log_prob_grad``.

Enumeration
-----------
Every trajectory has probability ``p(tau) = mu0(s_0) prod_t pi(a_t|s_t) P[s_t, a_t, s_{t+1}]``. With
2-D rewards the trajectory ends at ``a_{T-1}`` (``S^T A^T`` of them); with 3-D rewards ``r_{T-1}`` depends
on ``s_T``, which is enumerated too (``S^{T+1} A^T``). For values ``v_k = f(tau_k)`` (K, P) of an estimator,

    E[f] = sum_k p_k v_k,    Cov[f] = sum_k p_k (v_k - E f)(v_k - E f)^T,                       (T5)

exactly. An estimator that averages a batch of ``N`` independent trajectories is a function of ``K^N``
ordered batches; :func:`exact_moments` enumerates those for batch-dependent baselines.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import gymnasium
import numpy as np

from purepg import _check

MAX_TRAJECTORIES = 200_000   # enumeration refuses beyond this many trajectories (or ordered batches)
_ROW_SUM_TOL = 1e-10         # |sum - 1| allowed in probability rows (float64 normalisation leaves ~1e-16)


@dataclass(frozen=True)
class TabularMDP:
    """A finite-horizon MDP (see the module docstring); validated on construction.

    Parameters
    ----------
    P : ndarray (S, A, S)
        ``P[s, a, s'] = p(s'|s, a)``; every row ``P[s, a, :]`` sums to 1.
    R : ndarray (S, A) or (S, A, S)
        Rewards ``r(s, a)`` or ``r(s, a, s')``.
    mu0 : ndarray (S,)
        Initial state distribution.
    T : int
        Horizon (number of steps), ``T >= 1``.
    gamma : float
        Discount in ``[0, 1]``, eq. (T1).
    """

    P: np.ndarray
    R: np.ndarray
    mu0: np.ndarray
    T: int
    gamma: float = 1.0

    def __post_init__(self):
        P, R, mu0 = _check_mdp(self.P, self.R, self.mu0, self.T, self.gamma)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "mu0", mu0)
        object.__setattr__(self, "T", int(self.T))
        object.__setattr__(self, "gamma", float(self.gamma))

    @property
    def S(self):
        return self.P.shape[0]

    @property
    def A(self):
        return self.P.shape[1]

    @property
    def next_state_reward(self):
        """True when rewards are ``r(s, a, s')`` (R has shape (S, A, S))."""
        return self.R.ndim == 3


def _probability_rows(x, name, fix):
    rows = x.reshape(-1, x.shape[-1])                            # (n, S)
    if np.any(rows < 0):
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmin(x)), x.shape))
        raise ValueError(f"{name}: expected probabilities >= 0, got {float(x[idx])!r} at index {idx}. Fix: {fix}")
    err = np.abs(rows.sum(axis=1) - 1.0)                         # (n,)
    if np.any(err > _ROW_SUM_TOL):
        k = int(np.argmax(err))
        where = f" in row {tuple(int(i) for i in np.unravel_index(k, x.shape[:-1]))}" if x.ndim > 1 else ""
        raise ValueError(f"{name}: expected probabilities summing to 1 (within {_ROW_SUM_TOL:g}), got a sum of "
                         f"{float(rows[k].sum())!r}{where}. Fix: {fix}")


def _check_mdp(P, R, mu0, T, gamma):
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] < 1 or P.shape[1] < 1:
        raise ValueError(f"P: expected shape (S, A, S) with S, A >= 1, got {P.shape}. "
                         "Fix: index transitions as P[s, a, s_next].")
    S, A = P.shape[:2]
    _probability_rows(P, "P", "normalise, e.g. P / P.sum(axis=-1, keepdims=True).")
    R = np.asarray(R, dtype=np.float64)
    if R.shape not in ((S, A), (S, A, S)):
        raise ValueError(f"R: expected shape ({S}, {A}) or ({S}, {A}, {S}), got {R.shape}. "
                         "Fix: give r(s, a) or r(s, a, s_next).")
    if not np.all(np.isfinite(R)):
        raise ValueError("R: expected finite rewards, got a nan or inf. Fix: replace non-finite rewards.")
    mu0 = np.asarray(mu0, dtype=np.float64)
    if mu0.shape != (S,):
        raise ValueError(f"mu0: expected shape ({S},), got {mu0.shape}. Fix: one probability per state.")
    _probability_rows(mu0, "mu0", "normalise, e.g. mu0 / mu0.sum().")
    _check.positive_int(T, "T", "pass an integer horizon, e.g. T=3")
    _check.in_unit_interval(gamma, "gamma", "pass a discount, e.g. gamma=0.99")
    return P, R, mu0


def random_mdp(rng: np.random.Generator, S: int, A: int, T: int, *, gamma: float = 1.0,
               next_state_reward: bool = False) -> TabularMDP:
    """A random MDP: Dirichlet(1) rows for ``P`` and ``mu0``, standard normal rewards.

    Parameters
    ----------
    rng : numpy.random.Generator
    S, A, T : int
        Number of states, of actions, horizon.
    gamma : float
        Discount in [0, 1].
    next_state_reward : bool
        Draw ``R`` of shape (S, A, S) (``r(s, a, s')``) instead of (S, A).
    """
    _check.generator(rng)
    P = rng.dirichlet(np.ones(S), size=(S, A))                   # (S, A, S)
    mu0 = rng.dirichlet(np.ones(S))                              # (S,)
    R = rng.standard_normal((S, A, S) if next_state_reward else (S, A))
    return TabularMDP(P / P.sum(-1, keepdims=True), R, mu0 / mu0.sum(), T, gamma)


def one_hot(s, S: int) -> np.ndarray:
    """One-hot float64 encoding ``x(s) = e_s``: int array (...,) -> (..., S)."""
    return np.eye(S)[np.asarray(s, dtype=np.int64)]


def _check_policy(pol, mdp):
    if not getattr(pol, "discrete", False) or pol.obs_dim != mdp.S or pol.n_actions != mdp.A:
        got = (f"discrete={getattr(pol, 'discrete', None)}, obs_dim={getattr(pol, 'obs_dim', None)}, "
               f"n_actions={getattr(pol, 'n_actions', None)}")
        raise ValueError(f"pol: expected a categorical policy with obs_dim={mdp.S} (one-hot state) and "
                         f"n_actions={mdp.A}, got {got}. Fix: purepg.CategoricalPolicy({mdp.S}, {mdp.A}, hidden=...).")


def _state_action_pairs(S, A):
    """All pairs (s, a) in row-major order: one-hot obs (S A, S) and actions (S A,)."""
    s, a = np.divmod(np.arange(S * A), A)
    return one_hot(s, S), a


def policy_table(pol, theta, mdp: TabularMDP) -> np.ndarray:
    """``pi[s, a] = pi_theta(a | e_s)`` (S, A) for a categorical policy on one-hot states."""
    _check_policy(pol, mdp)
    obs, act = _state_action_pairs(mdp.S, mdp.A)                 # (SA, S), (SA,)
    return np.exp(pol.log_prob(theta, obs, act)).reshape(mdp.S, mdp.A)


def expected_reward(mdp: TabularMDP) -> np.ndarray:
    """``rbar[s, a] = sum_s' P[s, a, s'] R[s, a, s']`` (S, A); ``R`` itself for 2-D rewards."""
    return np.einsum("sat,sat->sa", mdp.P, mdp.R) if mdp.next_state_reward else mdp.R


def state_distributions(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    """``d[t, s] = Pr(s_t = s)`` (T, S), forward recursion (T2)."""
    d = np.empty((mdp.T, mdp.S))
    d[0] = mdp.mu0
    for t in range(mdp.T - 1):
        d[t + 1] = np.einsum("s,sa,sat->t", d[t], pi, mdp.P)    # (S,)
    return d


def action_values(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    """``Q[t, s, a]`` (T, S, A), backward recursion (T3); ``Q_t`` discounts from time t on."""
    rbar = expected_reward(mdp)                                  # (S, A)
    Q = np.empty((mdp.T, mdp.S, mdp.A))
    Q[-1] = rbar
    for t in range(mdp.T - 2, -1, -1):
        V_next = (pi * Q[t + 1]).sum(axis=1)                     # (S,)
        Q[t] = rbar + mdp.gamma * mdp.P @ V_next                 # (S, A)
    return Q


def exact_return(mdp: TabularMDP, pol, theta) -> float:
    """``J(theta)``, eq. (T1), as ``sum_s mu0(s) V_0(s)``."""
    pi = policy_table(pol, theta, mdp)                           # (S, A)
    Q = action_values(mdp, pi)                                   # (T, S, A)
    return float(mdp.mu0 @ (pi * Q[0]).sum(axis=1))


def exact_gradient(mdp: TabularMDP, pol, theta) -> np.ndarray:
    """``grad J(theta)`` (P,), eq. (T4): one weighted sum of score rows over the (s, a) pairs."""
    pi = policy_table(pol, theta, mdp)                           # (S, A)
    d = state_distributions(mdp, pi)                             # (T, S)
    Q = action_values(mdp, pi)                                   # (T, S, A)
    disc = mdp.gamma ** np.arange(mdp.T)                         # (T,)
    W = np.einsum("t,ts,sa,tsa->sa", disc, d, pi, Q)             # (S, A)
    obs, act = _state_action_pairs(mdp.S, mdp.A)
    return pol.log_prob_grad(theta, obs, act, W.ravel())


class Enumeration(NamedTuple):
    """Every trajectory of an MDP under a policy table, with its probability.

    ``states`` (K, T) int64, ``actions`` (K, T) int64, ``rewards`` (K, T) float64 and ``prob`` (K,),
    ``sum(prob) = 1``. ``S`` is the number of states (for the one-hot observations).
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    prob: np.ndarray
    S: int


def trajectory_count(mdp: TabularMDP) -> int:
    """Number of trajectories :func:`enumerate_trajectories` lists: ``S^T A^T`` (times S for 3-D R)."""
    return mdp.S ** (mdp.T + mdp.next_state_reward) * mdp.A ** mdp.T


def _check_count(count, limit, what, fix):
    if count > limit:
        _check.fail(what, f"at most max_count={limit} to enumerate", count, fix)


def enumerate_trajectories(mdp: TabularMDP, pi: np.ndarray, *, max_count: int = MAX_TRAJECTORIES) -> Enumeration:
    """List every trajectory with ``p(tau) = mu0(s_0) prod_t pi(a_t|s_t) P[s_t, a_t, s_{t+1}]``.

    Parameters
    ----------
    mdp : TabularMDP
    pi : ndarray (S, A)
        Policy table (rows sum to 1), e.g. from :func:`policy_table`: the sampling (behaviour) policy.
    max_count : int
        Refuse (``ValueError``, stating the count) when :func:`trajectory_count` exceeds it.
    """
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (mdp.S, mdp.A):
        raise ValueError(f"pi: expected shape ({mdp.S}, {mdp.A}), got {pi.shape}. Fix: use policy_table(pol, theta, mdp).")
    _probability_rows(pi, "pi", "normalise each row of the policy table.")
    _check_count(trajectory_count(mdp), max_count, "trajectories",
                 "use a smaller S, A or T, or raise max_count knowingly.")
    S, A, T = mdp.S, mdp.A, mdp.T
    s = np.arange(S)[:, None]                                    # (K, 1): grown one step at a time
    a = np.empty((S, 0), dtype=np.int64)
    prob = mdp.mu0.copy()                                        # (K,)
    for t in range(T):
        if t > 0:                                                # branch on s_t ~ P[s_{t-1}, a_{t-1}]
            prob = (prob[:, None] * mdp.P[s[:, -1], a[:, -1]]).ravel()
            s = np.column_stack([np.repeat(s, S, axis=0), np.tile(np.arange(S), len(s))])
            a = np.repeat(a, S, axis=0)
        prob = (prob[:, None] * pi[s[:, -1]]).ravel()            # branch on a_t ~ pi(.|s_t)
        s = np.repeat(s, A, axis=0)
        a = np.column_stack([np.repeat(a, A, axis=0), np.tile(np.arange(A), len(a))])
    rew = mdp.R[s, a] if not mdp.next_state_reward else None
    if mdp.next_state_reward:                                    # branch on s_T for r_{T-1}
        prob = (prob[:, None] * mdp.P[s[:, -1], a[:, -1]]).ravel()
        s_next = np.column_stack([s[:, 1:].repeat(S, axis=0), np.tile(np.arange(S), len(s))])
        s, a = np.repeat(s, S, axis=0), np.repeat(a, S, axis=0)
        rew = mdp.R[s, a, s_next]
    return Enumeration(s.astype(np.int64), a.astype(np.int64), rew, prob, S)


def as_batch(enum: Enumeration):
    """The enumeration as a stacked estimator batch: obs (K, T, S) one-hot, act (K, T), rew (K, T)."""
    return one_hot(enum.states, enum.S), enum.actions, enum.rewards


class Moments(NamedTuple):
    """Exact ``mean`` (P,) and covariance ``cov`` (P, P) of an estimator; ``total_variance = trace(cov)``."""

    mean: np.ndarray
    cov: np.ndarray

    @property
    def total_variance(self):
        return float(np.trace(self.cov))


def moments(values, prob) -> Moments:
    """Eq. (T5) for values ``v_k`` (K, P) taken with probabilities ``prob`` (K,)."""
    values = np.asarray(values, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    if values.ndim != 2 or prob.shape != (values.shape[0],):
        raise ValueError(f"values, prob: expected shapes (K, P) and (K,), got {values.shape} and {prob.shape}. "
                         "Fix: one row of values per enumerated trajectory.")
    mean = prob @ values                                         # (P,)
    dev = values - mean                                          # (K, P)
    return Moments(mean, dev.T @ (prob[:, None] * dev))


def exact_moments(estimator: Callable, enum: Enumeration, *, batch_size: int = 1,
                  max_count: int = MAX_TRAJECTORIES) -> Moments:
    """Exact moments of ``estimator(obs, act, rew) -> (P,)`` over batches of ``batch_size`` trajectories.

    Calls the estimator once per ordered batch (``K^batch_size`` calls, lists of arrays as input), so it
    covers estimators whose baseline depends on the batch; for per-trajectory estimators the faster
    route is ``moments(estimator(..., per_trajectory=True), enum.prob)`` on :func:`as_batch`.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}. Fix: pass e.g. batch_size=2.")
    K = len(enum.prob)
    _check_count(K ** batch_size, max_count, f"ordered batches ({K} trajectories ^ batch_size {batch_size})",
                 "use a smaller MDP or batch_size.")
    obs, act, rew = as_batch(enum)
    idx = np.indices((K,) * batch_size).reshape(batch_size, -1).T   # (K^n, n)
    values = np.stack([estimator(list(obs[b]), list(act[b]), list(rew[b])) for b in idx])
    return moments(values, np.prod(enum.prob[idx], axis=1))


class TabularMDPEnv(gymnasium.Env):
    """The MDP as a ``gymnasium.Env``: one-hot float64 observations (S,), ``Discrete(A)`` actions.

    ``reset`` draws ``s_0 ~ mu0``; ``step(a)`` draws ``s' ~ P[s, a]``, returns ``r(s, a)`` (or
    ``r(s, a, s')``) and ``terminated=True`` after the T-th step (the horizon ends the task: nothing is
    bootstrapped past it, so it is a termination, not a truncation). Rewards are undiscounted; the
    discount ``mdp.gamma`` belongs to the estimator. ``info`` holds the state index ``"s"`` and time ``"t"``.
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp: TabularMDP):
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp: expected a TabularMDP, got {type(mdp).__name__}. Fix: build one with TabularMDP(...).")
        self.mdp = mdp
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(mdp.S,), dtype=np.float64)
        self.action_space = gymnasium.spaces.Discrete(mdp.A)
        self._s, self._t = None, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._s, self._t = int(self.np_random.choice(self.mdp.S, p=self.mdp.mu0)), 0
        return one_hot(self._s, self.mdp.S), {"s": self._s, "t": 0}

    def step(self, action):
        if self._s is None or self._t >= self.mdp.T:
            raise gymnasium.error.ResetNeeded("step: the episode is over (or never started). Fix: call reset().")
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an integer in [0, {self.mdp.A}), got {action!r}. "
                             "Fix: sample from env.action_space or the policy.")
        s, a = self._s, int(action)
        s_next = int(self.np_random.choice(self.mdp.S, p=self.mdp.P[s, a]))
        r = self.mdp.R[s, a, s_next] if self.mdp.next_state_reward else self.mdp.R[s, a]
        self._s, self._t = s_next, self._t + 1
        return one_hot(s_next, self.mdp.S), float(r), self._t >= self.mdp.T, False, {"s": s_next, "t": self._t}
