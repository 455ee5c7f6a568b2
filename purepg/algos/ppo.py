r"""Proximal policy optimisation, clipped objective (Schulman et al. 2017, "PPO", Algorithm 1).

One iteration (the runner collects the batch; :func:`update` does the rest)::

    collect T steps of E envs with pi_old = pi_theta                     (Algorithm 1, line 3)
    A_t, R_t = GAE(gamma, lambda) with V_old, R_t = A_t + V_old(s_t)         (line 4; GAE paper eq. 16)
    for epoch = 1..K, for each minibatch B of a fresh permutation:        (line 6)
        [stop all epochs if mean_B KL(pi_old || pi_theta) > 1.5 d_stop]  (optional kl_stop, SB3's target_kl)
        A_hat = (A - mean_B A) / std_B A                                  (per-minibatch normalisation)
        L(theta, theta_v) = -L^CLIP(theta) - c_2 S(theta) + c_1 mean_B (V(s) - R)^2     (PPO eq. 9)
        (g, g_v) = clip_by_global_norm((grad_theta L, grad_theta_v L), max_grad_norm)
        theta <- Adam(theta, g),  theta_v <- Adam(theta_v, g_v)
    theta_old <- theta                                                     (line 8)

with ``L^CLIP`` of PPO eq. 7 (:func:`purepg.pg.surrogates.ppo_clip`), the entropy ``S`` (eq. 9,
:func:`purepg.pg.surrogates.entropy_bonus`) and the value loss of :mod:`purepg.model.value`. The learning rate
and the clip range follow linear schedules in the fraction of steps done at the start of the
iteration (Stable-Baselines3 evaluates them after the batch, one iteration later).

Separate networks, one loss. The policy ``theta`` and the value function ``theta_v`` are two flat
vectors with two Adam states (``opt``, ``opt_v`` in the state). The combined loss ``L`` above has
``grad_theta L`` free of ``theta_v`` and ``grad_theta_v L`` free of ``theta``, because the parameter
sets are disjoint; Adam acts on every coordinate alone, so two Adam states with one step count take
exactly the steps one Adam on the concatenation ``x = [theta, theta_v]`` would (PyTorch's single
optimiser over both networks, as in SB3). The epochs therefore run on ``x`` and its one Adam state
(:class:`Joint`, :func:`join` / :func:`split` once per iteration): one clipping and one Adam step per
minibatch, bit-for-bit the steps of the two. The one place the networks meet is global-norm clipping:
the norm is that of the concatenated gradient, so the two gradients are clipped together
(:func:`clip_and_step`), not each on its own.

Validation once per iteration. :func:`run` checks the parameters and the flattened batch once; the
minibatch steps then call :func:`loss_and_grad_unchecked`, which skips re-validating the same arrays
(:func:`purepg.pg.surrogates.ppo_clip`, :meth:`purepg.model.value.ValueFunction.loss`, Adam and clipping
take ``check=False``). :func:`loss_and_grad`, the function to call directly, validates its arguments and
then computes the same thing.

Reused arrays. The minibatches of an iteration have one size, so the two networks' passes write into
workspaces (:func:`workspaces`, kept from one iteration to the next; ``MLP.forward_into`` runs a tanh
layer's bias add and activation as one pass) instead of fresh arrays; the two gradients are written into
one (P + P_v,) vector (``Step.grad``), and clipping and Adam take one pass over it
(:func:`purepg.optim.clip_adam_step`). Each of these does the floating-point operations of the plain
passes in the same order: the same bits (``tests/test_ppo.py``).

Value loss scale. :meth:`purepg.model.value.ValueFunction.loss` is the halved mean square
``L_V = (1/2N) sum (v - R)^2``; PPO eq. 9 weights the plain mean square ``(v - R)^2`` by ``c_1``,
so the term is ``2 c_1 L_V`` and its gradient ``2 c_1 grad L_V`` (``c_1 = 0.5`` gives ``grad L_V``).
The logged ``value_loss`` is the plain mean square (SB3's ``train/value_loss``).

The adaptive-KL variant (``ppo-kl``, :mod:`purepg.algos.ppo_kl`) runs this same loop with the
objective ``mean(r A) - beta KL`` (PPO eq. 8) in place of ``L^CLIP``; the variant is a
:class:`Variant` (schedule, objective, after-update rule).
"""
from __future__ import annotations

