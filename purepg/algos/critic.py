"""The critic shared by NPG, TRPO, TRPO-Lagrangian and the off-policy learner: GAE advantages from the
current ``V``, and ``V`` fitted to the value targets by minibatch Adam after the policy step.

The fit and the policy step read the same batch and nothing of each other, so :func:`fit_value_started`
hands the fit to the run's worker thread (``ctx.worker``, :mod:`purepg.run.workers`) when the run has
two, and the algorithm computes its policy step meanwhile; with one thread the fit runs where its
result is asked for, after the policy step. The fit is the only part that draws from ``rng`` (its
minibatch permutations) until its result is asked for, so the draws, and the results, are the same
bits either way.
"""
from __future__ import annotations

from purepg.algos.common import flatten_with_gae, normalize_advantage
from purepg.optim import adam_init


def fit_value(ctx, state, flat, rng, order=None):
    """Step 6: minibatch Adam on the value targets ``flat.ret``; returns ``(theta_v, opt_v, logs)``.

    The conventions ``vf_loss`` (``"half_mse"``: purepg's eq. (1), ``"mse"``: twice it) and ``vf_adam_eps``
    apply where the Config has them; ``order`` (one permutation per epoch) replaces the draws of ``rng``.
    """
    c = ctx.config
    scale = 2.0 if getattr(c, "vf_loss", "half_mse") == "mse" else 1.0
    theta_v, opt_v, info = ctx.vf.fit(state["theta_v"], state["opt_v"], flat.obs, flat.ret, lr=c.vf_lr,
                                      epochs=c.vf_epochs, minibatch_size=c.vf_minibatch_size, rng=rng,
                                      eps=getattr(c, "vf_adam_eps", 1e-8), scale=scale, order=order)
    return theta_v, opt_v, {"value_loss": info.loss_after, "explained_variance": info.explained_variance_before}


def fit_value_started(ctx, state, flat, rng, order=None):
    """:func:`fit_value` started on the run's worker (``ctx.worker``); ``.result()`` is its return value.

    Until then the caller must not draw from ``rng`` (the fit does) nor write ``state`` or ``flat``.
    """
    return ctx.worker.submit(fit_value, ctx, state, flat, rng, order)


def advantages(ctx, state, batch):
    """Step 1: the flattened batch with GAE advantages, and ``A`` (standardised if configured)."""
    c = ctx.config
    flat = flatten_with_gae(ctx, state["theta_v"], batch, c.gamma, c.gae_lambda)
    norm = getattr(c, "advantage_norm", "population")
    return flat, (normalize_advantage(flat.adv, norm) if c.normalize_advantage else flat.adv)   # (N,)


def init(ctx, rng):
    """Policy parameters ``theta``, value parameters ``theta_v`` and the critic's Adam state."""
    theta_v = ctx.vf.init(rng)
    return {"theta": ctx.pol.init(rng), "theta_v": theta_v, "opt_v": adam_init(theta_v.size)}
