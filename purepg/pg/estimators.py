r"""Policy-gradient estimators: from a batch of trajectories to a (P,) estimate of grad J.

Batch format
------------
A trajectory is ``obs`` (T, obs_dim) float64, ``act`` (T,) int64 (categorical) or (T, act_dim) float64
(Gaussian), ``rew`` (T,) float64, with ``T >= 1``; step t is ``(s_t, a_t, r_t)``. A batch of N
trajectories is given either as lists (tuples) of such arrays -- lengths ``T_i`` may differ -- or as
stacked arrays ``obs`` (N, T, obs_dim), ``act`` (N, T[, act_dim]), ``rew`` (N, T). Per-step extras
(``values``, ``logp_behaviour``) follow the format of ``rew``. One trajectory is a batch with N = 1.
Every estimator returns the batch mean ``(1/N) sum_i e_i`` (P,), or the rows ``e_i`` (N, P) with
``per_trajectory=True`` (their spread gives a standard error; :mod:`purepg.verify.tabular` takes exact
moments of them). The objective is ``J(theta) = E[sum_t gamma^t r_t]`` (``gamma = 1``: docs/math/reinforce.md, eq. (1.3)).

Write ``g_t = grad_theta log pi_theta(a_t|s_t)`` (the score), ``R = sum_t gamma^t r_t`` (total return)
and ``Q_t = sum_{t'>=t} gamma^(t'-t) r_t'`` (reward-to-go, :func:`purepg.pg.returns.reward_to_go`).

On-policy
---------
Total return (docs/math/reinforce.md, eq. (1.5); Williams 1992):

    e = (sum_t g_t) (R - b).                                                                 (E1)

Reward-to-go (docs/math/causality.md, eq. (2.2)): past rewards multiply future scores with zero mean,
so dropping them keeps the expectation and usually lowers the variance:

    e = sum_t gamma^t g_t (Q_t - b_t).                                                       (E2)

The ``gamma^t`` makes (E2) unbiased for the discounted J; code that drops it estimates another vector.

Baselines ``b``: a constant, a per-parameter constant vector (P,) or per-step values ``b_t = V(s_t)``
leave (E1)-(E2) unbiased, because ``E[g_t | s_t, past] = sum_a grad pi(a|s_t) = grad 1 = 0``.
``"mean"`` and ``"optimal"`` are *estimated from the batch itself*, so they are not independent of
``e_i``: with the plain batch mean (E1: ``b = mean_i R_i``; E2: ``b_t = mean_i Q_{i,t}``),

    E[e_i] = E[g_i R_i] - (1/N) E[g_i R_i] - (1/N) sum_{j != i} E[g_i] E[R_j] = (1 - 1/N) grad J,

exactly, for equal-length batches (the estimate is shrunk by (N-1)/N; a single trajectory gives 0).
``"optimal"`` is the variance-optimal constant per parameter (docs/math/baselines.md, eqs. (3.2)-(3.3)),
``b_k = E[g_k^2 R] / E[g_k^2]`` (:func:`purepg.pg.baselines.optimal_baseline`) and its reward-to-go analogue
(:func:`purepg.pg.baselines.optimal_baseline_rtg`, with the scores ``gamma^t g_t``), likewise from the batch
(bias O(1/N)). Passing the exact constants (e.g. from :mod:`purepg.verify.tabular`) removes the bias.

Off-policy (docs/math/offpolicy.md)
-----------------------------------
Data come from the behaviour policy ``pi_theta`` (its log-probabilities ``logp_behaviour`` are given);
the gradient is taken at ``theta'``. Ratios ``rho_t = pi_theta'(a_t|s_t) / pi_theta(a_t|s_t)``; the
transition probabilities cancel in ``p_theta'(tau) / p_theta(tau) = prod_t rho_t``; ``g'_t`` is the score
at ``theta'``. Whole-trajectory weights (the first off-policy display, with reward-to-go):

    e = (prod_t rho_t) sum_t gamma^t g'_t Q_t.                                               (E3)

Per-decision weights: the term ``g'_t gamma^t' r_t'`` (t' >= t) depends only on the trajectory up to
step t', so its likelihood ratio is that prefix's, ``prod_{t''<=t'} rho_t''``:

    e = sum_t g'_t sum_{t'>=t} gamma^t' r_t' prod_{t''=0}^{t'} rho_t''.                       (E4)

First-order approximation (docs/math/offpolicy.md, eq. (4.5)): one ratio per step, the ratio of
state distributions and the ratios of later steps dropped,

    e = sum_t rho_t gamma^t g'_t Q_t,                                                         (E5)

equal to (E2) when theta' = theta and biased otherwise.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from purepg import _check
from purepg.pg.baselines import mean_baseline, optimal_baseline, optimal_baseline_rtg
from purepg.pg.returns import discounted_returns

__all__ = ["reinforce", "reinforce_rtg", "offpolicy_whole", "offpolicy_per_decision",
           "offpolicy_first_order", "offpolicy_notes_literal"]


# ----------------------------------------------------------------------------- batch format


class Steps(NamedTuple):
    """A batch flattened to M steps: ``obs`` (M, d), ``act`` (M,[k]), ``rew`` (M,), trajectory index
    ``traj`` (M,), time ``t`` (M,), ``last`` (M,) bool, and ``starts`` (N,) offsets of trajectories."""

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    traj: np.ndarray
    t: np.ndarray
    last: np.ndarray
    starts: np.ndarray


def _items(x, name, N, stacked_ndim):
    """The argument as a stacked array (ndim ``stacked_ndim``) or as a list of N per-trajectory items."""
    if isinstance(x, (list, tuple)):
        if len(x) != N:
            raise ValueError(f"{name}: expected {N} trajectories (one per entry of obs), got {len(x)}. "
                             f"Fix: pass one {name} array per trajectory.")
        return list(x)
    arr = np.asarray(x)
    if arr.ndim != stacked_ndim or arr.shape[0] != N:
        raise ValueError(f"{name}: expected a list of {N} arrays or a stacked array of {stacked_ndim} "
                         f"dimensions with {N} rows, got shape {arr.shape}. Fix: match the format of obs.")
    return arr


def _flatten(x, name, lengths, tail, dtype):
    """Concatenate per-trajectory arrays of shape (T_i, *tail) to (M, *tail), checking each T_i."""
    N = len(lengths)
    x = _items(x, name, N, 2 + len(tail))
    if isinstance(x, np.ndarray):
        if np.any(lengths != lengths[0]):
            raise ValueError(f"{name}: expected a list of arrays (the trajectories have lengths "
                             f"{lengths.tolist()}), got a stacked array of shape {x.shape}. Fix: pass a list.")
        if x.shape[1:] != (lengths[0], *tail):
            raise ValueError(f"{name}: expected shape {(N, int(lengths[0]), *tail)} matching obs, got "
                             f"{x.shape}. Fix: one entry per step of each trajectory.")
        x = x.reshape(-1, *tail)                                   # (M, *tail)
        return x if dtype is None else x.astype(dtype, copy=False)
    for i, xi in enumerate(x):
        shape = np.shape(xi)
        if shape != (lengths[i], *tail):
            raise ValueError(f"{name}[{i}]: expected shape {(int(lengths[i]), *tail)} (one entry per step "
                             f"of obs[{i}]), got {shape}. Fix: pass matching per-step arrays.")
    return np.concatenate([np.asarray(xi, dtype=dtype) for xi in x])


def _finite(x, name):
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: expected finite values, got {float(x[~np.isfinite(x)][0])!r}. "
                         "Fix: remove or replace non-finite entries.")
    return x


def _steps(pol, obs, act, rew) -> Steps:
    """Validate and flatten a batch (module docstring, "Batch format")."""
    if not isinstance(obs, (list, tuple)):
        obs = np.asarray(obs)
        if obs.ndim == 2:                                         # one trajectory -> batch of one
            obs, act, rew = obs[None], np.asarray(act)[None], np.asarray(rew)[None]
        elif obs.ndim != 3:
            raise ValueError(f"obs: expected (T, obs_dim), (N, T, obs_dim) or a list of (T_i, obs_dim) arrays, "
                             f"got shape {obs.shape}. Fix: one row per step, one array per trajectory.")
    N = len(obs)
    if N == 0:
        raise ValueError("obs: expected at least one trajectory, got 0. Fix: pass a non-empty batch.")
    lengths = np.array([np.shape(o)[0] if np.ndim(o) == 2 else -1 for o in obs])  # (N,)
    if np.any(lengths < 1):
        i = int(np.argmax(lengths < 1))
        raise ValueError(f"obs[{i}]: expected shape (T, {pol.obs_dim}) with T >= 1, got {np.shape(obs[i])}. "
                         "Fix: drop empty trajectories; one row per step.")
    o = _finite(_flatten(obs, "obs", lengths, (pol.obs_dim,), np.float64), "obs")
    a = _flatten(act, "act", lengths, () if pol.discrete else (pol.act_dim,),
                 None if pol.discrete else np.float64)
    r = _finite(_flatten(rew, "rew", lengths, (), np.float64), "rew")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])      # (N,)
    traj = np.repeat(np.arange(N), lengths)                      # (M,)
    t = np.arange(len(r)) - starts[traj]                         # (M,)
    return Steps(o, a, r, traj, t, t == lengths[traj] - 1, starts)


def _per_step(x, name, st: Steps):
    """Per-step extras (``values``, ``logp_behaviour``) in the format of ``rew``: (M,)."""
    lengths = np.diff(np.append(st.starts, len(st.rew)))
    if not isinstance(x, (list, tuple)) and len(lengths) == 1 and np.ndim(x) == 1:
        x = np.asarray(x)[None]                                  # one trajectory
    return _finite(_flatten(x, name, lengths, (), np.float64), name)


def _gamma(gamma):
    return _check.in_unit_interval(gamma, "gamma", "pass a discount, e.g. gamma=0.99")


def _suffix_sums(x, st: Steps, gamma):
    """``y_t = sum_{t'>=t} gamma^(t'-t) x_t'`` within each trajectory (M,): one call of the returns kernel."""
    zeros = np.zeros_like(x)
    return discounted_returns(x, st.last, zeros, zeros, gamma)  # terminated at each last step: no bootstrap