import threading
from typing import Callable, NamedTuple

import numpy as np

from purepg import _check, kernels
from purepg._check import BOOLEAN
from purepg.algos import conventions
from purepg.algos.common import BaseConfig, Flat, flatten_with_gae
from purepg.algos.fields import configclass, like, param
from purepg.optim import AdamState, adam_init, clip_adam_step, clip_grad_norm, linear_schedule, minibatches_of
from purepg.pg.surrogates import entropy_bonus, ppo_clip
from purepg.model.value import explained_variance

NAME = "ppo"
_kept = threading.local()          # the workspaces of the last minibatch steps of this thread (:func:`workspaces`)


@configclass
class Shared(BaseConfig):
    """Hyperparameters shared by ``ppo`` and ``ppo-kl`` (defaults: rl-zoo's tuned CartPole-v1 PPO)."""

    num_envs: int = like(BaseConfig, "num_envs", 8, "rl-zoo n_envs")
    num_steps: int = like(BaseConfig, "num_steps", 32, "rl-zoo n_steps")
    gamma: float = like(BaseConfig, "gamma", 0.98, "rl-zoo")
    gae_lambda: float = param(0.8, "lambda", "GAE parameter", "[0, 1]", "rl-zoo gae_lambda")
    lr: float = param(1e-3, "alpha", "Adam step size at the start (linear schedule)", "(0, inf)", "rl-zoo lin_0.001")
    lr_final: float = param(0.0, "", "step size at the end of training", "[0, inf)", "rl-zoo lin_")
    epochs: int = param(20, "K", "passes over the batch per iteration", "integer >= 1", "rl-zoo n_epochs")
    minibatch_size: int = param(256, "M", "samples per gradient step; divides N = E T", "integer >= 1",
                                "rl-zoo batch_size")
    normalize_advantage: bool = param(True, "", "standardise A per minibatch", BOOLEAN, "SB3 normalize_advantage")
    vf_coef: float = param(0.5, "c_1", "weight of the mean square value error", "[0, inf)", "PPO eq. 9; SB3")
    vf_clip: float | None = param(None, "eps_v", "value clipping around V_old", "None or (0, inf)",
                                  "SB3 clip_range_vf")
    ent_coef: float = param(0.0, "c_2", "weight of the entropy bonus", "[0, inf)", "PPO eq. 9; rl-zoo")
    max_grad_norm: float | None = param(0.5, "", "global-norm gradient clipping", "None or (0, inf)", "SB3")
    kl_stop: float | None = param(None, "d_stop", "stop the epochs once the minibatch KL > 1.5 d_stop",
                                  "None or (0, inf)", "SB3 target_kl")
    adam_eps: float = param(1e-5, "epsilon", "Adam's epsilon", "(0, inf)", "SB3 ActorCriticPolicy")
    advantage_norm: str = conventions.option("advantage_norm", "population")
    grad_clip_offset: float = conventions.option("grad_clip_offset", 0.0)
    value_clip: str = conventions.option("value_clip", "max", "eps_v")
    vf_loss: str = conventions.option("vf_loss", "mse")
    schedule_at: str = conventions.option("schedule_at", "start")
    kl_stop_at: str = conventions.option("kl_stop_at", "minibatch")
    kl_stop_factor: float = conventions.option("kl_stop_factor", 1.5)
    kl_stop_estimator: str = conventions.option("kl_stop_estimator", "exact")

    def __post_init__(self):
        super().__post_init__()
        _check.divides_batch(self, "minibatch_size")


@configclass
class Config(Shared):
    """PPO-clip hyperparameters: the fields of :class:`Shared` and the clip range."""

    clip: float = param(0.2, "epsilon", "clip range of the ratio at the start (linear schedule)", "(0, inf)",
                        "PPO eq. 7; rl-zoo lin_0.2")
    clip_final: float = param(0.0, "", "clip range at the end of training", "[0, inf)", "rl-zoo lin_")


class Variant(NamedTuple):
    """What distinguishes PPO variants inside the shared loop.

    ``schedule(config, state, progress) -> dict`` of per-iteration coefficients (e.g. the clip range);
    ``objective(pol, theta, mb, theta_old, coefs, ws) -> (value, grad, clip_fraction)``, maximised, on a
    minibatch and parameters already validated (:func:`loss_and_grad` or :func:`run` did it), ``ws`` the
    policy network's ``MLP.workspace`` for the minibatch (or None);
    ``after(config, state, kl) -> (state, logs)`` once the epochs are done (e.g. the beta rule).
    """

    schedule: Callable
    objective: Callable
    after: Callable


