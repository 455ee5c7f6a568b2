r"""TRPO's constrained problem solved by its Lagrangian: Adam on theta', dual ascent on the multiplier nu.

docs/math/trpo.md, eqs. (6.7)-(6.9), gives the alternative to the natural step: the constrained problem

    max_theta'  L(theta') = (1/N) sum_i r_i(theta') A_i     s.t.  D(theta') <= delta,             (1)

with ``r_i = pi_theta'(a_i|s_i) / pi_theta(a_i|s_i)`` and ``D(theta') = mean_i KL(pi_theta || pi_theta')``
over the batch states, has the Lagrangian

    L(theta', nu) = L(theta') - nu (D(theta') - delta),    nu >= 0                                 (2)

(:func:`purepg.pg.surrogates.lagrangian`, value and exact gradient). The multiplier is ``nu``, not
``lambda``, which is GAE's parameter. One iteration on a batch:

1. GAE advantages ``A_i`` from the current ``V`` (standardised), as in :mod:`purepg.algos.trpo`.
2. Primal: starting from ``theta' = theta``, ``epochs`` full-batch Adam steps ascend (2) in
   ``theta'`` at fixed ``nu`` (Adam descends, so it is given ``-grad``). At ``theta' = theta``,
   ``grad D = 0`` and the first step follows the policy gradient; as ``theta'`` moves away, the
   ``-nu grad D`` term pulls it back in proportion to ``nu``.
3. Dual: with the measured ``D = D(theta')``, projected gradient ascent on the dual,

       nu <- max(0, nu + alpha_nu (D - delta))                                                   (3)

   (:func:`purepg.pg.surrogates.update_nu`): ``nu`` rises while the constraint is violated,
   falls while it holds with slack, and never goes below 0 (the multiplier of an inequality).
   ``nu`` carries over to the next batch, so it tracks the penalty that keeps ``D`` near ``delta``.
4. Fit ``V`` as TRPO does (with two threads, on the run's worker thread during steps 2-3).

Unlike TRPO, nothing here enforces ``D <= delta`` on a single iteration: the constraint holds on
average once ``nu`` has adapted. The log shows ``nu`` (used by this iteration), ``nu_next``, ``kl`` =
``D``, the surrogate gain and the final value of (2).
"""
from __future__ import annotations

import numpy as np

from purepg.algos import critic, trust_region
from purepg.algos.common import CriticConfig
from purepg.algos.fields import configclass, like, param
from purepg.optim import adam_init, adam_step
from purepg.pg.surrogates import lagrangian, update_nu

NAME = "trpo-lagrangian"


@configclass
class Config(CriticConfig):
    """Hyperparameters of the Lagrangian TRPO variant. Defaults: CartPole-v1.

    Batch, advantage and critic fields follow :class:`purepg.algos.trpo.Config` (rl-zoo CartPole-v1);
    the primal/dual fields have no published anchor and were tuned on CartPole-v1 (bench/README.md).
    """

    gae_lambda: float = like(trust_region.StepConfig, "gae_lambda", 0.98, "rl-zoo gae_lambda")
    delta: float = param(0.01, "delta", "KL bound of (1)", "(0, inf)", "TRPO")
    nu_init: float = param(1.0, "nu_0", "initial multiplier", "[0, inf)", "purepg, tuned")
    nu_lr: float = param(50.0, "alpha_nu", "dual step size of (3); KL - delta is O(delta)", "(0, inf)",
                         "purepg, tuned")
    lr: float = param(1e-3, "", "Adam step size of the primal ascent", "(0, inf)", "purepg, tuned")
    epochs: int = param(10, "", "full-batch Adam steps on (2) per iteration", "integer >= 1", "purepg, tuned")
    normalize_advantage: bool = like(trust_region.StepConfig, "normalize_advantage", True, "as sb3-contrib TRPO")


def init(ctx, rng):
    """NPG's state plus the policy's Adam state and the multiplier ``nu = nu_init``."""
    state = critic.init(ctx, rng)
    return {**state, "opt": adam_init(state["theta"].size), "nu": float(ctx.config.nu_init)}


def primal(ctx, theta, opt, nu, flat, adv):
    """Step 2: ``epochs`` Adam steps ascending (2) from ``theta``; returns ``(theta', opt, objective)``."""
    c, th = ctx.config, theta
    for _ in range(c.epochs):
        obj = lagrangian(ctx.pol, th, flat.obs, flat.act, flat.logp_old, adv, theta_old=theta, nu=nu,
                         delta=c.delta)                                         # value, grad (P,) eq. (2)
        th, opt = adam_step(th, -obj.grad, opt, lr=c.lr)                        # ascend
    return th, opt, lagrangian(ctx.pol, th, flat.obs, flat.act, flat.logp_old, adv, theta_old=theta, nu=nu,
                               delta=c.delta)


def update(ctx, state, batch, rng, progress):
    """One iteration (module docstring, steps 1-4)."""
    c, theta, nu = ctx.config, state["theta"], state["nu"]
    flat, adv = critic.advantages(ctx, state, batch)                               # 1
    fit = critic.fit_value_started(ctx, state, flat, rng)                         # 4, on the worker if any
    theta_new, opt, obj = primal(ctx, theta, state["opt"], nu, flat, adv)      # 2
    nu_new = update_nu(nu, obj.kl, c.delta, c.nu_lr)                            # 3, eq. (3)
    theta_v, opt_v, vlogs = fit.result()
    L = lambda th: trust_region.surrogate_value(ctx.pol, th, flat.obs, flat.act, flat.logp_old, adv)  # noqa: E731, eq. (1)
    gain = L(theta_new) - L(theta)
    logs = {"nu": nu, "nu_next": nu_new, "kl": obj.kl, "surrogate_gain": gain, "lagrangian": obj.value,
            **vlogs, "entropy": float(np.mean(ctx.pol.entropy(theta_new, flat.obs)))}
    return {"theta": theta_new, "theta_v": theta_v, "opt_v": opt_v, "opt": opt, "nu": nu_new}, logs