def _prefix_sums(x, st: Steps):
    """``c_t = sum_{t''<=t} x_t''`` within each trajectory (M,)."""
    return np.concatenate([np.cumsum(xi) for xi in np.split(x, st.starts[1:])])


# ----------------------------------------------------------------------------- score sums


def _score_sums(pol, theta, st: Steps, w, per_trajectory, b=None, h=None):
    """``e_i = sum_t (w_t - b h_t) g_t`` per trajectory: rows (N, P) or their mean (P,).

    ``b`` is None or a per-parameter vector (P,) multiplying ``sum_t h_t g_t``. The mean is one or two
    VJPs (``pol.log_prob_grad``, no (M, P) matrix); the rows need the score matrix.
    """
    N = len(st.starts)
    if per_trajectory:
        scores = pol.score(theta, st.obs, st.act)                # (M, P)
        rows = np.add.reduceat(scores * w[:, None], st.starts, axis=0)  # (N, P)
        if b is not None:
            rows -= b * np.add.reduceat(scores * h[:, None], st.starts, axis=0)
        return rows
    est = pol.log_prob_grad(theta, st.obs, st.act, w)            # (P,)
    if b is not None:
        est = est - b * pol.log_prob_grad(theta, st.obs, st.act, h)
    return est / N


def _baseline_kind(baseline, values, P):
    if baseline is None:
        baseline = "none"
    if values is not None:
        if not (isinstance(baseline, str) and baseline == "none"):
            raise ValueError(f"baseline: expected 'none' when values are given, got {baseline!r}. "
                             "Fix: pass either baseline=... or values=..., not both.")
        return "values"
    if isinstance(baseline, str):
        if baseline not in ("none", "mean", "optimal"):
            raise ValueError(f"baseline: expected 'none', 'mean', 'optimal', a number or a ({P},) array, "
                             f"got {baseline!r}. Fix: pick one of these.")
        return baseline
    b = np.asarray(baseline)
    if b.dtype.kind not in "biuf" or b.shape not in ((), (P,)) or not np.all(np.isfinite(b)):
        raise ValueError(f"baseline: expected a finite number or a finite ({P},) array, got {type(baseline).__name__} "
                         f"of shape {b.shape}. Fix: one constant, or one constant per parameter.")
    return "scalar" if b.ndim == 0 else "vector"