class Step(NamedTuple):
    """One minibatch: the minimised loss ``L``, its gradients (P,), (P_v,), and diagnostics."""

    loss: float
    g: np.ndarray
    g_v: np.ndarray
    clip_fraction: float
    value_mse: float
    policy_loss: float = float("nan")     # -objective (e.g. -L^CLIP)
    entropy: float = float("nan")         # mean entropy S (computed when ent_coef > 0)
    grad: np.ndarray | None = None        # (P + P_v,): [g, g_v] as one vector (g, g_v its views), or None


class Joint(NamedTuple):
    """Both networks as one vector ``x = [theta, theta_v]`` (P + P_v,) with one Adam state (module docstring)."""

    x: np.ndarray
    opt: AdamState


# ------------------------------------------------------------------------------ the variant ----
def _clip_schedule(cfg, state, progress):
    return {"clip_range": linear_schedule(cfg.clip, cfg.clip_final, progress)}


def _clip_objective(pol, theta, mb, theta_old, coefs, ws=None):
    """PPO eq. 7 on the minibatch (the policy network's passes written into ``ws`` if given)."""
    return ppo_clip(pol, theta, mb.obs, mb.act, mb.logp_old, mb.adv, eps=coefs["clip_range"], check=False, ws=ws)


def _no_rule(cfg, state, kl):
    return state, {}


CLIP = Variant(_clip_schedule, _clip_objective, _no_rule)


# ------------------------------------------------------------------------------ the loop -------
def init(ctx, rng):
    """theta from the policy's init, theta_v from the value function's, fresh Adam states."""
    theta = ctx.pol.init(rng)                                    # (P,)
    theta_v = ctx.vf.init(rng)                                   # (P_v,)
    return {"theta": theta, "theta_v": theta_v, "opt": adam_init(theta.size), "opt_v": adam_init(theta_v.size)}


def update(ctx, state, batch, rng, progress, *, order=None, trace=None):
    """One PPO-clip iteration on ``batch`` (module docstring); returns ``(state, logs)``.

    ``order`` (one permutation of the N flattened samples per epoch) replaces the minibatch draws of
    ``rng``, to replay another library's update; ``trace`` (a list) receives one record per minibatch
    (:func:`_record`).
    """
    return run(ctx, state, batch, rng, progress, CLIP, order=order, trace=trace)


def run(ctx, state, batch, rng, progress, variant, *, order=None, trace=None):
    """The loop of the module docstring for a :class:`Variant`; returns ``(state, logs)``."""
    cfg, pol = ctx.config, ctx.pol
    progress = schedule_point(ctx, batch, progress)
    lr = linear_schedule(cfg.lr, cfg.lr_final, progress)
    coefs = variant.schedule(cfg, state, progress)
    _check_state(ctx, state)
    data = flatten_with_gae(ctx, state["theta_v"], batch, cfg.gamma, cfg.gae_lambda)   # A_t, R_t  (line 4)
    theta_old = state["theta"]
    data = _check_data(ctx, data)                                # validated once: the steps skip it
    new, hist = _epochs(ctx, dict(state), data, (rng, order, trace), lr, coefs, variant, theta_old)
    kl = pol.kl(theta_old, new["theta"], data.obs)               # exact mean KL(pi_old || pi_new)
    new, extra = variant.after(cfg, new, kl)
    logs = {"kl": kl, "entropy": float(np.mean(pol.entropy(new["theta"], data.obs))),
            "value_loss": _mean(hist["value_mse"]),
            "explained_variance": explained_variance(data.v, data.ret),
            "lr": lr, "epochs": hist["epochs"], "updates": len(hist["value_mse"])}
    if "clip_range" in coefs:
        logs.update(clip_fraction=_mean(hist["clip_fraction"]), clip_range=coefs["clip_range"])
    logs.update(extra)
    return new, logs


def schedule_point(ctx, batch, progress):
    """The progress at which the schedules are read: the iteration's start (``schedule_at="start"``) or
    after its batch of ``T E`` steps was collected (``"after_collection"``, as Stable-Baselines3)."""
    if ctx.config.schedule_at == "start":
        return progress
    return min(1.0, progress + batch.rew.size / ctx.total_steps)


