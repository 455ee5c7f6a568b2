r"""The trust-region policy step shared by NPG and TRPO: the natural step (3) of
:mod:`purepg.algos.npg`, then the backtracking line search on the true KL and surrogate.

With the surrogate (TRPO paper eq. 14) ``L(theta') = (1/N) sum_i r_i(theta') A_i`` and its gradient ``g``
at ``theta' = theta``, the step is ``d = sqrt(2 delta / g^T F^-1 g) F^-1 g`` (:func:`purepg.optim.natural_step`);
trial ``j = 0, 1, ...`` of ``theta + alpha^j d`` is accepted iff its mean KL is ``<= delta`` and
``L`` improves (:func:`purepg.optim.backtracking_line_search`).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from purepg._check import BOOLEAN
from purepg.algos.common import CriticConfig
from purepg.algos.fields import configclass, param
from purepg.optim import backtracking_line_search, natural_step
from purepg.pg.surrogates import surrogate, surrogate_terms


@configclass
class StepConfig(CriticConfig):
    """The fields NPG and TRPO share: :class:`purepg.algos.common.CriticConfig`, the GAE advantages and the
    natural step with its line search (rl-zoo CartPole-v1 TRPO, else sb3-contrib's TRPO defaults)."""

    gae_lambda: float = param(0.98, "lambda", "GAE parameter", "[0, 1]", "rl-zoo gae_lambda")
    delta: float = param(0.01, "delta", "KL radius: of the natural step and of the line search", "(0, inf)",
                         "sb3-contrib target_kl")
    damping: float = param(1e-3, "c", "damping of F + c I", "[0, inf)", "rl-zoo cg_damping")
    cg_iters: int = param(15, "", "CG iterations (solver cg)", "integer >= 1", "sb3-contrib cg_max_steps")
    cg_tol: float = param(1e-10, "", "relative CG residual tolerance", "[0, inf)", "purepg: all iterations")
    ls_ratio: float = param(0.8, "alpha", "backtracking factor alpha^j", "(0, 1)",
                            "sb3-contrib line_search_shrinking_factor")
    ls_max_steps: int = param(10, "", "line-search trials j = 0 .. ls_max_steps - 1", "integer >= 1",
                              "sb3-contrib line_search_max_iter")
    normalize_advantage: bool = param(True, "", "standardise A over the batch", BOOLEAN, "sb3-contrib")


class PolicyStep(NamedTuple):
    """Outcome of :func:`natural_policy_step`."""

    theta: np.ndarray        # (P,) parameters after the iteration (the input ones if skipped/rejected)
    step: np.ndarray         # (P,) full natural step d of eq. (3); zero when skipped
    skipped: bool            # no step could be formed (F + c I not PD along g, or g = 0)
    accepted: bool           # the line search accepted a fraction
    reason: str              # why the step was skipped, or the line search's verdict
    step_fraction: float     # alpha^j accepted (0 if none)
    ls_steps: int            # line-search trials made
    surrogate_gain: float    # L(theta_new) - L(theta), eq. (1)
    kl: float                # mean KL(pi_theta || pi_theta_new) over the batch states
    expected_improve: float  # g^T d, the gain the linear model predicts for the full step
    cg_iterations: int       # 0 for Cholesky
    cg_residual: float       # ||g - (F + c I) x||_2


def surrogate_value(pol, theta_new, obs, act, logp_old, adv):
    """Eq. (1) at ``theta_new``; ``nan`` if a ratio overflows float64 (the line search rejects it)."""
    try:
        return surrogate_terms(pol.log_prob(theta_new, obs, act), logp_old, adv)[0]
    except ValueError:       # raised by purepg.pg.surrogates.ratio only for log-ratios above ~709.78
        return float("nan")


def natural_policy_step(pol, theta, obs, act, logp_old, adv, F_or_fvp, *, delta, damping, solver,
                        cg_iters, cg_tol, ls_ratio, ls_max_steps, cg_x0=None, cg_stop="relative",
                        line_search_kl="old_new_le") -> PolicyStep:
    """Steps 2, 4 and 5 of the module docstring on one batch.

    Parameters
    ----------
    pol : Policy.  theta : (P,) the parameters that sampled the batch.
    obs : (N, obs_dim).  act : (N,) or (N, k).  logp_old : (N,) ``log pi_theta(a_i|s_i)``.
    adv : (N,) advantages.  F_or_fvp : (P, P) Fisher at ``theta`` or a callable ``v -> F v``.
    delta : KL radius.  damping, solver, cg_iters, cg_tol : see :func:`purepg.optim.natural_step`.
    ls_ratio, ls_max_steps : backtracking factor and number of trials.
    cg_x0, cg_stop : CG's start (P,) or None, and its stopping test (:func:`purepg.optim.conjugate_gradient`).
    line_search_kl : ``"old_new_le"``: accept ``KL(pi_theta || pi_theta') <= delta`` (TRPO paper eq. 14);
        ``"new_old_lt"``: ``KL(pi_theta' || pi_theta) < delta`` (sb3-contrib ``trpo/trpo.py``).

    Returns
    -------
    PolicyStep
    """
    obj = surrogate(pol, theta, obs, act, logp_old, adv)                       # L(theta), g (P,) eq. (1)
    ns = natural_step(obj.grad, F_or_fvp, delta, damping=damping, solver=solver,  # d (P,) eq. (3)
                      cg_iters=cg_iters, cg_tol=cg_tol, cg_x0=cg_x0, cg_stop=cg_stop)
    if not ns.ok:
        warnings.warn(f"natural policy step skipped, theta kept: {ns.reason}", RuntimeWarning, stacklevel=2)
        return PolicyStep(theta.copy(), ns.step, True, False, ns.reason, 0.0, 0, 0.0, 0.0, 0.0,
                          ns.iterations, ns.residual)
    reverse = line_search_kl == "new_old_lt"
    kl_of = (lambda th: pol.kl(th, theta, obs)) if reverse else (lambda th: pol.kl(theta, th, obs))
    ls = backtracking_line_search(                                               # step 5
        lambda th: surrogate_value(pol, th, obs, act, logp_old, adv), theta, ns.step,
        constraint=kl_of, delta=delta, ratio=ls_ratio, max_steps=ls_max_steps, strict=reverse)
    gain, kl = (ls.trace[-1][1] - obj.value, ls.trace[-1][2]) if ls.accepted else (0.0, 0.0)
    return PolicyStep(ls.theta, ns.step, False, ls.accepted, ls.reason, ls.step_fraction, len(ls.trace),
                      gain, kl, ns.expected_improve, ns.iterations, ns.residual)


def step_logs(ps: PolicyStep) -> dict:
    """The per-iteration columns of a :class:`PolicyStep` for ``progress.csv``."""
    return {"surrogate_gain": ps.surrogate_gain, "kl": ps.kl, "accepted": float(ps.accepted),
            "skipped": float(ps.skipped), "step_fraction": ps.step_fraction, "ls_steps": ps.ls_steps,
            "expected_improve": ps.expected_improve, "cg_iterations": ps.cg_iterations,
            "cg_residual": ps.cg_residual}