def _with_baseline(pol, theta, st, psi, h, baseline, values, per_trajectory, mean, optimal):
    """``e_i = sum_t h_t g_t (psi_t - b_t)`` for every baseline kind (E1: h = 1; E2: h = gamma^t).

    ``mean()`` gives the batch-mean baseline per step (M,), ``optimal()`` the per-parameter one (P,).
    """
    kind = _baseline_kind(baseline, values, pol.num_params)
    if kind in ("vector", "optimal"):
        b = np.asarray(baseline, dtype=np.float64) if kind == "vector" else optimal()
        return _score_sums(pol, theta, st, h * psi, per_trajectory, b, h)
    b_t = {"values": lambda: _per_step(values, "values", st), "scalar": lambda: float(baseline),
           "mean": mean, "none": lambda: 0.0}[kind]()            # (M,) or scalar
    return _score_sums(pol, theta, st, h * (psi - b_t), per_trajectory)


def _scores_by_trajectory(pol, theta, st, h):
    """Per-trajectory lists of ``h_t g_t`` (T_i, P), for the optimal baselines."""
    scores = pol.score(theta, st.obs, st.act) * h[:, None]       # (M, P)
    return np.split(scores, st.starts[1:])


# ----------------------------------------------------------------------------- on-policy


def reinforce(pol, theta, obs, act, rew, *, gamma=1.0, baseline="none", values=None, per_trajectory=False):
    """REINFORCE with the total return, eq. (E1): ``(1/N) sum_i (sum_t g_it) (R_i - b)``.

    Implements docs/math/reinforce.md, eq. (1.5), ``E[(sum_t grad log pi(a_t|s_t)) (sum_t r_t)]``, with the
    discount of ``J = E[sum_t gamma^t r_t]`` inside R (gamma = 1: undiscounted) and a baseline.

    Parameters
    ----------
    pol : purepg policy;  theta : ndarray (P,)
    obs, act, rew : one trajectory or a batch (module docstring, "Batch format")
    gamma : float in [0, 1]
    baseline : "none" (or None) | "mean" | "optimal" | float | ndarray (P,)
        ``"mean"``: batch mean of R (estimate shrunk by (N-1)/N, see the module docstring);
        ``"optimal"``: ``b_k = E[g_k^2 R] / E[g_k^2]`` over the batch; a number or (P,) vector: constants.
    values : per-step baselines ``b_t`` (format of ``rew``), e.g. V(s_t); excludes ``baseline``.
    per_trajectory : bool
        Return the rows e_i (N, P) instead of their mean (P,).

    Returns
    -------
    ndarray (P,), or (N, P) with ``per_trajectory``. The mean costs one or two VJPs; ``"optimal"`` and
    ``per_trajectory`` form the (M, P) score matrix of the M steps.
    """
    st, gamma = _steps(pol, obs, act, rew), _gamma(gamma)
    R = _suffix_sums(st.rew, st, gamma)[st.starts]               # (N,) total returns
    h = np.ones(len(st.rew))                                     # (M,)
    return _with_baseline(
        pol, theta, st, R[st.traj], h, baseline, values, per_trajectory,
        mean=lambda: mean_baseline(R),
        optimal=lambda: optimal_baseline(np.add.reduceat(pol.score(theta, st.obs, st.act), st.starts), R))


