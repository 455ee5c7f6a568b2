r"""Natural policy gradient (Kakade 2002) with the explicit Fisher matrix and a backtracking line search.

The algorithm of the notes ("Rescale the gradient to avoid large jump"), one iteration per batch:

1. Advantages. From the batch and the current value function ``V``, GAE(gamma, lambda) advantages
   ``A_i`` and value targets ``R_i = A_i + V(s_i)`` (:func:`purepg.algos.common.flatten_with_gae`;
   Schulman et al. 2016, eq. 16), optionally standardised (``normalize_advantage``).
2. Gradient. The importance-weighted surrogate on the ``N`` samples (TRPO paper eq. 14)

       L(theta') = (1/N) sum_i r_i(theta') A_i,     r_i = pi_theta'(a_i|s_i) / pi_theta(a_i|s_i),   (1)

   has at ``theta' = theta`` (all ``r_i = 1``) the gradient ``g = (1/N) sum_i A_i grad log pi(a_i|s_i)``:
   the policy-gradient estimate (:func:`purepg.surrogates.surrogate`).
3. Fisher. ``F = mean_i J_i^T M_i J_i`` (P, P), the Hessian of the mean KL at ``theta``
   (:meth:`purepg.policy.Policy.fisher`). Near ``theta``,

       mean_s KL(pi_theta(.|s) || pi_theta+d(.|s)) ~ 1/2 d^T F d.                                (2)

4. Natural step. ``max_d g^T d  s.t.  1/2 d^T F d <= epsilon`` is solved by (notes; optim eq. N1)

       d = sqrt(2 epsilon / g^T F^-1 g) F^-1 g,                                                   (3)

   with ``F^-1 g`` replaced by ``x = (F + c I)^-1 g``: a Cholesky solve (default) or conjugate
   gradient (``solver="cg"``), damping ``c >= 0`` (:func:`purepg.optim.natural_step`). If ``F + c I`` is
   not positive definite along ``g`` (Cholesky fails, CG meets ``p^T A p <= 0``, or ``g^T x <= 0``), or
   ``g = 0``, there is no trust-region step: the update is **skipped** -- ``theta`` is kept, the reason
   is issued as a ``RuntimeWarning`` and logged (``skipped = 1``); nothing becomes NaN.
5. Backtracking. (2) and the linear model of (1) are only models. The notes choose ``j`` as the
   smallest integer such that ``theta + alpha^j d`` satisfies the KL constraint *and* improves the
   objective: with ``alpha = ls_ratio``, trial ``j = 0, 1, ...`` is accepted iff
   ``mean KL(pi_theta || pi_theta+alpha^j d) <= epsilon`` and ``L(theta + alpha^j d) > L(theta)``
   (:func:`purepg.optim.backtracking_line_search`). If no trial passes, ``theta`` is kept.
6. Critic. ``V`` is fitted to ``R_i`` by minibatch Adam (:meth:`purepg.value.ValueFunction.fit`), after
   the policy step, so the advantages of this batch used the ``V`` that existed when it was collected.

The step function :func:`natural_policy_step` is shared with :mod:`purepg.algos.trpo`, which differs
in how ``F`` enters (matrix-free ``F v`` products by default) and in its rl-zoo configuration.
NPG forms ``F``: (P, P) doubles, ``P^2 N K`` flops to build and ``P^3 / 3`` to factor, so the default
policy is a 32-32 network (P = 1282 on CartPole, F = 13 MB) rather than 64-64 (P = 4610, F = 170 MB).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from purepg import _check
from purepg.algos.common import CriticConfig, flatten_with_gae, normalize_adv
from purepg.optim import adam_init, backtracking_line_search, natural_step
from purepg.surrogates import surrogate, surrogate_terms

NAME = "npg"


@dataclass(frozen=True)
class Config(CriticConfig):
    """Hyperparameters of NPG. Defaults: CartPole-v1 (those shared with TRPO follow rl-zoo's TRPO).

    ======================  ==============  ==========================================================
    field                   symbol          meaning (source)
    ======================  ==============  ==========================================================
    num_envs                E               env copies (rl-zoo trpo.yml CartPole-v1: n_envs 2)
    num_steps               T               steps per copy per batch, N = T E (rl-zoo: n_steps 512)
    hidden                  --              policy hidden widths; 32-32 keeps F small (module doc)
    activation              --              "tanh" or "relu" (SB3 default tanh)
    normalize_obs           --              running observation normalisation (rl-zoo: off)
    normalize_reward        --              rewards / running std of the discounted return (off)
    log_std_init            log sigma_0     initial log-std of a Gaussian policy (SB3 default 0)
    vf_hidden               --              value network hidden widths (SB3 default 64-64)
    gamma                   gamma           discount (rl-zoo: 0.99)
    init                    --              orthogonal (with gains) or torch (nn.Linear default) (orthogonal)
    gae_lambda              lambda          GAE parameter (rl-zoo: 0.98)
    epsilon                 epsilon         KL radius of eq. (3) and of the line search (notes; 0.01)
    damping                 c               ``F + c I`` (sb3-contrib default cg_damping 0.1; see below)
    solver                  --              "cholesky" (exact) or "cg" on the explicit F
    cg_iters                --              CG iterations if solver="cg" (sb3-contrib cg_max_steps 15)
    cg_tol                  --              relative CG residual tolerance (:func:`purepg.optim.conjugate_gradient`)
    ls_ratio                alpha           backtracking factor alpha^j (sb3-contrib 0.8)
    ls_max_steps            --              trials j = 0 .. ls_max_steps - 1 (sb3-contrib 10)
    normalize_advantage     --              standardise A over the batch (sb3-contrib default True)
    vf_lr                   --              Adam step size of the critic (rl-zoo learning_rate 1e-3)
    vf_epochs               --              passes of the critic over the batch (rl-zoo n_critic_updates 20)
    vf_minibatch_size       --              critic minibatch, must divide N (rl-zoo batch_size 512)
    ======================  ==============  ==========================================================

    ``damping``: TRPO's 15 CG iterations stop before the directions of tiny curvature are resolved,
    which regularises the step; the exact Cholesky solve does not, so it needs a larger ``c``. On
    CartPole-v1 (1e5 steps, 5 seeds, bench/README.md) c = 1e-3 reached an evaluation of 475 on 2 seeds
    of 5, c = 0.1 on 5 of 5.
    """

    gae_lambda: float = 0.98
    epsilon: float = 0.01
    damping: float = 0.1
    solver: str = "cholesky"
    cg_iters: int = 15
    cg_tol: float = 1e-10
    ls_ratio: float = 0.8
    ls_max_steps: int = 10
    normalize_advantage: bool = True
    hidden: tuple = (32, 32)      # overrides CriticConfig: the explicit P x P Fisher stays small

    def __post_init__(self):
        _check.positive(_check.number(self.epsilon, "epsilon"), "epsilon")
        _check.non_negative(self.damping, "damping")
        _check.one_of(self.solver, "solver", ("cholesky", "cg"))
        check_step_fields(self)


def check_step_fields(c):
    """Validate the fields NPG and TRPO share (all but the KL radius, the damping and the solver)."""
    _check.common_config(c)
    _check.in_unit_interval(_check.number(c.gae_lambda, "gae_lambda"), "gae_lambda")
    _check.positive_int(c.cg_iters, "cg_iters")
    _check.non_negative(c.cg_tol, "cg_tol")
    _check.in_open_unit_interval(c.ls_ratio, "ls_ratio")
    _check.positive_int(c.ls_max_steps, "ls_max_steps")
    _check.boolean(c.normalize_advantage, "normalize_advantage")
    check_critic_fields(c)


def check_critic_fields(c):
    """Validate ``vf_lr``, ``vf_epochs`` and ``vf_minibatch_size`` (which must divide N = T E)."""
    _check.positive(_check.number(c.vf_lr, "vf_lr"), "vf_lr")
    _check.positive_int(c.vf_epochs, "vf_epochs")
    _check.positive_int(c.vf_minibatch_size, "vf_minibatch_size")
    _check.divides_batch(c, "vf_minibatch_size")


# ----------------------------------------------------------------------------- the step (shared)
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
    except ValueError:       # raised by purepg.surrogates.ratio only for log-ratios above ~709.78
        return float("nan")


def natural_policy_step(pol, theta, obs, act, logp_old, adv, F_or_fvp, *, epsilon, damping, solver,
                        cg_iters, cg_tol, ls_ratio, ls_max_steps) -> PolicyStep:
    """Steps 2, 4 and 5 of the module docstring on one batch.

    Parameters
    ----------
    pol : Policy.  theta : (P,) the parameters that sampled the batch.
    obs : (N, obs_dim).  act : (N,) or (N, k).  logp_old : (N,) ``log pi_theta(a_i|s_i)``.
    adv : (N,) advantages.  F_or_fvp : (P, P) Fisher at ``theta`` or a callable ``v -> F v``.
    epsilon : KL radius.  damping, solver, cg_iters, cg_tol : see :func:`purepg.optim.natural_step`.
    ls_ratio, ls_max_steps : backtracking factor and number of trials.

    Returns
    -------
    PolicyStep
    """
    obj = surrogate(pol, theta, obs, act, logp_old, adv)                       # L(theta), g (P,) eq. (1)
    ns = natural_step(obj.grad, F_or_fvp, epsilon, damping=damping, solver=solver,  # d (P,) eq. (3)
                      cg_iters=cg_iters, cg_tol=cg_tol)
    if not ns.ok:
        warnings.warn(f"natural policy step skipped, theta kept: {ns.reason}", RuntimeWarning, stacklevel=2)
        return PolicyStep(theta.copy(), ns.step, True, False, ns.reason, 0.0, 0, 0.0, 0.0, 0.0,
                          ns.iterations, ns.residual)
    ls = backtracking_line_search(                                               # step 5
        lambda th: surrogate_value(pol, th, obs, act, logp_old, adv), theta, ns.step,
        constraint=lambda th: pol.kl(theta, th, obs), max_kl=epsilon, ratio=ls_ratio, max_steps=ls_max_steps)
    gain, kl = (ls.trace[-1][1] - obj.value, ls.trace[-1][2]) if ls.accepted else (0.0, 0.0)
    return PolicyStep(ls.theta, ns.step, False, ls.accepted, ls.reason, ls.step_fraction, len(ls.trace),
                      gain, kl, ns.expected_improve, ns.iterations, ns.residual)


def step_logs(ps: PolicyStep) -> dict:
    """The per-iteration columns of a :class:`PolicyStep` for ``progress.csv``."""
    return {"surrogate_gain": ps.surrogate_gain, "kl": ps.kl, "accepted": float(ps.accepted),
            "skipped": float(ps.skipped), "step_fraction": ps.step_fraction, "ls_steps": ps.ls_steps,
            "expected_improve": ps.expected_improve, "cg_iterations": ps.cg_iterations,
            "cg_residual": ps.cg_residual}


def fit_value(ctx, state, flat, rng):
    """Step 6: minibatch Adam on the value targets ``flat.ret``; returns ``(theta_v, opt_v, logs)``."""
    c = ctx.config
    theta_v, opt_v, info = ctx.vf.fit(state["theta_v"], state["opt_v"], flat.obs, flat.ret, lr=c.vf_lr,
                                      epochs=c.vf_epochs, minibatch_size=c.vf_minibatch_size, rng=rng)
    return theta_v, opt_v, {"value_loss": info.loss_after, "explained_variance": info.explained_variance_before}


def advantages(ctx, state, batch):
    """Step 1: the flattened batch with GAE advantages, and ``A`` (standardised if configured)."""
    c = ctx.config
    flat = flatten_with_gae(ctx, state["theta_v"], batch, c.gamma, c.gae_lambda)
    return flat, (normalize_adv(flat.adv) if c.normalize_advantage else flat.adv)   # (N,)


# ----------------------------------------------------------------------------- the algorithm
def init(ctx, rng):
    """Policy parameters ``theta``, value parameters ``theta_v`` and the critic's Adam state."""
    theta_v = ctx.vf.init(rng)
    return {"theta": ctx.pol.init(rng), "theta_v": theta_v, "opt_v": adam_init(theta_v.size)}


def update(ctx, state, batch, rng, progress):
    """One NPG iteration (module docstring, steps 1-6)."""
    c, pol, theta = ctx.config, ctx.pol, state["theta"]
    flat, adv = advantages(ctx, state, batch)                                     # 1
    F = pol.fisher(theta, flat.obs)                                               # 3: (P, P)
    ps = natural_policy_step(pol, theta, flat.obs, flat.act, flat.logp_old, adv, F,   # 2, 4, 5
                             epsilon=c.epsilon, damping=c.damping, solver=c.solver, cg_iters=c.cg_iters,
                             cg_tol=c.cg_tol, ls_ratio=c.ls_ratio, ls_max_steps=c.ls_max_steps)
    theta_v, opt_v, vlogs = fit_value(ctx, state, flat, rng)                      # 6
    logs = {**step_logs(ps), **vlogs, "entropy": float(np.mean(pol.entropy(ps.theta, flat.obs)))}
    return {"theta": ps.theta, "theta_v": theta_v, "opt_v": opt_v}, logs
