r"""REINFORCE / vanilla policy gradient (Williams 1992; docs/math/reinforce.md).

One iteration on a batch of ``E`` envs times ``T`` steps (``M = E T`` samples)::

    psi_t  = return weight of step t  (reward-to-go G_t, or the total return of t's segment)
    b_t    = baseline  (none | batch mean | learned V(s_t) | variance-optimal per parameter)
    g      = (1/M) sum_t grad log pi_theta(a_t|s_t) (psi_t - b_t)                         (1)
    theta <- Adam(theta, -g)                      (ascent on J)
    theta_v <- minibatch Adam on (1/2M) sum_t (V(s_t) - G_t)^2   (ValueFunction.fit)

Segments and bootstrapping
--------------------------
A vector-env batch does not hold whole episodes: column ``e`` is cut into *segments* at every
``done`` flag and at the batch edges. A segment that did not terminate (a time limit truncated it,
or the batch ended) is continued by its value, exactly as in eq. (4) of :mod:`purepg.pg.returns`::

    G_t = r_t + gamma (1 - terminated_t) (V(s'_t) if t ends its segment else G_{t+1})      (2)

(:func:`purepg.pg.returns.discounted_returns`, ``V`` before this iteration's fit, ``s'_t =
final_obs``). ``G_t`` is the discounted reward-to-go (docs/math/causality.md, eq. (2.2)), and the
total-return weight of a step is ``G`` at the first step of its segment: the return from the
segment start, the ``sum_t r_t`` of docs/math/reinforce.md, eq. (1.3). A segment that began in an earlier batch lacks its earlier
rewards; they multiply later scores with zero mean (the causality argument of
:mod:`purepg.pg.returns`, sec. 2), so dropping them keeps the expectation.
Like most practical code we drop the ``gamma^t`` factor that makes reward-to-go exactly unbiased
for the *discounted* objective (see :mod:`purepg.pg.estimators`, (E2)): gamma acts as a
variance-reducing horizon. With ``gamma = 1`` and whole episodes, (1) is
:func:`purepg.pg.estimators.reinforce_rtg` / :func:`~purepg.pg.estimators.reinforce` rescaled by
``N_episodes / M`` (tested).

Baselines (each keeps (1) unbiased because ``E_a[grad log pi(a|s)] = grad sum_a pi(a|s) = 0``)
-----------------------------------------------------------------------------------------------
* ``none``: ``b = 0``;  ``mean``: ``b = mean_t psi_t``, one constant from the batch (bias
  O(1/M), as in :mod:`purepg.pg.estimators`);  ``value``: ``b_t = V(s_t)`` with ``V`` fitted on
  earlier batches only (fitting on this batch first would correlate ``b_t`` with ``a_t``).
* ``optimal``: one constant per parameter ``k``. Segments ``i`` of the batch are independent, and
  (1) is ``(1/M) sum_i (U_ik - b_k S_ik)`` with ``S_i = sum_{t in i} grad log pi_t`` and
  ``U_i = sum_{t in i} psi_t grad log pi_t``. As ``E[S_ik] = 0``, the variance is
  ``sum_i E[(U_ik - b_k S_ik)^2] - const``, minimised by the pooled ratio
  ``b_k = sum_i S_ik U_ik / sum_i S_ik^2`` -- :func:`purepg.pg.baselines.optimal_baseline_rtg` over the
  segments. For ``total``, ``psi`` is constant on a segment, ``U_i = R_i S_i``, and the ratio is
  ``E[R (sum grad log pi)^2] / E[(sum grad log pi)^2]`` per coordinate (docs/math/baselines.md, eq. (3.2))
  (:func:`purepg.pg.baselines.optimal_baseline`, to rounding). It needs the score matrix (M, P); the
  other baselines need one VJP.
"""
from __future__ import annotations

import numpy as np

from purepg.algos.common import BaseConfig, values
from purepg.algos.fields import configclass, like, param
from purepg.optim import adam_init, adam_step, clip_grad_norm
from purepg.pg.baselines import optimal_baseline_rtg
from purepg.pg.returns import discounted_returns
from purepg.model.value import explained_variance

NAME = "reinforce"
RETURNS = ("reward_to_go", "total")
BASELINES = ("value", "mean", "none", "optimal")


@configclass
class Config(BaseConfig):
    """VPG hyperparameters (defaults tuned on CartPole-v1; anchors: Spinning Up VPG, purepg bench)."""

    num_envs: int = like(BaseConfig, "num_envs", 8, "purepg")
    num_steps: int = like(BaseConfig, "num_steps", 128, "purepg")
    log_std_init: float = like(BaseConfig, "log_std_init", -0.5, "Spinning Up")
    returns: str = param("reward_to_go", "psi", "reward_to_go (G_t) or total (segment return)",
                         " | ".join(RETURNS), "docs/math/causality.md; Williams 1992")
    baseline: str = param("value", "b", "value, mean, none or optimal (per parameter)", " | ".join(BASELINES),
                          "docs/math/baselines.md; Greensmith 2004")
    lr: float = param(3e-3, "alpha", "policy Adam step size", "(0, inf)", "purepg")
    max_grad_norm: float | None = param(None, "", "global-norm clipping of g", "None or (0, inf)", "purepg")
    vf_lr: float = param(1e-3, "", "value-function Adam step size", "(0, inf)", "Spinning Up")
    vf_epochs: int = param(10, "", "passes of the value fit per iteration", "integer >= 1", "purepg")
    vf_minibatch_size: int = param(64, "", "samples per value-fit step", "integer >= 1", "purepg")