def _mean(xs):
    return float(np.mean(xs)) if xs else float("nan")   # no step taken (early stop before the first)


def _check_state(ctx, state):
    """Validate the parameters and Adam moments the minibatch steps read (once per iteration)."""
    P, P_v = ctx.pol.num_params, ctx.vf.num_params
    for name, x, n in (("theta", state["theta"], P), ("opt.m", state["opt"].m, P), ("opt.v", state["opt"].v, P),
                       ("theta_v", state["theta_v"], P_v), ("opt_v.m", state["opt_v"].m, P_v),
                       ("opt_v.v", state["opt_v"].v, P_v)):
        _check.as_vector(x, n, name)


def _check_data(ctx, data):
    """Validate the flattened batch (once per iteration); returns it as checked (float64, int64 actions)."""
    pol = ctx.pol
    obs = _check.as_matrix(data.obs, pol.obs_dim, "obs")                      # (N, d)
    N = obs.shape[0]
    act = (_check.as_actions_discrete(data.act, N, pol.n_actions) if pol.discrete
           else _check.as_matrix(data.act, pol.act_dim, "act", rows=N))       # (N,) or (N, k)
    return Flat(obs, act, *(_check.as_vector(getattr(data, k), N, k) for k in ("logp_old", "adv", "ret", "v")))


def _epochs(ctx, state, data, draw, lr, coefs, variant, theta_old):
    """K epochs of minibatch steps (Algorithm 1, line 6) on :class:`Joint`, with the optional KL early stop.

    ``draw = (rng, order, trace)``: the Generator, the optional explicit order and the optional trace list.
    """
    cfg, (rng, order, trace) = ctx.config, draw
    hist = {"value_mse": [], "clip_fraction": [], "epochs": 0}
    joint, P = join(state), state["theta"].size
    norm = cfg.advantage_norm if cfg.normalize_advantage else None
    ws = workspaces(ctx, cfg.minibatch_size)                                  # minibatch_size divides N
    for epoch in range(cfg.epochs):
        hist["epochs"] += 1
        for idx in minibatches_of(data.adv.size, cfg.minibatch_size, rng, order, epoch):
            mb = minibatch(data, idx, norm)
            theta, theta_v = joint.x[:P], joint.x[P:]                          # (P,), (P_v,) views
            kl = stop_kl(ctx, theta_old, theta, mb)
            if cfg.kl_stop_at == "minibatch" and _over(cfg, kl):
                if trace is not None:                                         # its losses, never stepped
                    trace.append({"idx": idx, "kl": kl, "stopped": True,
                                  "step": loss_and_grad_unchecked(ctx, theta, theta_v, mb, theta_old, coefs,
                                                                  variant, ws)})
                return split(state, joint), hist
            step = loss_and_grad_unchecked(ctx, theta, theta_v, mb, theta_old, coefs, variant, ws)
            joint = clip_and_step(joint, step, lr, cfg)
            hist["value_mse"].append(step.value_mse)
            hist["clip_fraction"].append(step.clip_fraction)
            if trace is not None:
                trace.append(_record(idx, mb, step, joint, kl, cfg))
        if cfg.kl_stop_at == "epoch" and _over(cfg, kl):                      # the last minibatch's KL
            break
    return split(state, joint), hist


def stop_kl(ctx, theta_old, theta, mb):
    """The KL the early stop tests on minibatch ``mb`` before its step (None without ``kl_stop``):
    the exact mean ``KL(pi_old || pi_theta)`` over its states, or the k3 estimate
    ``mean((r - 1) - log r)``, ``r = pi_theta(a|s) / pi_old(a|s)``, over its actions."""
    cfg, pol = ctx.config, ctx.pol
    if cfg.kl_stop is None:
        return None
    if cfg.kl_stop_estimator == "exact":
        return pol.kl(theta_old, theta, mb.obs)
    log_r = pol.log_prob(theta, mb.obs, mb.act) - mb.logp_old                # (M,)
    return float(np.mean(np.expm1(log_r) - log_r))


def _over(cfg, kl):
    return kl is not None and kl > cfg.kl_stop_factor * cfg.kl_stop


