r"""Surrogate objectives of TRPO and PPO, each with its exact gradient w.r.t. the new parameters.

Sign convention
---------------
Every objective here (``surrogate``, ``ppo_clip``, ``ppo_kl_penalty``, ``entropy_bonus``,
``lagrangian`` and the per-sample ``*_terms``) returns a value to be **maximised** and the gradient of
that value. Functions named ``*_loss`` (the value loss in :mod:`purepg.model.value`) return a value to be
**minimised** and its gradient. An optimiser that descends (Adam in :mod:`purepg.optim`) is therefore
given ``-grad`` of an objective and ``+grad`` of a loss.

Notation
--------
A batch of ``N`` samples ``(s_i, a_i)`` was drawn by the old policy ``pi_old``; it carries the old
log-probabilities ``l_i^old = log pi_old(a_i|s_i)`` and advantage estimates ``A_i``. For new parameters
``theta'`` write ``l_i = log pi_theta'(a_i|s_i)`` (``logp_new``) and the importance ratio

    r_i = pi_theta'(a_i|s_i) / pi_old(a_i|s_i) = exp(l_i - l_i^old),   dr_i / dl_i = r_i.       (0)

How every gradient is computed
------------------------------
Each objective depends on ``theta'`` only through the ``N`` numbers ``l_i`` (and, for the KL terms,
through the policy's mean KL). So we write the objective ``L(l)`` as a function of the vector ``l``,
derive ``w_i = dL/dl_i`` in closed form, and chain once through the policy:

    grad_theta' L = sum_i w_i grad_theta' l_i = pol.log_prob_grad(theta', obs, act, w)         (1)

which is one vector-Jacobian product, never an (N, P) matrix. The per-sample pairs ``(L, w)`` are
the small functions ``*_terms`` below, testable without a policy.

1. Importance-weighted surrogate (Schulman et al. 2015, "TRPO", eq. 14; docs/math/trpo.md, eq. (6.5))::

       L = (1/N) sum_i r_i A_i,              w_i = r_i A_i / N.                                 (2)

   At ``theta' = theta_old`` every ``r_i = 1`` and (1) becomes ``(1/N) sum_i A_i grad log pi``: the
   surrogate's gradient there *is* the policy-gradient estimate.

2. PPO clipped objective (Schulman et al. 2017, "PPO", eq. 7), with ``c_i = clip(r_i, 1-eps, 1+eps)``::

       L = (1/N) sum_i min(r_i A_i, c_i A_i).                                                  (3)

   Where the unclipped term is the smaller one, ``d/dr_i = A_i``; where the clipped term is strictly
   smaller, ``r_i`` lies outside ``[1-eps, 1+eps]`` (inside, ``c_i = r_i`` and the terms tie), so
   ``c_i`` is constant there and ``d/dr_i = 0``. Hence ``w_i = r_i A_i / N`` when unclipped-active and
   ``0`` when clipped (``A_i > 0, r_i > 1+eps`` or ``A_i < 0, r_i < 1-eps``).
   *Choice at the kink and at ties.* We split the derivative evenly between tied terms and give the
   clip derivative 1 on its closed interval ``[1-eps, 1+eps]`` -- the conventions of PyTorch's
   ``minimum`` and ``clamp`` backward (``tools/autograd/derivatives.yaml``), so autograd on the same
   loss in PyTorch returns this gradient. Consequence: on the whole closed interval, including
   ``r = 1`` and the kinks ``r = 1 +- eps``, the derivative is the unclipped one, ``r_i A_i``; at
   ``r = 1`` the value and gradient of (3) equal those of (2).
   The *clip fraction* reported is ``mean(|r_i - 1| > eps)``, the diagnostic logged by OpenAI
   Baselines ``ppo2``, Stable-Baselines3 and CleanRL (it counts clipped ratios whatever the sign of A).

3. PPO KL-penalty objective (PPO, eq. 8), with ``D(theta') = mean_s KL(pi_old(.|s) || pi_theta'(.|s))``::

       L = (2) - beta D(theta'),   grad = grad (2) - beta grad D   (``pol.kl_and_grad``).  (4)

   Adaptive beta (PPO, sec. 4): after the update, with ``d`` the measured mean KL,
   ``beta <- beta / 2`` if ``d < d_targ / 1.5``; ``beta <- 2 beta`` if ``d > 1.5 d_targ``.     (5)

4. Entropy bonus: ``S = mean_s H(pi_theta'(.|s))``, gradient ``pol.entropy_grad`` (PPO, eq. 9).     (6)

5. Lagrangian (docs/math/trpo.md, eqs. (6.8)-(6.9)) of the constrained TRPO problem ``max (2) s.t. D <= delta``::

       L(theta', nu) = (2) - nu (D(theta') - delta),   grad = grad (2) - nu grad D,            (7)

   maximised in ``theta'``; then dual ascent ``nu <- max(0, nu + alpha (D - delta))``: ``nu`` rises
   while the constraint is violated and decays towards (never below) 0 while it holds.        (8)

The value-function loss (PPO, eq. 9) and its gradient live with the value function in
:mod:`purepg.model.value`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from purepg import _check, kernels

_KL_HINT = "a non-finite KL means the policy update diverged; lower the step size and check theta for NaN"
# Largest log-ratio whose exp is finite in float64: log(1.7976931348623157e308) ~ 709.78.
_MAX_LOG_RATIO = float(np.log(np.finfo(np.float64).max))


class Objective(NamedTuple):
    """A scalar ``value`` and its exact gradient ``grad`` (P,) w.r.t. the differentiated parameters."""

    value: float
    grad: np.ndarray


class ClipObjective(NamedTuple):
    """PPO clipped objective (3), its gradient (P,), and the clip fraction ``mean(|r - 1| > eps)``."""

    value: float
    grad: np.ndarray
    clip_fraction: float


class PenaltyObjective(NamedTuple):
    """A KL-penalised objective (4) or (7), its gradient (P,), and the mean KL ``D(theta')`` it used."""

    value: float
    grad: np.ndarray
    kl: float


# ----- input checks ------------------------------------------------------------------------------
def _n_samples(obs):
    obs = np.asarray(obs)
    if obs.ndim != 2:
        raise ValueError(f"obs: expected shape (N, obs_dim), got {obs.shape}. Fix: stack observations row-wise.")
    return obs.shape[0]


# ----- per-sample terms (no policy) --------------------------------------------------------------
def ratio(logp_new, logp_old):
    """Importance ratios ``r = exp(logp_new - logp_old)``, eq. (0). Shapes (N,), (N,) -> (N,).

    Raises ValueError if some log-ratio exceeds ~709.78, where ``exp`` overflows float64: the new
    policy has left the old one so far that the surrogate is meaningless (lower the step size).
    """
    l = _check.per_sample(logp_new, "logp_new")
    return _ratio(l, _check.per_sample(logp_old, "logp_old", l.shape[0]))


def _ratio(l, l_old):
    """:func:`ratio` of validated (N,) float64 arrays; the overflow test stays (it is about the values)."""
    log_r = l - l_old                                            # (N,)
    i = int(np.argmax(log_r))
    if log_r[i] > _MAX_LOG_RATIO:
        raise ValueError(f"logp_new - logp_old: expected <= {_MAX_LOG_RATIO:.2f} so exp fits in float64, "
                         f"got {log_r[i]:.4g} at index {i}. Fix: take smaller policy steps (lower lr or max KL).")
    return np.exp(log_r)                                         # (N,)


def surrogate_terms(logp_new, logp_old, adv):
    """Eq. (2): ``L = mean(r A)`` and ``w = dL/dlogp_new = r A / N``.

    Parameters
    ----------
    logp_new, logp_old, adv : array_like, shape (N,)

    Returns
    -------
    L : float
    w : ndarray, shape (N,)
    """
    r = ratio(logp_new, logp_old)                                # (N,)
    A = _check.per_sample(adv, "adv", r.shape[0])                # (N,)
    N = r.shape[0]
    return float(np.mean(r * A)), r * A / N


def clip_terms(logp_new, logp_old, adv, eps):
    """Eq. (3): ``L = mean(min(r A, clip(r, 1-eps, 1+eps) A))``, ``w = dL/dlogp_new``, clip fraction.

    The derivative follows the module docstring: ``r A / N`` where the unclipped term is active
    (including the closed interval ``1-eps <= r <= 1+eps``), ``0`` where strictly clipped, and an even
    split at a tie of the two terms outside that interval (``A = 0``, or a rounding coincidence).
    The terms are one pass of the Numba kernel :func:`purepg.kernels.clip_terms`; eq. (3) in NumPy
    (``np.clip``, ``np.minimum``, ``np.where``) is its reference beside it, :mod:`purepg.kernels.surrogates`.

    Parameters
    ----------
    logp_new, logp_old, adv : array_like, shape (N,)
    eps : float
        Clip range, ``> 0`` (PPO, eq. 7; 0.2 in the paper).

    Returns
    -------
    L : float
    w : ndarray, shape (N,)
    clip_fraction : float
        ``mean(|r - 1| > eps)``.
    """
    eps = _check.real(eps, "eps", 0.0, lo_open=True, fix="use a clip range such as 0.2")
    r = ratio(logp_new, logp_old)                                # (N,)
    return kernels.clip_terms(r, _check.per_sample(adv, "adv", r.shape[0]), eps)   # eq. (3) per sample, one pass


# ----- through a policy ---------------------------------------------------------------------------
def _logp_and_checks(pol, theta, obs, act, logp_old, adv, ws=None):
    """``(logp_new (N,), vjp)`` at ``theta`` (one forward pass) and the shared shape checks."""
    N = _n_samples(obs)
    _check.per_sample(logp_old, "logp_old", N, like="obs")
    _check.per_sample(adv, "adv", N, like="obs")
    return pol.log_prob_with_vjp(theta, obs, act, ws=ws)        # (N,), w -> (P,)


def surrogate(pol, theta, obs, act, logp_old, adv):
    """Eq. (2) at ``theta`` (= theta') and its gradient via eq. (1).

    Parameters
    ----------
    pol : CategoricalPolicy or GaussianPolicy
    theta : ndarray, shape (P,)
        New parameters theta'.
    obs : ndarray, shape (N, obs_dim)
    act : ndarray, shape (N,) int64 or (N, act_dim) float64
    logp_old : ndarray, shape (N,)
        ``log pi_old(a_i|s_i)`` recorded at rollout time.
    adv : ndarray, shape (N,)
        Advantage estimates ``A_i``.

    Returns
    -------
    Objective
        ``value`` (maximised) and ``grad`` (P,).
    """
    l, vjp = _logp_and_checks(pol, theta, obs, act, logp_old, adv)
    L, w = surrogate_terms(l, logp_old, adv)
    return Objective(L, vjp(w))


def ppo_clip(pol, theta, obs, act, logp_old, adv, *, eps, check=True, ws=None):
    """Eq. (3) at ``theta`` with its (sub)gradient via eq. (1); arguments as :func:`surrogate`.

    ``check=False`` skips the validation of the arguments (for a training loop that validated its
    batch once per iteration: float64 arrays of matching shapes, finite, ``eps > 0``); a log-ratio
    that would overflow ``exp`` is still reported (:func:`ratio`). The per-sample terms are those of
    :func:`clip_terms`, from the same kernel. ``ws``: the policy network's ``MLP.workspace`` for the
    batch, written into by its passes (:meth:`purepg.model.policy.Policy.log_prob_with_vjp`; the same bits).

    Returns
    -------
    ClipObjective
        ``value`` (maximised), ``grad`` (P,), ``clip_fraction``.
    """
    if check:
        l, vjp = _logp_and_checks(pol, theta, obs, act, logp_old, adv, ws)    # (N,), w -> (P,)
        eps = _check.real(eps, "eps", 0.0, lo_open=True, fix="use a clip range such as 0.2")
        r, A = ratio(l, logp_old), _check.per_sample(adv, "adv", l.shape[0])          # (N,), (N,)  eq. (0)
    else:
        l, vjp = pol.log_prob_with_vjp(theta, obs, act, check=False, ws=ws)
        r, A = _ratio(l, logp_old), adv
    L, w, frac = kernels.clip_terms(r, A, eps)                   # eq. (3) per sample, one pass (Numba kernel)
    return ClipObjective(L, vjp(w), frac)                        # eq. (1)


def _penalised(pol, theta, obs, act, logp_old, adv, theta_old, coef):
    """``(2) - coef * D(theta')`` and its gradient, with ``D`` from ``pol.kl`` / ``pol.kl_grad``."""
    obj = surrogate(pol, theta, obs, act, logp_old, adv)
    D, D_grad = pol.kl_and_grad(theta_old, theta, obs)
    g = obj.grad - coef * D_grad                                 # (P,)
    return obj.value - coef * D, g, D


def ppo_kl_penalty(pol, theta, obs, act, logp_old, adv, *, theta_old, beta):
    """Eq. (4): ``mean(r A) - beta * mean_s KL(pi_old || pi_theta')`` and its gradient.

    ``theta_old`` (P,) are the parameters that produced ``logp_old``; ``beta >= 0`` (PPO, eq. 8).
    Other arguments as :func:`surrogate`. Returns a :class:`PenaltyObjective` (``kl`` = ``D``).
    """
    beta = _check.real(beta, "beta", 0.0, fix="the KL penalty coefficient must be >= 0, e.g. 1.0")
    return PenaltyObjective(*_penalised(pol, theta, obs, act, logp_old, adv, theta_old, beta))


def lagrangian(pol, theta, obs, act, logp_old, adv, *, theta_old, nu, delta):
    """Eq. (7): ``L(theta', nu) = mean(r A) - nu (D(theta') - delta)`` and its gradient in theta'.

    ``nu >= 0`` is the multiplier of the constraint ``D <= delta`` (``delta > 0``). Other arguments
    as :func:`ppo_kl_penalty`. Returns a :class:`PenaltyObjective` (``kl`` = ``D``).
    """
    nu = _check.real(nu, "nu", 0.0, fix="a multiplier of an inequality constraint is >= 0")
    delta = _check.real(delta, "delta", 0.0, lo_open=True, fix="use a KL radius such as 0.01")
    value, g, D = _penalised(pol, theta, obs, act, logp_old, adv, theta_old, nu)
    return PenaltyObjective(value + nu * delta, g, D)


def entropy_bonus(pol, theta, obs):
    """Eq. (6): mean entropy over the N states of ``obs`` (N, obs_dim) and its gradient (P,)."""
    _n_samples(obs)
    return Objective(float(np.mean(pol.entropy(theta, obs))), pol.entropy_grad(theta, obs))


# ----- multiplier rules -----------------------------------------------------------------------------
def update_beta(beta, kl, d_targ):
    """Eq. (5), PPO sec. 4: halve ``beta`` if ``kl < d_targ/1.5``, double it if ``kl > 1.5 d_targ``.

    Parameters
    ----------
    beta : float
        Current penalty coefficient, ``> 0`` (0 would stay 0 under a multiplicative rule).
    kl : float
        Measured mean KL ``d`` after the update (finite).
    d_targ : float
        Target KL, ``> 0``.

    Returns
    -------
    float
        The new beta.
    """
    beta = _check.real(beta, "beta", 0.0, lo_open=True, fix="start the adaptive rule from beta > 0, e.g. 1.0")
    d_targ = _check.real(d_targ, "d_targ", 0.0, lo_open=True, fix="use a target KL such as 0.01")
    kl = _check.real(kl, "kl", fix=_KL_HINT)
    if kl < d_targ / 1.5:
        return beta / 2.0
    if kl > d_targ * 1.5:
        return beta * 2.0
    return beta


def update_nu(nu, kl, delta, alpha):
    """Eq. (8): dual ascent ``max(0, nu + alpha (kl - delta))`` on the constraint ``kl <= delta``.

    ``nu >= 0``, ``kl`` finite, ``delta > 0``, step ``alpha > 0``. Returns the new multiplier (float).
    """
    nu = _check.real(nu, "nu", 0.0, fix="a multiplier of an inequality constraint is >= 0")
    kl = _check.real(kl, "kl", fix=_KL_HINT)
    delta = _check.real(delta, "delta", 0.0, lo_open=True, fix="use a KL radius such as 0.01")
    alpha = _check.real(alpha, "alpha", 0.0, lo_open=True, fix="use a multiplier step size such as 1.0")
    return max(0.0, nu + alpha * (kl - delta))
