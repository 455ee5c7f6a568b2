r"""Trust region policy optimisation (Schulman et al. 2015), matrix-free by default.

Why a trust region (docs/math/trpo.md)
--------------------------------------
The performance-difference identity gives, for any two policies,

    eta(pi~) = eta(pi) + 1/(1 - gamma) E_{s ~ rho_pi~, a ~ pi~}[A_pi(s, a)].

Replacing the unknown state distribution ``rho_pi~`` by ``rho_pi`` (the data we have) and the action
distribution by importance weights gives the surrogate ``L_pi(pi~)``, which matches ``eta`` in value
and gradient at ``pi~ = pi``; with ``eps = max |A_pi|`` (TRPO paper, Theorem 1)

    eta(pi~) >= L_pi(pi~) - 4 eps gamma / (1 - gamma)^2 max_s KL(pi(.|s) || pi~(.|s)).

The penalty coefficient is far too large in practice, so TRPO maximises the sample surrogate

    L(theta') = (1/N) sum_i r_i(theta') A_i,   r_i = pi_theta'(a_i|s_i) / pi_theta(a_i|s_i)      (1)

subject to the *mean* KL over the batch states, ``D(theta') = mean_i KL(pi_theta || pi_theta') <= delta``
(TRPO paper, eq. 14). With GAE advantages (Schulman et al. 2016) the iteration is:

1. ``A_i`` = GAE(gamma, lambda) from the current ``V``, standardised (as sb3-contrib does).
2. ``g = grad L(theta)`` (at ``theta' = theta``, ``r = 1``: the policy-gradient estimate).
3. Linearise ``L``, quadratise ``D ~ 1/2 d^T F d``: the natural step
   ``d = sqrt(2 delta / x^T (F + c I) x) x``, ``x ~ (F + c I)^-1 g`` by ``cg_iters`` conjugate-gradient
   iterations (TRPO paper, appendix C). Each CG iteration needs one product ``F v``: by default
   ``pol.fvp`` (a JVP and a VJP through the network, ``F`` never formed); ``fisher="explicit"`` runs
   the same CG on the (P, P) matrix ``pol.fisher`` -- same step up to rounding, and a reference for it.
4. Backtrack: accept the first ``theta + alpha^j d`` whose mean KL is ``<= delta`` and whose
   surrogate (1) improved; else keep ``theta``. A ``F + c I`` that is not positive definite along ``g``
   skips the step (logged, warned, ``theta`` kept).
5. Fit ``V`` by ``n_critic_updates`` passes of minibatch Adam (rl-zoo: 20 passes, lr 1e-3). Steps 2-4
   do not read ``V`` and step 5 does not read ``theta``: with two threads (``purepg train --threads 2``)
   the fit runs on the run's worker thread while this one takes the policy step, with the same bits
   (:func:`purepg.algos.critic.fit_value_started`).

Steps 2-4 are :func:`purepg.algos.trust_region.natural_policy_step`: TRPO is natural policy gradient with a
matrix-free Fisher, a KL-checking line search on the surrogate and a fitted critic.

Logged per iteration: ``surrogate_gain``, ``kl``, ``cg_iterations``, ``cg_residual``, ``ls_steps``,
``accepted``, ``skipped``, ``step_fraction``, ``expected_improve``, ``entropy``, ``value_loss``,
``explained_variance``.
"""
from __future__ import annotations

import numpy as np

from purepg.algos import conventions, critic, trust_region
from purepg.algos.fields import configclass, param

NAME = "trpo"
init = critic.init


@configclass
class Config(trust_region.StepConfig):
    """Hyperparameters of TRPO. Defaults: rl-zoo ``hyperparams/trpo.yml`` CartPole-v1, else sb3-contrib.

    Where rl-zoo's CartPole-v1 entry is silent the default of sb3-contrib's ``TRPO.__init__`` is used.
    """

    fisher: str = param("fvp", "", "fvp (matrix-free) or explicit (pol.fisher)", "fvp | explicit", "purepg")
    advantage_norm: str = conventions.option("advantage_norm", "population")
    line_search_kl: str = conventions.option("line_search_kl", "old_new_le", "delta")
    cg_x0: str = conventions.option("cg_x0", "zero", "x_0")
    cg_stop: str = conventions.option("cg_stop", "relative")
    vf_loss: str = conventions.option("vf_loss", "half_mse")
    vf_adam_eps: float = conventions.option("vf_adam_eps", 1e-8)


def fisher_operator(ctx, theta, obs):
    """Step 3's ``F``: the callable ``v -> F v`` (``pol.fisher_operator``: the forward pass at ``theta``
    is computed once and reused by every CG product), or the (P, P) matrix if ``fisher="explicit"``."""
    if ctx.config.fisher == "explicit":
        return ctx.pol.fisher(theta, obs)                                       # (P, P)
    return ctx.pol.fisher_operator(theta, obs)                                  # (P,) -> (P,)


def policy_step(ctx, theta, flat, adv, x0=None) -> trust_region.PolicyStep:
    """Steps 2-4 on a flattened batch (CG on ``F`` in either form), CG started from ``x0`` if given."""
    c = ctx.config
    return trust_region.natural_policy_step(ctx.pol, theta, flat.obs, flat.act, flat.logp_old, adv,
                                   fisher_operator(ctx, theta, flat.obs), delta=c.delta,
                                   damping=c.damping, solver="cg", cg_iters=c.cg_iters, cg_tol=c.cg_tol,
                                   ls_ratio=c.ls_ratio, ls_max_steps=c.ls_max_steps, cg_x0=x0,
                                   cg_stop=c.cg_stop, line_search_kl=c.line_search_kl)


def cg_start(ctx, rng, P):
    """CG's ``x_0``: None (zeros) or, with ``cg_x0="randn"``, ``1e-4 z``, ``z ~ N(0, I)`` drawn from ``rng``."""
    return None if ctx.config.cg_x0 == "zero" else 1e-4 * rng.standard_normal(P)


def update(ctx, state, batch, rng, progress, *, order=None, cg_x0=None):
    """One TRPO iteration (module docstring, steps 1-5).

    ``order`` (one permutation of the N samples per critic epoch) replaces the critic's minibatch draws
    and ``cg_x0`` (P,) CG's random start, to replay another library's update.
    """
    flat, adv = critic.advantages(ctx, state, batch)                               # 1
    x0 = cg_start(ctx, rng, state["theta"].size) if cg_x0 is None else cg_x0   # drawn before the fit's draws
    fit = critic.fit_value_started(ctx, state, flat, rng, order)                  # 5, on the worker if any
    ps = policy_step(ctx, state["theta"], flat, adv, x0)                         # 2-4
    theta_v, opt_v, vlogs = fit.result()
    logs = {**trust_region.step_logs(ps), **vlogs, "entropy": float(np.mean(ctx.pol.entropy(ps.theta, flat.obs)))}
    return {"theta": ps.theta, "theta_v": theta_v, "opt_v": opt_v}, logs
