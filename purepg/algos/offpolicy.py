r"""Off-policy policy gradient (docs/math/offpolicy.md): reuse the last K batches through importance weights.

Each batch is sampled by the parameters current at the time, the *behaviour* policy ``pi_b``, whose
log-probabilities ``log pi_b(a_t|s_t)`` the batch records (``Batch.logp_old``). The learner keeps the
last ``K`` batches and, at the current ``theta'``, estimates ``grad J(theta')`` from each of them with
the ratios ``rho_t = pi_theta'(a_t|s_t) / pi_b(a_t|s_t)`` (:mod:`purepg.pg.estimators`,
docs/math/offpolicy.md):

* ``weights="per_decision"`` -- eq. (E4): the reward ``r_t'`` is weighted by the ratio of the prefix
  that produced it, ``prod_{t''<=t'} rho_t''``; unbiased, but the products' variance grows with t';
* ``weights="first_order"`` -- eq. (E5): one ratio per step, ``rho_t gamma^t g'_t Q_t``; the state
  distribution ratio is dropped, so it is biased unless ``theta' = pi_b``, with far smaller variance.

One iteration: store the new batch (dropping the oldest beyond K), then ``epochs`` times
average the K estimates and take one Adam step ascending ``J``; then fit the critic on the newest batch.

From a vector-env batch to trajectories (the glue this module adds)
-------------------------------------------------------------------
The estimators take trajectories; a batch holds ``E`` streams of ``T`` steps cut at episode ends.
Every maximal run of one env copy's steps between episode ends (or the batch edges) is passed as one
trajectory, with its time index ``t`` restarting at 0. For a run that began in an earlier batch the
``gamma^t`` factor and the ratio products therefore start at the batch edge, not at the episode start
(an approximation: the earlier part of the episode lies in another batch, possibly of another
behaviour policy).

Baseline by reward shaping (``baseline="value"``)
------------------------------------------------------
The estimators have no baseline for off-policy data, so the critic enters through the rewards: each
reward is replaced by the TD residual ``delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)``
(:func:`purepg.pg.returns.gae` with ``lambda = 0``). Inside a run ``s'_t = s_{t+1}``, so the discounted
suffix sums telescope: ``sum_k gamma^k delta_{t+k} = G_t - V(s_t)``, where ``G_t`` is the return
bootstrapped with ``V`` where the run is cut by a time limit or the batch end. This is a baseline
``V(s_t)`` for every estimator: in (E4) the term ``-gamma^t V(s_t)`` carries the prefix ratio up to t and
``E_{a_t ~ pi_b}[rho_t grad log pi_theta'(a_t|s_t)] = E_{a ~ pi_theta'}[grad log pi_theta'] = 0``; the
``+gamma^(t+1) V(s_{t+1})`` of step t cancels, in expectation over ``a_{t+1}`` (``E[rho_{t+1}] = 1``),
the ``-gamma^(t+1) V(s_{t+1})`` of step t+1 (potential-based shaping, Ng et al. 1999). So the shaped
estimate has the expectation of the unshaped one with bootstrapped returns, and usually less variance.
With ``baseline="none"`` the raw rewards are used and a run cut by the batch end is not bootstrapped.

Truncated weights (``truncation = c``)
--------------------------------------
``rho_t <- min(rho_t, c)`` per step (for per-decision, inside the products), implemented by passing
``max(log pi_b, log pi_theta' - log c)`` as the behaviour log-probability. This is a *bias* traded
for variance: ``E_b[min(rho, c) f] = E_theta'[f] - E_b[(rho - c)^+ f]``, so the actions ``pi_theta'``
favours more than ``c`` times as much as ``pi_b`` are under-counted (Ionides 2008; Retrace and
V-trace use the same per-step truncation). ``None`` disables it.

Diagnostics: the effective sample size of the per-step weights ``w`` of batch k (``rho_t`` for
first-order, the prefix products for per-decision, after truncation), normalised to (0, 1]:
``ESS_k / M_k = (sum w)^2 / (M_k sum w^2)`` (Kong 1992). 1 means equal weights (on-policy data);
logged as the mean and minimum over the stored batches.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from purepg.pg import estimators
from purepg.algos.common import CriticConfig, flatten_with_gae, values
from purepg.algos.critic import fit_value_started
from purepg.algos.fields import configclass, param
from purepg.optim import adam_init, adam_step
from purepg.pg.returns import gae

NAME = "offpolicy"
_FIELDS = ("obs", "act", "rew", "terminated", "truncated", "final_obs", "logp_old")
_ESTIMATORS = {"per_decision": estimators.offpolicy_per_decision, "first_order": estimators.offpolicy_first_order}


@configclass
class Config(CriticConfig):
    """Hyperparameters of the off-policy learner. Defaults: CartPole-v1 (tuned, bench/README.md); the
    batch and critic fields as TRPO's."""

    buffer_batches: int = param(2, "K", "batches kept; K = 1 with one epoch is on-policy", "integer >= 1",
                                "purepg, tuned")
    epochs: int = param(1, "U", "Adam steps per iteration, each on all K batches", "integer >= 1", "purepg")
    weights: str = param("first_order", "", "per_decision (E4) or first_order (E5: lower variance)",
                         " | ".join(_ESTIMATORS), "purepg, tuned")
    truncation: Optional[float] = param(None, "c", "per-step ratio cap min(rho, c) (None: unbiased E4)",
                                        "None or (0, inf)", "purepg")
    baseline: str = param("value", "", "value (TD-residual shaping, module docstring) or none", "value | none",
                          "purepg, tuned")
    lr: float = param(1e-3, "", "policy Adam step size", "(0, inf)", "purepg, tuned")