def init(ctx, rng):
    """theta, theta_v from their inits; fresh Adam states."""
    theta, theta_v = ctx.pol.init(rng), ctx.vf.init(rng)         # (P,), (P_v,)
    return {"theta": theta, "theta_v": theta_v, "opt": adam_init(theta.size), "opt_v": adam_init(theta_v.size)}


def segment_starts(done):
    """(T, E) bool: True where a segment starts, at ``t = 0`` and right after a done."""
    done = np.asarray(done, dtype=bool)                          # (T, E)
    start = np.ones_like(done)
    start[1:] = done[:-1]
    return start


def segment_ids(done):
    """Segment index of every slot of a (T, E) batch (see :func:`segment_starts`).

    Segments are numbered column by column (env 0's first, then env 1's, ...): (T, E) int64.
    """
    start = segment_starts(done)                                 # (T, E)
    return (np.cumsum(start.T.ravel()) - 1).reshape(start.T.shape).T


def weights(batch, v_next, gamma, returns):
    """``psi`` (T, E) and the value targets ``G`` (T, E) of eq. (2); see the module docstring."""
    G = discounted_returns(batch.rew, batch.terminated, batch.truncated, v_next, gamma)   # (T, E)
    if returns == "reward_to_go":
        return G, G
    done = batch.terminated | batch.truncated
    ids, start = segment_ids(done), segment_starts(done)        # (T, E) each
    first = np.empty(ids.max() + 1)
    first[ids[start]] = G[start]                                 # G at the first step of each segment
    return first[ids], G                                         # (T, E)


def policy_gradient(pol, theta, obs, act, psi, seg, baseline, v):
    """Eq. (1) with the chosen baseline: ``g`` (P,).

    ``obs`` (M, d), ``act`` (M,[k]), ``psi`` (M,) return weights, ``seg`` (M,) segment ids,
    ``v`` (M,) values V(s_t) (used by the ``value`` baseline).
    """
    M = psi.size
    if baseline == "optimal":
        S = pol.score(theta, obs, act)                           # (M, P)
        order = np.argsort(seg, kind="stable")
        parts = np.split(order, np.flatnonzero(np.diff(seg[order])) + 1)   # sample indices of each segment
        b = optimal_baseline_rtg([S[p] for p in parts], [psi[p] for p in parts])   # (P,)
        return (S.T @ psi - b * S.sum(axis=0)) / M               # (P,)
    b = {"none": 0.0, "mean": float(np.mean(psi)), "value": v}[baseline]
    return pol.log_prob_grad(theta, obs, act, (psi - b) / M)     # (P,)


def update(ctx, state, batch, rng, progress):
    """One VPG iteration (module docstring); returns ``(state, logs)``."""
    cfg, pol = ctx.config, ctx.pol
    T, E, d = batch.obs.shape
    v = values(ctx.vf, state["theta_v"], batch.obs)              # (T, E)  V before the fit
    v_next = values(ctx.vf, state["theta_v"], batch.final_obs)   # (T, E)
    psi, G = weights(batch, v_next, cfg.gamma, cfg.returns)      # (T, E) each
    obs, act = batch.obs.reshape(T * E, d), batch.act.reshape(T * E, *batch.act.shape[2:])
    seg = segment_ids(batch.terminated | batch.truncated).reshape(-1)
    g = policy_gradient(pol, state["theta"], obs, act, psi.reshape(-1), seg, cfg.baseline, v.reshape(-1))
    grad_norm = float(np.linalg.norm(g))
    if cfg.max_grad_norm is not None:
        g, _ = clip_grad_norm(g, cfg.max_grad_norm)
    theta, opt = adam_step(state["theta"], -g, state["opt"], lr=cfg.lr)        # ascent on J
    theta_v, opt_v, fit = ctx.vf.fit(state["theta_v"], state["opt_v"], obs, G.reshape(-1), lr=cfg.vf_lr,
                                     epochs=cfg.vf_epochs, minibatch_size=cfg.vf_minibatch_size, rng=rng)
    logs = {"kl": pol.kl(state["theta"], theta, obs), "entropy": float(np.mean(pol.entropy(theta, obs))),
            "value_loss": 2.0 * fit.loss_before, "explained_variance": explained_variance(v.reshape(-1), G.reshape(-1)),
            "grad_norm": grad_norm}
    return {"theta": theta, "theta_v": theta_v, "opt": opt, "opt_v": opt_v}, logs