def reinforce_rtg(pol, theta, obs, act, rew, *, gamma=1.0, baseline="none", values=None, per_trajectory=False):
    """REINFORCE with reward-to-go (causality), eq. (E2): ``(1/N) sum_i sum_t gamma^t g_it (Q_it - b_t)``.

    Implements docs/math/causality.md, eq. (2.2), ``E[sum_t grad log pi(a_t|s_t) sum_{t'>=t} r_t']``; for
    gamma < 1 the factor ``gamma^t`` keeps it unbiased for the discounted J (module docstring).

    Parameters
    ----------
    As :func:`reinforce`, except ``baseline``: ``"mean"`` is the batch mean of ``Q_t`` at each step t
    (over the trajectories that reach t); ``"optimal"`` is ``b_k = E[S_k U_k] / E[S_k^2]`` with
    ``S = sum_t gamma^t g_t`` and ``U = sum_t gamma^t g_t Q_t`` (:func:`purepg.pg.baselines.optimal_baseline_rtg`).
    """
    st, gamma = _steps(pol, obs, act, rew), _gamma(gamma)
    Q = _suffix_sums(st.rew, st, gamma)                          # (M,)
    h = gamma ** st.t                                            # (M,)

    def mean():
        b = np.array([mean_baseline(Q[st.t == t]) for t in range(st.t.max() + 1)])  # (T_max,)
        return b[st.t]

    return _with_baseline(
        pol, theta, st, Q, h, baseline, values, per_trajectory, mean=mean,
        optimal=lambda: optimal_baseline_rtg(_scores_by_trajectory(pol, theta, st, h), np.split(Q, st.starts[1:])))