# ----------------------------------------------------------------------------- batch glue
def segments(done):
    """``(e, t0, t1)`` of every maximal run of copy ``e``'s steps between episode ends: done (T, E) bool."""
    T, E = done.shape
    out = []
    for e in range(E):
        t0 = 0
        for t1 in [*np.flatnonzero(done[:-1, e]), T - 1]:
            out.append((e, t0, int(t1)))
            t0 = int(t1) + 1
    return out


def shaped_rewards(ctx, theta_v, b):
    """``delta_t = r_t + gamma (1 - terminated_t) V(s'_t) - V(s_t)`` (T, E): GAE with lambda = 0."""
    v, v_next = values(ctx.vf, theta_v, b["obs"]), values(ctx.vf, theta_v, b["final_obs"])   # (T, E) each
    delta, _ = gae(b["rew"], v, v_next, b["terminated"], b["truncated"], ctx.config.gamma, 0.0)
    return delta


def normalised_ess(w):
    """``(sum w)^2 / (M sum w^2)`` in (0, 1] for weights w (M,) >= 0, not all zero.

    The ratio does not change when every weight is scaled, so it is computed on ``u = w / max w`` in
    [0, 1]: ``sum u^2 >= 1`` cannot underflow, as ``w^2`` does for weights below ~1e-154 (importance
    ratios ``exp(log pi' - log pi_b)`` of far-off actions), which would give 0 / 0."""
    u = w / np.max(w)                                                            # (M,)
    return float(np.sum(u) ** 2 / (w.size * np.sum(u * u)))


def batch_gradient(ctx, theta, theta_v, b):
    """The off-policy estimate of ``grad J(theta)`` (P,) from one stored batch ``b`` (dict of (T, E, ...)),
    with its normalised ESS and the fraction of truncated ratios."""
    c, pol = ctx.config, ctx.pol
    T, E, d = b["obs"].shape
    rew = shaped_rewards(ctx, theta_v, b) if c.baseline == "value" else b["rew"]          # (T, E)
    logp_new = pol.log_prob(theta, b["obs"].reshape(T * E, d), b["act"].reshape(T * E, *b["act"].shape[2:]))
    logp_new = logp_new.reshape(T, E)                                                     # (T, E)
    logp_b = b["logp_old"]                                                                # (T, E)
    if c.truncation is not None:                       # rho <- min(rho, c)  <=>  log pi_b <- max(., log pi' - log c)
        logp_b = np.maximum(logp_b, logp_new - np.log(c.truncation))
    segs = segments(b["terminated"] | b["truncated"])
    take = lambda x: [x[t0:t1 + 1, e] for e, t0, t1 in segs]                              # noqa: E731
    g = _ESTIMATORS[c.weights](pol, theta, take(b["obs"]), take(b["act"]), take(rew), take(logp_b), gamma=c.gamma)
    log_rho = take(logp_new - logp_b)                                                     # per run (T_i,)
    if c.weights == "per_decision":
        log_rho = [np.cumsum(x) for x in log_rho]      # log prod_{t''<=t} rho_t''
    w = np.exp(np.concatenate(log_rho))                                                   # (T E,)
    cut = float(np.mean(logp_new - b["logp_old"] > np.log(c.truncation))) if c.truncation is not None else 0.0
    return g, normalised_ess(w), cut


