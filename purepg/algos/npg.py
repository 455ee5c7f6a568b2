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

4. Natural step. ``max_d g^T d  s.t.  1/2 d^T F d <= epsilon`` is solved by (docs/math/natural-gradient.md, eq. (5.4); optim eq. N1)

       d = sqrt(2 epsilon / g^T F^-1 g) F^-1 g,                                                   (3)

   with ``F^-1 g`` replaced by ``x = (F + c I)^-1 g``: a Cholesky solve (default) or conjugate
   gradient (``solver="cg"``), damping ``c >= 0`` (:func:`purepg.optim.natural_step`). If ``F + c I`` is
   not positive definite along ``g`` (Cholesky fails, CG meets ``p^T A p <= 0``, or ``g^T x <= 0``), or
   ``g = 0``, there is no trust-region step: the update is **skipped** -- ``theta`` is kept, the reason
   is issued as a ``RuntimeWarning`` and logged (``skipped = 1``); nothing becomes NaN.
5. Backtracking. (2) and the linear model of (1) are only models. Eq. (5.5) chooses ``j`` as the
   smallest integer such that ``theta + alpha^j d`` satisfies the KL constraint *and* improves the
   objective: with ``alpha = ls_ratio``, trial ``j = 0, 1, ...`` is accepted iff
   ``mean KL(pi_theta || pi_theta+alpha^j d) <= epsilon`` and ``L(theta + alpha^j d) > L(theta)``
   (:func:`purepg.optim.backtracking_line_search`). If no trial passes, ``theta`` is kept.
6. Critic. ``V`` is fitted to ``R_i`` by minibatch Adam (:meth:`purepg.model.value.ValueFunction.fit`), after
   the policy step, so the advantages of this batch used the ``V`` that existed when it was collected.

The step function :func:`purepg.algos.trust_region.natural_policy_step` is shared with :mod:`purepg.algos.trpo`, which differs
in how ``F`` enters (matrix-free ``F v`` products by default) and in its rl-zoo configuration.
NPG forms ``F``: (P, P) doubles, ``P^2 N K`` flops to build and ``P^3 / 3`` to factor, so the default
policy is a 32-32 network (P = 1282 on CartPole, F = 13 MB) rather than 64-64 (P = 4610, F = 170 MB).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from purepg import _check
from purepg.algos import critic, trust_region
from purepg.algos.common import CriticConfig

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
    epsilon                 epsilon         KL radius of eq. (3) and of the line search (docs/math/natural-gradient.md, eq. (5.4); 0.01)
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
        trust_region.check_step_fields(self)


# ----------------------------------------------------------------------------- the algorithm
init = critic.init


def update(ctx, state, batch, rng, progress):
    """One NPG iteration (module docstring, steps 1-6)."""
    c, pol, theta = ctx.config, ctx.pol, state["theta"]
    flat, adv = critic.advantages(ctx, state, batch)                                     # 1
    F = pol.fisher(theta, flat.obs)                                               # 3: (P, P)
    ps = trust_region.natural_policy_step(pol, theta, flat.obs, flat.act, flat.logp_old, adv, F,   # 2, 4, 5
                             epsilon=c.epsilon, damping=c.damping, solver=c.solver, cg_iters=c.cg_iters,
                             cg_tol=c.cg_tol, ls_ratio=c.ls_ratio, ls_max_steps=c.ls_max_steps)
    theta_v, opt_v, vlogs = critic.fit_value(ctx, state, flat, rng)                      # 6
    logs = {**trust_region.step_logs(ps), **vlogs, "entropy": float(np.mean(pol.entropy(ps.theta, flat.obs)))}
    return {"theta": ps.theta, "theta_v": theta_v, "opt_v": opt_v}, logs