# ----------------------------------------------------------------------------- off-policy


def _offpolicy(pol, theta_prime, obs, act, rew, logp_behaviour, gamma):
    """Flattened batch, log-ratios ``log rho_t`` (M,) and ``gamma^t`` (M,)."""
    st, gamma = _steps(pol, obs, act, rew), _gamma(gamma)
    logp_b = _per_step(logp_behaviour, "logp_behaviour", st)     # (M,)
    log_rho = pol.log_prob(theta_prime, st.obs, st.act) - logp_b  # (M,)
    return st, gamma, log_rho, gamma ** st.t


def offpolicy_whole(pol, theta_prime, obs, act, rew, logp_behaviour, *, gamma=1.0, per_trajectory=False):
    """Whole-trajectory importance sampling, eq. (E3): ``(prod_t rho_t) sum_t gamma^t g'_t Q_t``.

    docs/math/offpolicy.md, eq. (4.2), ``E_theta[p_theta'(tau)/p_theta(tau) sum_t grad log
    pi_theta'(a_t|s_t) sum_{t'>=t} r_t']``, as written (plus gamma). Unbiased for grad J(theta').

    Parameters
    ----------
    pol : purepg policy;  theta_prime : ndarray (P,), where the gradient is taken
    obs, act, rew : batch sampled from the behaviour policy pi_theta (module docstring)
    logp_behaviour : ``log pi_theta(a_t|s_t)`` per step, format of ``rew``
    gamma : float in [0, 1];  per_trajectory : bool (rows (N, P) instead of the mean)
    """
    st, gamma, log_rho, h = _offpolicy(pol, theta_prime, obs, act, rew, logp_behaviour, gamma)
    W = np.exp(np.add.reduceat(log_rho, st.starts))              # (N,) prod_t rho_t
    Q = _suffix_sums(st.rew, st, gamma)                          # (M,)
    return _score_sums(pol, theta_prime, st, W[st.traj] * h * Q, per_trajectory)


