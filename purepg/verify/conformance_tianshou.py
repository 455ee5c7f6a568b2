"""Conformance of one PPO update with Tianshou's ``PPO.update()`` (Tianshou 2.0.1, Discrete actions).

Setting (both sides): CartPole-v1, one env, 128 steps collected by Tianshou's ``Collector``, 4 epochs
of minibatches of 32, Adam (lr 3e-3, eps 1e-8), ratio clip 0.2 and value clip 0.2 (Tianshou clips the
value with ``eps_clip``), value coefficient 0.5, entropy 0.01, global-norm clipping 0.5, 64-64 tanh
networks; purepg with the ``tianshou`` profile and Tianshou's minibatch order (its ``Batch.split``
permutations, recorded).

One difference no option covers: Tianshou computes the ratio in float32 (``ppo.py``:
``(log_prob - logp_old).exp().float()``), so its loss and gradients carry the float32 rounding of the
ratio (about 6e-8 relative). The case runs Tianshou's update twice on the same rollout and minibatch
order (NumPy's global generator seeded for its ``Batch.split`` permutations, then restored): with that
cast neutralised during the update (``Tensor.float`` as the identity; judged at 1e-9), and as shipped,
judged against the library's own float32 floor, ``max(1e-9, 10 x |shipped - neutralised|)`` per quantity.
"""
from __future__ import annotations

import numpy as np

from purepg.verify import conformance_sb3 as sb
from purepg.verify.conformance import TOL, Row, rel

T, EPOCHS, M, LR, CLIP, ENT, VF, MAX_NORM, GAMMA, LAM, ADAM_EPS = (
    128, 4, 32, 3e-3, 0.2, 0.01, 0.5, 0.5, 0.99, 0.95, 1e-8)


def purepg_config():
    import dataclasses

    from purepg.algos import conventions, ppo

    names = {f.name for f in dataclasses.fields(ppo.Config)}
    lam = "gae_lambda" if "gae_lambda" in names else "lam"
    cfg, _ = conventions.configure(
        ppo.Config, "tianshou", num_envs=1, num_steps=T, epochs=EPOCHS, minibatch_size=M, lr=LR, lr_final=LR,
        clip=CLIP, clip_final=CLIP, vf_clip=CLIP, ent_coef=ENT, vf_coef=VF, max_grad_norm=MAX_NORM, gamma=GAMMA,
        adam_eps=ADAM_EPS, init="torch", **{lam: LAM})
    return cfg, getattr(cfg, lam)


def _nets():
    """Actor and critic modules (64-64 tanh, float64) with the call signatures Tianshou expects.

    Tianshou's own ``Net``/``MLP`` cast every input to float32 (``utils/net/common.py``), the hidden
    features included, so they cannot run a float64 update; the networks are the one part replaced.
    """
    import torch

    def seq(n_out):
        L = lambda i, o: torch.nn.Linear(i, o, dtype=torch.float64)  # noqa: E731
        return torch.nn.Sequential(L(4, 64), torch.nn.Tanh(), L(64, 64), torch.nn.Tanh(), L(64, n_out))

    class Actor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = seq(2)

        def forward(self, obs, state=None, info=None):
            return self.net(torch.as_tensor(obs, dtype=torch.float64)), state

    class Critic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = seq(1)

        def forward(self, obs, **kwargs):
            return self.net(torch.as_tensor(obs, dtype=torch.float64))
    return Actor(), Critic()


def build(theta, theta_v, seed):
    """Tianshou's PPO with purepg's parameters copied in, its collector and buffer."""
    import gymnasium as gym
    import torch
    from tianshou.algorithm import PPO
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv

    actor, critic = _nets()
    for module, x in ((actor, theta), (critic, theta_v)):
        torch.nn.utils.vector_to_parameters(torch.tensor(x), module.parameters())    # a copy: x stays
    env = DummyVectorEnv([lambda: gym.make("CartPole-v1")])
    policy = ProbabilisticActorPolicy(actor=actor, dist_fn=lambda logits: torch.distributions.Categorical(logits=logits),
                                      action_space=env.action_space[0], action_scaling=False)
    algo = PPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=LR, eps=ADAM_EPS), eps_clip=CLIP,
               value_clip=True, advantage_normalization=True, vf_coef=VF, ent_coef=ENT, max_grad_norm=MAX_NORM,
               gae_lambda=LAM, gamma=GAMMA)
    collector = Collector(policy, env, VectorReplayBuffer(T, 1))
    torch.manual_seed(seed)
    collector.reset(gym_reset_kwargs={"seed": seed})
    collector.collect(n_step=T)
    return algo, collector, list(actor.parameters()) + list(critic.parameters())


_FIELDS = ("obs", "obs_next", "act", "rew", "terminated", "truncated", "logp_old", "adv", "returns")