def _record(idx, mb, step, joint, kl, cfg):
    """One minibatch of a trace: its rows, normalised advantages, loss terms, clipped gradient of
    ``x = [theta, theta_v]``, the KL the stop tested, and ``x`` with Adam's moments after the step."""
    return {"idx": idx, "adv": mb.adv, "step": step, "g": clipped_gradient(step, cfg), "kl": kl,
            "x": joint.x.copy(), "m": joint.opt.m.copy(), "v": joint.opt.v.copy()}


def minibatch(data, idx, normalize):
    """The rows ``idx`` of the flattened batch (a :class:`Flat` of M rows), advantages normalised over
    them by the convention ``normalize`` (:func:`purepg.algos.common.normalize_advantage`; True means
    purepg's; None: not normalised). One kernel call gathers the rows and standardises the advantages
    (:func:`purepg.kernels.minibatch_rows`, the same bits as the indexing and ``normalize_advantage``)."""
    if normalize is True:
        normalize = "population"
    return Flat(*kernels.minibatch_rows(idx, tuple(data), normalize or None))


def loss_and_grad(ctx, theta, theta_v, mb, theta_old, coefs, variant=CLIP):
    """``L = -objective - c_2 S + c_1 mean (V - R)^2`` (PPO eq. 9, minimised) and its two gradients.

    Parameters
    ----------
    ctx : runner.Context
    theta : ndarray, shape (P,);  theta_v : ndarray, shape (P_v,)
    mb : Flat
        ``M`` rows of the batch (:func:`minibatch`).
    theta_old : ndarray, shape (P,)
        The parameters that sampled the batch (used by the KL variant).
    coefs : dict
        From ``variant.schedule``: ``clip_range`` (PPO-clip) or ``beta`` (PPO-KL).

    Returns
    -------
    Step

    Validates its arguments, then computes :func:`loss_and_grad_unchecked`.
    """
    P, P_v = ctx.pol.num_params, ctx.vf.num_params
    theta, theta_old = _check.as_vector(theta, P, "theta"), _check.as_vector(theta_old, P, "theta_old")
    theta_v = _check.as_vector(theta_v, P_v, "theta_v")
    return loss_and_grad_unchecked(ctx, theta, theta_v, _check_data(ctx, mb), theta_old, coefs, variant)


def value_part(ctx, theta_v, mb, ws=None):
    """The value network's term of the minibatch loss: the halved mean square (clipped if configured) and
    its gradient (P_v,), on validated arguments; the network's passes written into ``ws`` if given."""
    cfg = ctx.config
    clip = {} if cfg.vf_clip is None else {"v_old": mb.v, "clip_eps": cfg.vf_clip, "clip_style": cfg.value_clip}
    return ctx.vf.loss(theta_v, mb.obs, mb.ret, **clip, check=False, ws=ws)


def loss_and_grad_unchecked(ctx, theta, theta_v, mb, theta_old, coefs, variant=CLIP, ws=None):
    """:func:`loss_and_grad` on arguments validated already (the minibatch steps of :func:`run`).

    The policy and value terms share no parameter: with two threads the value term runs on the run's
    worker thread (``ctx.worker``, :mod:`purepg.run.workers`) while this one computes the policy term,
    with the same bits; with one, after it. ``ws``: the two networks' workspaces for the minibatch's
    rows (:func:`workspaces`), which their passes write into; None: fresh arrays (the same bits).
    """
    cfg = ctx.config
    ws_pol, ws_v = (None, None) if ws is None else ws
    value = ctx.worker.submit(value_part, ctx, theta_v, mb, ws_v)
    obj = variant.objective(ctx.pol, theta, mb, theta_old, coefs, ws_pol)
    grad = np.empty(obj.grad.size + theta_v.size)               # [g, g_v] (P + P_v,): no concatenation later
    g, g_v = grad[:obj.grad.size], grad[obj.grad.size:]
    loss = -obj.value
    np.negative(obj.grad, out=g)                                 # (P,)
    S = float("nan")
    if cfg.ent_coef > 0:
        ent = entropy_bonus(ctx.pol, theta, mb.obs)
        loss, S = loss - cfg.ent_coef * ent.value, ent.value
        np.subtract(g, cfg.ent_coef * ent.grad, out=g)
    vl = value.result()                                          # halved mean square
    frac = getattr(obj, "clip_fraction", float("nan"))
    w = 2.0 * cfg.vf_coef if cfg.vf_loss == "mse" else cfg.vf_coef   # c_1 mean sq., or c_1 (1/2) mean sq.
    np.multiply(w, vl.grad, out=g_v)                             # (P_v,)
    return Step(loss + w * vl.value, g, g_v, frac, 2.0 * vl.value, -obj.value, S, grad)


