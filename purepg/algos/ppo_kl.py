r"""PPO with an adaptive KL penalty (Schulman et al. 2017, "PPO", sec. 4, eq. 8).

The loop is :mod:`purepg.algos.ppo`'s (same GAE, minibatch epochs, value loss, entropy bonus,
clipping and schedules); only the policy objective and one rule after the epochs differ::

    L^KLPEN(theta) = mean_B [ r_t(theta) A_t ] - beta * mean_B KL(pi_old(.|s) || pi_theta(.|s))   (eq. 8)

maximised on each minibatch B (:func:`purepg.pg.surrogates.ppo_kl_penalty`, its exact gradient
``grad mean(r A) - beta grad KL``). After the K epochs, with ``d`` the exact mean KL over the whole
batch (:meth:`purepg.model.policy.Policy.kl`), the paper's rule with the target ``d_targ`` (field ``target_kl``; sec. 4,
:func:`purepg.pg.surrogates.update_beta`)::

    d < d_targ / 1.5  ->  beta <- beta / 2;      d > 1.5 d_targ  ->  beta <- 2 beta.

``beta`` lives in the algorithm state (checkpointed with it) and is logged as ``beta``, the value the
next iteration will use. The paper's rule has no bounds; purepg keeps ``beta`` in
``[beta_min, beta_max]`` because a long run whose KL stays below ``d_targ / 1.5`` (e.g. a Gaussian
whose log-std collapsed) halves it every iteration and it underflows to 0 after about 1075 halvings,
after which no doubling can bring it back. The default bounds (1e-8, 1e8) are never reached in the
runs of bench/README.md except in that degenerate case.
"""
from __future__ import annotations

from purepg import _check
from purepg.algos import ppo
from purepg.algos.fields import configclass, param
from purepg.pg.surrogates import ppo_kl_penalty, update_beta

NAME = "ppo-kl"


@configclass
class Config(ppo.Shared):
    """PPO adaptive-KL hyperparameters: the fields of :class:`purepg.algos.ppo.Shared` and the penalty's."""

    beta_init: float = param(1.0, "beta_0", "initial KL penalty coefficient", "(0, inf)", "PPO sec. 4")
    target_kl: float = param(0.01, "d_targ", "target mean KL per iteration", "(0, inf)", "PPO sec. 6.1")
    beta_min: float = param(1e-8, "", "lower bound of beta (against underflow, see above)", "(0, inf)", "purepg")
    beta_max: float = param(1e8, "", "upper bound of beta", "(0, inf)", "purepg")

    def __post_init__(self):
        super().__post_init__()
        if not self.beta_min <= self.beta_init <= self.beta_max:
            _check.fail("beta_init", f"a value in [beta_min, beta_max] = [{self.beta_min}, {self.beta_max}]",
                        self.beta_init, "widen the bounds or change beta_init")


def _schedule(cfg, state, progress):
    return {"beta": state["beta"]}


def _objective(pol, theta, mb, theta_old, coefs, ws=None):
    """Eq. 8 on the minibatch: ``mean(r A) - beta KL(pi_old || pi_theta)`` (fresh arrays: ``ws`` unused)."""
    return ppo_kl_penalty(pol, theta, mb.obs, mb.act, mb.logp_old, mb.adv, theta_old=theta_old, beta=coefs["beta"])


def _adapt_beta(cfg, state, kl):
    """Sec. 4: halve or double beta from the measured mean KL ``kl``, kept in [beta_min, beta_max]."""
    beta = min(max(update_beta(state["beta"], kl, cfg.target_kl), cfg.beta_min), cfg.beta_max)
    return {**state, "beta": beta}, {"beta": beta}


KL_PENALTY = ppo.Variant(_schedule, _objective, _adapt_beta)


def init(ctx, rng):
    """:func:`purepg.algos.ppo.init` plus ``beta = beta_init``."""
    return {**ppo.init(ctx, rng), "beta": float(ctx.config.beta_init)}


def update(ctx, state, batch, rng, progress, *, order=None, trace=None):
    """One iteration of the PPO loop with the KL-penalty objective and the beta rule."""
    return ppo.run(ctx, state, batch, rng, progress, KL_PENALTY, order=order, trace=trace)
