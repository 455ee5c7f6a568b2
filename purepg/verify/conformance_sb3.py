"""Plumbing shared by the Stable-Baselines3 / sb3-contrib conformance cases (torch imported lazily).

The library's own objects are used throughout; the adapter only (a) keeps its rollout buffer in float64
(a subclass whose ``reset`` converts the arrays the base class allocates), (b) casts observations to
float64 before its float64 networks, (c) copies purepg's flat parameters into its modules by name, and
(d) records what its update does: the minibatch rows (a wrapper of the buffer's ``_get_samples``) and,
around every ``optimizer.step``, the gradients, parameters and Adam moments.

Parameter layout: purepg's ``theta`` is the policy MLP in ``nn.Sequential`` order (weight (d_out, d_in)
row-major, then bias, layer by layer; a Gaussian policy's ``log_std`` last), ``theta_v`` likewise for the
value MLP; SB3's ``mlp_extractor.policy_net`` + ``action_net`` (+ ``log_std``) and
``mlp_extractor.value_net`` + ``value_net`` hold the same numbers under the names of :func:`param_names`.
"""
from __future__ import annotations

import numpy as np

from purepg import _check
from purepg.env.rollout import Batch

_BUFFER_ARRAYS = ("observations", "actions", "rewards", "returns", "episode_starts", "values", "log_probs",
                  "advantages")


def float64_buffer(base):
    """A subclass of the rollout buffer class ``base`` whose arrays are float64 (base: float32)."""
    def reset(self):
        base.reset(self)
        for k in _BUFFER_ARRAYS:
            setattr(self, k, getattr(self, k).astype(np.float64))
    return type(f"Float64{base.__name__}", (base,), {"reset": reset})


def to_float64(policy):
    """Cast ``policy`` to float64, its features extractor casting observations (float32 envs) first."""
    import torch

    class Flatten64(torch.nn.Module):
        def forward(self, obs):
            return torch.flatten(obs, 1).to(torch.float64)

    fe = Flatten64()
    for name in ("features_extractor", "pi_features_extractor", "vf_features_extractor"):
        if hasattr(policy, name):
            setattr(policy, name, fe)
    policy.to(torch.float64)
    return policy


def param_names(n_hidden, discrete):
    """SB3's parameter names in purepg's order: ``(policy names, value names)``."""
    def mlp(net, head):
        rows = [f"mlp_extractor.{net}.{2 * i}.{w}" for i in range(n_hidden) for w in ("weight", "bias")]
        return rows + [f"{head}.weight", f"{head}.bias"]
    return mlp("policy_net", "action_net") + ([] if discrete else ["log_std"]), mlp("value_net", "value_net")


def put(policy, names, x):
    """Copy the flat vector ``x`` into the parameters ``names`` of ``policy`` (in order)."""
    import torch

    params, off = dict(policy.named_parameters()), 0
    for n in names:
        p = params[n]
        p.data.copy_(torch.as_tensor(x[off:off + p.numel()]).reshape(p.shape))
        off += p.numel()
    if off != len(x):
        _check.fail("x", f"{off} parameters for the SB3 policy", len(x), "pass the flat parameters of this policy")


def flat(tensors):
    """The tensors (None as zeros is not allowed here) as one float64 vector."""
    return np.concatenate([t.detach().reshape(-1).double().numpy() for t in tensors])