def offpolicy_per_decision(pol, theta_prime, obs, act, rew, logp_behaviour, *, gamma=1.0, per_trajectory=False):
    """Per-decision importance sampling, eq. (E4): ``sum_t g'_t sum_{t'>=t} gamma^t' r_t' prod_{t''<=t'} rho_t''``.

    The usual statement of this estimator (docs/math/offpolicy.md, eq. (4.3)) is often written (1-based)
    ``(sum_t grad log pi')(prod_{t'=1}^{t} rho_t')(sum_{t'=t}^T r(s_t, a_t) prod_{t''=t}^{t'} rho_t'')``,
    which has three slips: the sum over t closes before the factors that use t; the reward is
    indexed by t instead of t'; and the two products overlap at t'' = t, so rho_t is counted twice.
    The reward ``r_t'`` needs exactly the ratio of the prefix up to t',
    ``prod_{t''<=t} rho_t'' * prod_{t < t''<=t'} rho_t'' = prod_{t''<=t'} rho_t''`` (module docstring),
    which is what this code uses and what :mod:`purepg.verify.tabular` proves unbiased; the slips are kept in
    :func:`offpolicy_notes_literal`. Parameters as :func:`offpolicy_whole`.
    """
    st, gamma, log_rho, h = _offpolicy(pol, theta_prime, obs, act, rew, logp_behaviour, gamma)
    rho_prefix = np.exp(_prefix_sums(log_rho, st))               # (M,) prod_{t''<=t} rho_t''
    w = _suffix_sums(h * st.rew * rho_prefix, st, 1.0)          # (M,) sum_{t'>=t} gamma^t' r_t' prod_{t''<=t'}
    return _score_sums(pol, theta_prime, st, w, per_trajectory)


def offpolicy_first_order(pol, theta_prime, obs, act, rew, logp_behaviour, *, gamma=1.0, per_trajectory=False):
    """First-order approximation, eq. (E5): ``sum_t rho_t gamma^t g'_t Q_t`` with the sampled ``Q_t``.

    docs/math/offpolicy.md, eq. (4.5), ``(1/N) sum_i sum_t rho_it grad log pi_theta'(a_it|s_it) Q_it``
    (plus ``gamma^t``). It drops the ratio of state distributions ``p_theta'(s_t)/p_theta(s_t)`` and the
    ratios of later steps inside Q_t, so it is biased unless theta' = theta, where it equals
    :func:`reinforce_rtg`. Parameters as :func:`offpolicy_whole`.
    """
    st, gamma, log_rho, h = _offpolicy(pol, theta_prime, obs, act, rew, logp_behaviour, gamma)
    Q = _suffix_sums(st.rew, st, gamma)                          # (M,)
    return _score_sums(pol, theta_prime, st, np.exp(log_rho) * h * Q, per_trajectory)


def offpolicy_notes_literal(pol, theta_prime, obs, act, rew, logp_behaviour, *, gamma=1.0, per_trajectory=False):
    """The usual per-decision formula transcribed literally -- BIASED; kept only to show the bias.

    With 0-based t, and the sum over t taken around every factor that uses t (the only reading
    in which the formula is defined), the display is (docs/math/offpolicy.md, eq. (4.4))

        e = sum_t g'_t (prod_{t'=0}^{t} rho_t') sum_{t'=t}^{T-1} gamma^t' r_t prod_{t''=t}^{t'} rho_t''

    (``gamma^t'`` added; the usual display is undiscounted). It keeps the reward slip (``r_t`` for ``r_t'``) and the
    double ratio (``rho_t`` in both products). Since ``prod_{t''=t}^{t'} rho = rho_t prod_{t''<=t'} rho /
    prod_{t''<=t} rho``, the weight is ``rho_t r_t sum_{t'>=t} gamma^t' prod_{t''<=t'} rho_t''``.
    Use :func:`offpolicy_per_decision`. Parameters as :func:`offpolicy_whole`.
    """
    st, gamma, log_rho, h = _offpolicy(pol, theta_prime, obs, act, rew, logp_behaviour, gamma)
    rho_prefix = np.exp(_prefix_sums(log_rho, st))               # (M,)
    w = np.exp(log_rho) * st.rew * _suffix_sums(h * rho_prefix, st, 1.0)  # (M,)
    return _score_sums(pol, theta_prime, st, w, per_trajectory)
