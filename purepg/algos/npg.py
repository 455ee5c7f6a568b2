r"""Natural policy gradient (Kakade 2002) with the explicit Fisher matrix and a backtracking line search.

The algorithm of docs/math/natural-gradient.md, eqs. (5.4)-(5.5), one iteration per batch:

1. Advantages. From the batch and the current value function ``V``, GAE(gamma, lambda) advantages
   ``A_i`` and value targets ``R_i = A_i + V(s_i)`` (:func:`purepg.algos.common.flatten_with_gae`;
   Schulman et al. 2016, eq. 16), optionally standardised (``normalize_advantage``).
2. Gradient. The importance-weighted surrogate on the ``N`` samples (TRPO paper eq. 14)

       L(theta') = (1/N) sum_i r_i(theta') A_i,     r_i = pi_theta'(a_i|s_i) / pi_theta(a_i|s_i),   (1)

   has at ``theta' = theta`` (all ``r_i = 1``) the gradient ``g = (1/N) sum_i A_i grad log pi(a_i|s_i)``:
   the policy-gradient estimate (:func:`purepg.pg.surrogates.surrogate`).
3. Fisher. ``F = mean_i J_i^T M_i J_i`` (P, P), the Hessian of the mean KL at ``theta``
   (:meth:`purepg.model.policy.Policy.fisher`). Near ``theta``,

       mean_s KL(pi_theta(.|s) || pi_theta+d(.|s)) ~ 1/2 d^T F d.                                (2)

4. Natural step. ``max_d g^T d  s.t.  1/2 d^T F d <= delta`` is solved by (docs/math/natural-gradient.md, eq. (5.4); optim eq. N1)

       d = sqrt(2 delta / g^T F^-1 g) F^-1 g,                                                     (3)

   with ``F^-1 g`` replaced by ``x = (F + c I)^-1 g``: a Cholesky solve (default) or conjugate
   gradient (``solver="cg"``), damping ``c >= 0`` (:func:`purepg.optim.natural_step`). If ``F + c I`` is
   not positive definite along ``g`` (Cholesky fails, CG meets ``p^T A p <= 0``, or ``g^T x <= 0``), or
   ``g = 0``, there is no trust-region step: the update is **skipped** -- ``theta`` is kept, the reason
   is issued as a ``RuntimeWarning`` and logged (``skipped = 1``); nothing becomes NaN.
5. Backtracking. (2) and the linear model of (1) are only models. Eq. (5.5) chooses ``j`` as the
   smallest integer such that ``theta + alpha^j d`` satisfies the KL constraint *and* improves the
   objective: with ``alpha = ls_ratio``, trial ``j = 0, 1, ...`` is accepted iff
   ``mean KL(pi_theta || pi_theta+alpha^j d) <= delta`` and ``L(theta + alpha^j d) > L(theta)``
   (:func:`purepg.optim.backtracking_line_search`). If no trial passes, ``theta`` is kept.
6. Critic. ``V`` is fitted to ``R_i`` by minibatch Adam (:meth:`purepg.model.value.ValueFunction.fit`), after
   the policy step, so the advantages of this batch used the ``V`` that existed when it was collected.
   Steps 2-5 do not read ``V``: with two threads the fit runs on the run's worker thread meanwhile
   (:func:`purepg.algos.critic.fit_value_started`; the same bits).

The step function :func:`purepg.algos.trust_region.natural_policy_step` is shared with :mod:`purepg.algos.trpo`, which differs
in how ``F`` enters (matrix-free ``F v`` products by default) and in its rl-zoo configuration.
NPG forms ``F``: (P, P) doubles, ``P^2 N K`` flops to build and ``P^3 / 3`` to factor, so the default
policy is a 32-32 network (P = 1282 on CartPole, F = 13 MB) rather than 64-64 (P = 4610, F = 170 MB).
"""
from __future__ import annotations

import numpy as np

from purepg.algos import critic, trust_region
from purepg.algos.common import CriticConfig
from purepg.algos.fields import configclass, like, param

NAME = "npg"


@configclass
class Config(trust_region.StepConfig):
    """Hyperparameters of NPG. Defaults: CartPole-v1 (those shared with TRPO follow rl-zoo's TRPO).

    ``damping``: TRPO's 15 CG iterations stop before the directions of tiny curvature are resolved,
    which regularises the step; the exact Cholesky solve does not, so it needs a larger ``c``. On
    CartPole-v1 (1e5 steps, 5 seeds, bench/README.md) c = 1e-3 reached an evaluation of 475 on 2 seeds
    of 5, c = 0.1 on 5 of 5. ``hidden`` is 32-32: the explicit P x P Fisher stays small (module docstring).
    """

    hidden: tuple = like(CriticConfig, "hidden", (32, 32), "purepg: F is P x P")
    damping: float = like(trust_region.StepConfig, "damping", 0.1, "sb3-contrib cg_damping; see above")
    solver: str = param("cholesky", "", "cholesky (exact) or cg on the explicit F", "cholesky | cg", "purepg")


# ----------------------------------------------------------------------------- the algorithm
init = critic.init


def update(ctx, state, batch, rng, progress):
    """One NPG iteration (module docstring, steps 1-6)."""
    c, pol, theta = ctx.config, ctx.pol, state["theta"]
    flat, adv = critic.advantages(ctx, state, batch)                                     # 1
    fit = critic.fit_value_started(ctx, state, flat, rng)                               # 6, on the worker if any
    F = pol.fisher(theta, flat.obs)                                               # 3: (P, P)
    ps = trust_region.natural_policy_step(pol, theta, flat.obs, flat.act, flat.logp_old, adv, F,   # 2, 4, 5
                             delta=c.delta, damping=c.damping, solver=c.solver, cg_iters=c.cg_iters,
                             cg_tol=c.cg_tol, ls_ratio=c.ls_ratio, ls_max_steps=c.ls_max_steps)
    theta_v, opt_v, vlogs = fit.result()
    logs = {**trust_region.step_logs(ps), **vlogs, "entropy": float(np.mean(pol.entropy(ps.theta, flat.obs)))}
    return {"theta": ps.theta, "theta_v": theta_v, "opt_v": opt_v}, logs