class StepRecorder:
    """Wraps ``optimizer.step``: before it the gradients, after it the parameters and Adam moments, each
    as one vector over ``params`` (a list in purepg's order; a parameter without a gradient gives zeros)."""

    def __init__(self, params, optimizer):
        import torch

        self.steps, self.opt = [], optimizer
        vec = lambda get: flat([get(p) if get(p) is not None else torch.zeros_like(p) for p in params])  # noqa: E731
        inner = self.opt.step

        def step(*a, **k):
            g = vec(lambda p: p.grad)
            out = inner(*a, **k)
            st = lambda p, key: self.opt.state.get(p, {}).get(key)  # noqa: E731
            self.steps.append({"g": g, "x": vec(lambda p: p), "m": vec(lambda p: st(p, "exp_avg")),
                               "v": vec(lambda p: st(p, "exp_avg_sq"))})
            return out
        self.opt.step = step

    @classmethod
    def of_policy(cls, policy, names):
        """The recorder of an SB3 policy's optimiser over its parameters ``names``."""
        params = dict(policy.named_parameters())
        return cls([params[n] for n in names], policy.optimizer)


def record_rows(buffer, T, E):
    """Wrap the buffer's ``_get_samples``; the list returned fills with each minibatch's rows, converted
    from SB3's env-major flattening (row ``e T + t``) to purepg's time-major one (``t E + e``)."""
    rows, inner = [], buffer._get_samples

    def get_samples(batch_inds, env=None):
        j = np.asarray(batch_inds)
        rows.append((j % T) * E + j // T)
        return inner(batch_inds, env)
    buffer._get_samples = get_samples
    return rows


def epochs_order(rows, N):
    """One permutation per epoch from the recorded minibatch rows; an epoch cut short by an early stop
    is completed with its unused rows (never read: the replay stops at the same place)."""
    order, cur = [], []
    for r in rows:
        cur.extend(r.tolist())
        if len(cur) == N:
            order.append(np.asarray(cur))
            cur = []
    if cur:
        order.append(np.asarray(cur + sorted(set(range(N)) - set(cur))))
    return order


def batch_from_buffer(buf, last_obs, last_episode_starts, discrete):
    """purepg's :class:`purepg.env.rollout.Batch` from an SB3 rollout buffer (arrays (T, E, ...) before
    ``get``).

    Episode ends: ``terminated[t] = episode_starts[t + 1]`` (and SB3's last episode starts for the final
    step); no truncation occurs in the short rollouts used (SB3 folds a truncation into the reward).
    Box actions are rounded to float32, as SB3 2.9.2's ``RolloutBuffer._get_samples`` casts them before
    its update evaluates their log-probabilities (``logp_old`` stays that of the float64 action sampled).
    """
    obs = np.asarray(buf.observations, dtype=np.float64)                  # (T, E, d)
    starts = np.concatenate([buf.episode_starts[1:], np.asarray(last_episode_starts, dtype=np.float64)[None]])
    final = np.concatenate([obs[1:], np.asarray(last_obs, dtype=np.float64)[None]])
    act = buf.actions[..., 0].astype(np.int64) if discrete else buf.actions.astype(np.float32).astype(np.float64)
    T, E = obs.shape[:2]
    return Batch(obs, act, np.asarray(buf.rewards, dtype=np.float64), starts > 0.5, np.zeros((T, E), bool), final,
                 final[-1], np.asarray(buf.log_probs, dtype=np.float64), None, np.zeros(0), np.zeros(0, np.int64))


def snapshot_buffer(buf):
    """Copies of the buffer's arrays and flags (``get`` flattens them in place)."""
    return {k: getattr(buf, k).copy() for k in _BUFFER_ARRAYS} | {"generator_ready": buf.generator_ready}


def restore_buffer(buf, snap):
    for k, v in snap.items():
        setattr(buf, k, v.copy() if isinstance(v, np.ndarray) else v)


class Done(Exception):
    """Raised after the first ``train()`` to end ``learn`` there."""


def first_update(model, total_steps, before_train):
    """Run ``model.learn`` up to and through its first ``train()``; ``before_train(model)`` is called
    once the rollout is collected, before the update (to snapshot and install recorders)."""
    inner = model.train

    def train():
        before_train(model)
        inner()
        raise Done
    model.train = train
    try:
        model.learn(total_timesteps=total_steps)
    except Done:
        pass
    finally:
        model.train = inner
