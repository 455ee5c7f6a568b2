r"""TRPO's constrained problem solved by its Lagrangian: Adam on theta', dual ascent on lambda.

docs/math/trpo.md, eqs. (6.7)-(6.9), gives the alternative to the natural step: the constrained problem

    max_theta'  L(theta') = (1/N) sum_i r_i(theta') A_i     s.t.  D(theta') <= delta,             (1)

with ``r_i = pi_theta'(a_i|s_i) / pi_theta(a_i|s_i)`` and ``D(theta') = mean_i KL(pi_theta || pi_theta')``
over the batch states, has the Lagrangian

    L(theta', lam) = L(theta') - lam (D(theta') - delta),    lam >= 0                              (2)

(:func:`purepg.pg.surrogates.lagrangian`, value and exact gradient). One iteration on a batch:

1. GAE advantages ``A_i`` from the current ``V`` (standardised), as in :mod:`purepg.algos.trpo`.
2. Primal: starting from ``theta' = theta``, ``pi_steps`` full-batch Adam steps ascend (2) in
   ``theta'`` at fixed ``lam`` (Adam descends, so it is given ``-grad``). At ``theta' = theta``,
   ``grad D = 0`` and the first step follows the policy gradient; as ``theta'`` moves away, the
   ``-lam grad D`` term pulls it back in proportion to ``lam``.
3. Dual: with the measured ``D = D(theta')``, projected gradient ascent on the dual,

       lam <- max(0, lam + alpha_lam (D - delta))                                                (3)

   (:func:`purepg.pg.surrogates.update_lambda`): ``lam`` rises while the constraint is violated,
   falls while it holds with slack, and never goes below 0 (the multiplier of an inequality).
   ``lam`` carries over to the next batch, so it tracks the penalty that keeps ``D`` near ``delta``.
4. Fit ``V`` as TRPO does.

Unlike TRPO, nothing here enforces ``D <= delta`` on a single iteration: the constraint holds on
average once ``lam`` has adapted. The log shows ``lam``, ``kl`` = ``D``, the surrogate gain and the
final value of (2).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from purepg import _check
from purepg.algos.common import CriticConfig
from purepg.algos import critic, trust_region
from purepg.optim import adam_init, adam_step
from purepg.pg.surrogates import lagrangian, update_lambda

NAME = "trpo-lagrangian"


@dataclass(frozen=True)
class Config(CriticConfig):
    """Hyperparameters of the Lagrangian TRPO variant. Defaults: CartPole-v1.

    Batch, advantage and critic fields follow :class:`purepg.algos.trpo.Config` (rl-zoo CartPole-v1);
    the primal/dual fields have no published anchor and were tuned on CartPole-v1 (bench/README.md).

    =====================  ==========  ================================================================
    field                  symbol      meaning (source)
    =====================  ==========  ================================================================
    num_envs               E           env copies (as TRPO, rl-zoo: 2)
    num_steps              T           steps per copy per batch (as TRPO, rl-zoo: 512)
    hidden                 --          policy hidden widths (SB3 MlpPolicy: 64-64)
    activation             --          "tanh" or "relu" (SB3: tanh)
    normalize_obs          --          running observation normalisation (off)
    normalize_reward       --          rewards / running std of the discounted return (off)
    log_std_init           log sigma   initial log-std of a Gaussian policy (0)
    vf_hidden              --          value network hidden widths (64-64)
    gamma                  gamma       discount (rl-zoo: 0.99)
    init                   --          orthogonal (with gains) or torch (nn.Linear default) (orthogonal)
    gae_lambda             lambda      GAE parameter (rl-zoo: 0.98)
    delta                  delta       KL bound of (1) (TRPO: 0.01)
    lam_init               lambda_0    initial multiplier (tuned: 1.0)
    lam_lr                 alpha_lam   dual step size of (3) (tuned: 50; KL - delta is O(delta))
    pi_lr                  --          Adam step size of the primal ascent (tuned: 1e-3)
    pi_steps               --          full-batch Adam steps on (2) per batch (tuned: 10)
    normalize_advantage    --          standardise A over the batch (True, as sb3-contrib TRPO)
    vf_lr                  --          critic Adam step size (rl-zoo: 1e-3)
    vf_epochs              --          critic passes per batch (rl-zoo n_critic_updates: 20)
    vf_minibatch_size      --          critic minibatch, divides N (rl-zoo batch_size: 512)
    =====================  ==========  ================================================================
    """

    gae_lambda: float = 0.98
    delta: float = 0.01
    lam_init: float = 1.0
    lam_lr: float = 50.0
    pi_lr: float = 1e-3
    pi_steps: int = 10
    normalize_advantage: bool = True

    def __post_init__(self):
        super().__post_init__()
        _check.in_unit_interval(_check.number(self.gae_lambda, "gae_lambda"), "gae_lambda")
        _check.positive(_check.number(self.delta, "delta"), "delta")
        _check.non_negative(self.lam_init, "lam_init")
        _check.positive(_check.number(self.lam_lr, "lam_lr"), "lam_lr")
        _check.positive(_check.number(self.pi_lr, "pi_lr"), "pi_lr")
        _check.positive_int(self.pi_steps, "pi_steps")
        _check.boolean(self.normalize_advantage, "normalize_advantage")
        critic.check_critic_fields(self)


def init(ctx, rng):
    """NPG's state plus the policy's Adam state and the multiplier ``lam = lam_init``."""
    state = critic.init(ctx, rng)
    return {**state, "opt": adam_init(state["theta"].size), "lam": float(ctx.config.lam_init)}


def primal(ctx, theta, opt, lam, flat, adv):
    """Step 2: ``pi_steps`` Adam steps ascending (2) from ``theta``; returns ``(theta', opt, objective)``."""
    c, th = ctx.config, theta
    for _ in range(c.pi_steps):
        obj = lagrangian(ctx.pol, th, flat.obs, flat.act, flat.logp_old, adv, theta_old=theta, lam=lam,
                         delta=c.delta)                                         # value, grad (P,) eq. (2)
        th, opt = adam_step(th, -obj.grad, opt, lr=c.pi_lr)                     # ascend
    return th, opt, lagrangian(ctx.pol, th, flat.obs, flat.act, flat.logp_old, adv, theta_old=theta, lam=lam,
                               delta=c.delta)


def update(ctx, state, batch, rng, progress):
    """One iteration (module docstring, steps 1-4)."""
    c, theta, lam = ctx.config, state["theta"], state["lam"]
    flat, adv = critic.advantages(ctx, state, batch)                               # 1
    theta_new, opt, obj = primal(ctx, theta, state["opt"], lam, flat, adv)     # 2
    lam_new = update_lambda(lam, obj.kl, c.delta, c.lam_lr)                     # 3, eq. (3)
    theta_v, opt_v, vlogs = critic.fit_value(ctx, state, flat, rng)                # 4
    L = lambda th: trust_region.surrogate_value(ctx.pol, th, flat.obs, flat.act, flat.logp_old, adv)  # noqa: E731, eq. (1)
    gain = L(theta_new) - L(theta)
    logs = {"lam": lam, "lam_next": lam_new, "kl": obj.kl, "surrogate_gain": gain, "lagrangian": obj.value,
            **vlogs, "entropy": float(np.mean(ctx.pol.entropy(theta_new, flat.obs)))}
    return {"theta": theta_new, "theta_v": theta_v, "opt_v": opt_v, "opt": opt, "lam": lam_new}, logs