# ----------------------------------------------------------------------------- buffer
def _empty_buffer(ctx):
    c, pol = ctx.config, ctx.pol
    K, T, E, d = c.buffer_batches, c.num_steps, c.num_envs, pol.obs_dim
    act = np.zeros((K, T, E), np.int64) if pol.discrete else np.zeros((K, T, E, pol.act_dim))
    return {"obs": np.zeros((K, T, E, d)), "act": act, "rew": np.zeros((K, T, E)),
            "terminated": np.zeros((K, T, E), bool), "truncated": np.zeros((K, T, E), bool),
            "final_obs": np.zeros((K, T, E, d)), "logp_old": np.zeros((K, T, E))}


def push(buffer, count, head, batch):
    """Store ``batch`` in slot ``head`` (overwriting the oldest when full): ``(buffer, count, head)``."""
    new = {k: v.copy() for k, v in buffer.items()}
    for k in _FIELDS:
        new[k][head] = getattr(batch, k)
    K = new["rew"].shape[0]
    return new, min(count + 1, K), (head + 1) % K


def stored(buffer, count):
    """The ``count`` stored batches as dicts of (T, E, ...) arrays."""
    return [{k: buffer[k][i] for k in _FIELDS} for i in range(count)]


# ----------------------------------------------------------------------------- the algorithm
def init(ctx, rng):
    """Policy and critic parameters, their Adam states, and an empty buffer of K batches."""
    theta, theta_v = ctx.pol.init(rng), ctx.vf.init(rng)
    return {"theta": theta, "opt": adam_init(theta.size), "theta_v": theta_v, "opt_v": adam_init(theta_v.size),
            "buffer": _empty_buffer(ctx), "count": 0, "head": 0}


def update(ctx, state, batch, rng, progress):
    """Store the batch, take ``epochs`` Adam steps on the mean of the K estimates, fit V.

    The steps read ``V`` as it was before the fit: with two threads the fit runs on the run's worker
    thread meanwhile (:func:`purepg.algos.critic.fit_value_started`; the same bits).
    """
    c = ctx.config
    buffer, count, head = push(state["buffer"], int(state["count"]), int(state["head"]), batch)
    if c.baseline == "value":                         # critic: bootstrapped Monte-Carlo targets (lambda = 1)
        fit = fit_value_started(ctx, state, flatten_with_gae(ctx, state["theta_v"], batch, c.gamma, 1.0), rng)
    theta, opt, ess, cut = state["theta"], state["opt"], [], []
    for _ in range(c.epochs):
        out = [batch_gradient(ctx, theta, state["theta_v"], b) for b in stored(buffer, count)]
        g = np.mean([o[0] for o in out], axis=0)                                         # (P,)
        theta, opt = adam_step(theta, -g, opt, lr=c.lr)                                   # ascend J
        ess.append([o[1] for o in out])
        cut.append([o[2] for o in out])
    new = {**state, "theta": theta, "opt": opt, "buffer": buffer, "count": count, "head": head}
    logs = {"ess_mean": float(np.mean(ess)), "ess_min": float(np.min(ess)), "truncated_fraction": float(np.mean(cut)),
            "grad_norm": float(np.linalg.norm(g)), "stored_batches": count}
    if c.baseline == "value":
        new["theta_v"], new["opt_v"], vlogs = fit.result()
        logs.update(vlogs)
    return new, logs