def library_update(theta, theta_v, seed, neutralise_float32=False):
    """Tianshou's update after one collection: its preprocessed batch, minibatch order, steps and stats."""
    import torch

    algo, collector, params = build(theta, theta_v, seed)
    out, perms = {}, []
    inner_pre, inner_perm, inner_float = algo._preprocess_batch, np.random.permutation, torch.Tensor.float

    def preprocess(*a, **k):                   # copies: the update changes the batch's arrays in place
        b = inner_pre(*a, **k)
        out["batch"] = {key: np.array(b[key].detach().numpy() if hasattr(b[key], "detach") else b[key])
                        for key in _FIELDS}
        return b

    def permutation(n):
        perms.append(inner_perm(n))
        return perms[-1]
    algo._preprocess_batch, np.random.permutation = preprocess, permutation
    if neutralise_float32:
        torch.Tensor.float = lambda self, *a, **k: self
    rec = sb.StepRecorder(params, algo.optim._optim)
    from tianshou.utils.torch_utils import policy_within_training_step

    np_state = np.random.get_state()
    np.random.seed(seed)
    try:
        with policy_within_training_step(algo.policy):
            stats = algo.update(buffer=collector.buffer, batch_size=M, repeat=EPOCHS)
    finally:
        np.random.permutation, torch.Tensor.float = inner_perm, inner_float
        np.random.set_state(np_state)
    out.update(order=[p for p in perms if p.size == T], rec=rec, stats=stats)
    return out


def purepg_batch(b):
    """purepg's :class:`purepg.env.rollout.Batch` (T, E = 1) from Tianshou's preprocessed batch (time
    order, one env)."""
    from purepg.env.rollout import Batch

    col = lambda key, dtype: b[key].astype(dtype)[:, None]  # noqa: E731
    obs, nxt = col("obs", np.float64), col("obs_next", np.float64)
    return Batch(obs, col("act", np.int64), col("rew", np.float64), col("terminated", bool), col("truncated", bool),
                 nxt, nxt[-1], col("logp_old", np.float64), None, np.zeros(0), np.zeros(0, np.int64))


def purepg_update(lib, theta, theta_v):
    from purepg.algos import ppo
    from purepg.algos.common import flatten_with_gae
    from purepg.model.policy import CategoricalPolicy
    from purepg.model.value import ValueFunction
    from purepg.optim import adam_init
    from purepg.run.runner import Context

    cfg, lam = purepg_config()
    ctx = Context(CategoricalPolicy(4, 2, (64, 64), init_scheme="torch"), ValueFunction(4, (64, 64), "tanh", "torch"),
                  cfg, 10 * T)
    batch = purepg_batch(lib["batch"])
    state = {"theta": theta, "theta_v": theta_v, "opt": adam_init(theta.size), "opt_v": adam_init(theta_v.size)}
    trace = []
    new, _ = ppo.update(ctx, state, batch, np.random.default_rng(0), 0.0, order=lib["order"], trace=trace)
    return flatten_with_gae(ctx, theta_v, batch, cfg.gamma, lam), trace, new


def _quantities(lib, trace, new):
    """``{name: (purepg's, the library's)}``: per-step vectors stacked, loss means, new parameters."""
    theirs, st = lib["rec"].steps, lib["stats"]
    q = {}
    if len(trace) == len(theirs):
        for key, name in (("g", "clipped gradient, every step"), ("m", "Adam m, every step"),
                          ("v", "Adam v, every step"), ("x", "parameters after every step")):
            q[name] = (np.stack([r[key] for r in trace]), np.stack([r[key] for r in theirs]))
    mean = lambda f: float(np.mean([f(r["step"]) for r in trace]))  # noqa: E731
    for key, name, f in (("actor_loss", "clip loss", lambda s: s.policy_loss), ("vf_loss", "value loss", lambda s: s.value_mse),
                         ("ent_loss", "entropy", lambda s: s.entropy), ("loss", "total loss", lambda s: s.loss)):
        q[f"{name} (mean)"] = (mean(f), getattr(st, key).mean)
    q["new parameters"] = (np.concatenate([new["theta"], new["theta_v"]]), theirs[-1]["x"])
    return q


def compare(seed=0):
    """Rows of the Tianshou PPO case: GAE, then every quantity with the float32 cast neutralised (1e-9)
    and as shipped (against the library's own float32 floor)."""
    from purepg.model.policy import CategoricalPolicy
    from purepg.model.value import ValueFunction

    rng = np.random.default_rng(seed)
    theta = CategoricalPolicy(4, 2, (64, 64), init_scheme="torch").init(rng)
    theta_v = ValueFunction(4, (64, 64), "tanh", "torch").init(rng)
    case = "tianshou PPO CartPole-v1"
    runs = {}
    for neutral in (True, False):
        lib = library_update(theta, theta_v, seed, neutralise_float32=neutral)
        flat, trace, new = purepg_update(lib, theta, theta_v)
        runs[neutral] = (lib, trace, _quantities(lib, trace, new))
    lib, trace, q64 = runs[True]
    steps = len(lib["rec"].steps)
    rows = [Row(case, "GAE advantages", rel(flat.adv, lib["batch"]["adv"]), TOL),
            Row(case, "value targets (returns)", rel(flat.ret, lib["batch"]["returns"]), TOL),
            Row(case, f"steps taken ({len(trace)} vs {steps})", 0.0 if len(trace) == steps else np.inf, 0.0)]
    rows += [Row(case + " (float64 ratio)", k, rel(*v), TOL, "float32 ratio cast neutralised") for k, v in q64.items()]
    for k, (ours, theirs) in runs[False][2].items():
        floor = rel(theirs, q64[k][1]) if k in q64 else np.inf
        rows.append(Row(case, k, rel(ours, theirs), max(TOL, 10 * floor),
                        f"as shipped: float32 ratio; Tianshou moves {floor:.1e} with it"))
    return rows


CASES = (compare,)