def workspaces(ctx, M):
    """``(policy, value)`` network workspaces (``MLP.workspace``) for minibatches of ``M`` rows: the
    passes of a minibatch step write into them instead of fresh arrays (:mod:`purepg.model.nn`).

    The last pair is kept for the calling thread, so the iterations of a run reuse the same memory
    (fresh (M, 64) arrays of M = 256 are pages the kernel maps and zeroes on first touch, ~20 us a
    minibatch step at 20 steps an iteration); a run's value passes run on its worker thread, but only
    within the step that the run's own thread called, so two runs never share a pair. With one thread
    (``ctx.worker.threads == 1``) the value network's passes run after the policy's are done, so its
    workspace takes the policy's arrays where a layer has the same shape: half the memory, which stays
    in the caches.
    """
    key = (ctx.pol.net, ctx.vf.net, M, ctx.worker.threads)
    if getattr(_kept, "key", None) != key:
        ws_pol, ws_v = ctx.pol.net.workspace(M), ctx.vf.net.workspace(M)
        if ctx.worker.threads == 1:
            ws_v = _sharing(ws_v, ws_pol)
        _kept.key, _kept.ws = key, (ws_pol, ws_v)
    return _kept.ws


def _sharing(ws, other):
    """``ws`` with each forward and backward array replaced by ``other``'s of its layer where the shapes agree."""
    def pick(mine, theirs):
        return tuple(theirs[l] if l < len(theirs) and theirs[l].shape == a.shape else a for l, a in enumerate(mine))

    return ws._replace(h=pick(ws.h, other.h), dz=pick(ws.dz, other.dz))


def join(state) -> Joint:
    """``x = [theta, theta_v]`` and the Adam state of ``x`` from the two networks' (same step count)."""
    opt, opt_v = state["opt"], state["opt_v"]
    if opt.t != opt_v.t:
        raise ValueError(f"state: expected the policy and value Adam states at one step count, got opt.t = {opt.t} "
                         f"and opt_v.t = {opt_v.t}. Fix: PPO steps both networks together; start from ppo.init")
    cat = np.concatenate
    return Joint(cat([state["theta"], state["theta_v"]]), AdamState(cat([opt.m, opt_v.m]), cat([opt.v, opt_v.v]), opt.t))


def split(state, joint) -> dict:
    """Inverse of :func:`join`: ``state`` with ``theta``, ``theta_v``, ``opt``, ``opt_v`` from ``joint``."""
    P, (x, (m, v, t)) = state["theta"].size, joint
    return {**state, "theta": x[:P].copy(), "theta_v": x[P:].copy(),
            "opt": AdamState(m[:P].copy(), v[:P].copy(), t), "opt_v": AdamState(m[P:].copy(), v[P:].copy(), t)}


def _joint_gradient(step):
    """``[g, g_v]`` (P + P_v,): the step's own vector, or the two concatenated."""
    return np.concatenate([step.g, step.g_v]) if step.grad is None else step.grad


def clipped_gradient(step, cfg):
    """``(g, g_v)`` concatenated (P + P_v,), clipped by their joint global norm (offset ``grad_clip_offset``)."""
    g = _joint_gradient(step)                                    # (P + P_v,)
    if cfg.max_grad_norm is not None:
        return clip_grad_norm(g, cfg.max_grad_norm, offset=getattr(cfg, "grad_clip_offset", 0.0), check=False)[0]
    return g.copy()


def clip_and_step(joint, step, lr, cfg) -> Joint:
    """Clip ``(g, g_v)`` by their joint global norm, then one Adam step on ``x = [theta, theta_v]``: the two
    in one pass (:func:`purepg.optim.clip_adam_step`), the steps of :func:`clipped_gradient` then Adam."""
    return Joint(*clip_adam_step(joint.x, _joint_gradient(step), joint.opt, max_norm=cfg.max_grad_norm,
                                 offset=getattr(cfg, "grad_clip_offset", 0.0), lr=lr, eps=cfg.adam_eps))
