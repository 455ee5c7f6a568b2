r"""PPO with an adaptive KL penalty (Schulman et al. 2017, "PPO", sec. 4, eq. 8).

The loop is :mod:`purepg.algos.ppo`'s (same GAE, minibatch epochs, value loss, entropy bonus,
clipping and schedules); only the policy objective and one rule after the epochs differ::

    L^KLPEN(theta) = mean_B [ r_t(theta) A_t ] - beta * mean_B KL(pi_old(.|s) || pi_theta(.|s))   (eq. 8)

maximised on each minibatch B (:func:`purepg.pg.surrogates.ppo_kl_penalty`, its exact gradient
``grad mean(r A) - beta grad KL``). After the K epochs, with ``d`` the exact mean KL over the whole
batch (:meth:`Policy.kl`), the paper's rule (sec. 4, :func:`purepg.pg.surrogates.update_beta`)::

    d < d_targ / 1.5  ->  beta <- beta / 2;      d > 1.5 d_targ  ->  beta <- 2 beta.

``beta`` lives in the algorithm state (checkpointed with it) and is logged as ``beta``, the value the
next iteration will use. The paper's rule has no bounds; purepg keeps ``beta`` in
``[beta_min, beta_max]`` because a long run whose KL stays below ``d_targ / 1.5`` (e.g. a Gaussian
whose log-std collapsed) halves it every iteration and it underflows to 0 after about 1075 halvings,
after which no doubling can bring it back. The default bounds (1e-8, 1e8) are never reached in the
runs of bench/README.md except in that degenerate case.
"""
from __future__ import annotations

import dataclasses

from purepg import _check
from purepg.algos import ppo
from purepg.pg.surrogates import ppo_kl_penalty, update_beta

NAME = "ppo-kl"


@dataclasses.dataclass(frozen=True)
class Config(ppo.Shared):
    """PPO adaptive-KL hyperparameters: the fields of :class:`purepg.algos.ppo.Shared` and

    ==================  ========  =====================================================  ===========================
    field               symbol    meaning                                                source (value)
    ==================  ========  =====================================================  ===========================
    beta_init           beta_0    initial KL penalty coefficient                         PPO sec. 4 (1.0)
    d_targ              d_targ    target mean KL per iteration                           PPO sec. 6.1 (0.01)
    beta_min            --        lower bound of beta (against underflow, see above)     purepg (1e-8)
    beta_max            --        upper bound of beta                                    purepg (1e8)
    ==================  ========  =====================================================  ===========================
    """

    beta_init: float = 1.0
    d_targ: float = 0.01
    beta_min: float = 1e-8
    beta_max: float = 1e8

    def __post_init__(self):
        super().__post_init__()
        _check.positive(_check.number(self.beta_init, "beta_init"), "beta_init")
        _check.positive(_check.number(self.d_targ, "d_targ"), "d_targ")
        _check.positive(_check.number(self.beta_min, "beta_min"), "beta_min")
        _check.number(self.beta_max, "beta_max")
        if not self.beta_min <= self.beta_init <= self.beta_max:
            raise ValueError(f"beta_init: expected a value in [beta_min, beta_max] = [{self.beta_min}, "
                             f"{self.beta_max}], got {self.beta_init}. Fix: widen the bounds or change beta_init")


def _schedule(cfg, state, progress):
    return {"beta": state["beta"]}


def _objective(pol, theta, mb, theta_old, coefs):
    """Eq. 8 on the minibatch: ``mean(r A) - beta KL(pi_old || pi_theta)``."""
    return ppo_kl_penalty(pol, theta, mb.obs, mb.act, mb.logp_old, mb.adv, theta_old=theta_old, beta=coefs["beta"])


def _adapt_beta(cfg, state, kl):
    """Sec. 4: halve or double beta from the measured mean KL ``kl``, kept in [beta_min, beta_max]."""
    beta = min(max(update_beta(state["beta"], kl, cfg.d_targ), cfg.beta_min), cfg.beta_max)
    return {**state, "beta": beta}, {"beta": beta}


KL_PENALTY = ppo.Variant(_schedule, _objective, _adapt_beta)


def init(ctx, rng):
    """:func:`purepg.algos.ppo.init` plus ``beta = beta_init``."""
    return {**ppo.init(ctx, rng), "beta": float(ctx.config.beta_init)}


def update(ctx, state, batch, rng, progress, *, order=None, trace=None):
    """One iteration of the PPO loop with the KL-penalty objective and the beta rule."""
    return ppo.run(ctx, state, batch, rng, progress, KL_PENALTY, order=order, trace=trace)
