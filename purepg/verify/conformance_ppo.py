"""Conformance of one PPO update with Stable-Baselines3's ``PPO.train()`` (Discrete and Box actions).

Setting (both sides): 2 env copies x 64 steps, 4 epochs of minibatches of 32, learning rate and clip
range linear to 0 (read after collection, at progress 1/2), value clipping 0.2, entropy coefficient
0.01, global-norm clipping 0.5, target_kl 0.01 (1.0 in the Box case that must not stop), 64-64 tanh networks; purepg with the ``sb3``
profile.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from purepg.verify import conformance_sb3 as sb
from purepg.verify.conformance import TOL, Row, rel, rel_steps

T, E, EPOCHS, M, LR, CLIP, CLIP_VF, ENT, VF, MAX_NORM, TARGET_KL, GAMMA, LAM = (
    64, 2, 4, 32, 3e-3, 0.2, 0.2, 0.01, 0.5, 0.5, 0.01, 0.99, 0.95)


def _name(names, new, old):
    """The field's name in this purepg's vocabulary (``new``, or ``old`` before the renaming)."""
    return new if new in names else old


def purepg_config(target_kl=TARGET_KL, profile="sb3", **explicit):
    """purepg's PPO Config for the setting above, ``profile`` (field names of either vocabulary)."""
    from purepg.algos import conventions, ppo

    names = {f.name for f in dataclasses.fields(ppo.Config)}
    lam = "gae_lambda" if "gae_lambda" in names else "lam"
    cfg, _ = conventions.configure(
        ppo.Config, profile, num_envs=E, num_steps=T, epochs=EPOCHS, minibatch_size=M, lr=LR, lr_final=0.0,
        clip=CLIP, clip_final=0.0, ent_coef=ENT, vf_coef=VF, max_grad_norm=MAX_NORM, gamma=GAMMA,
        **{lam: LAM, _name(names, "vf_clip", "clip_vf"): CLIP_VF, _name(names, "kl_stop", "target_kl"): target_kl},
        init="torch", **explicit)
    return cfg, getattr(cfg, lam)


def sb3_model(env_id, seed, target_kl=TARGET_KL):
    """SB3's PPO for the setting above, its policy and rollout buffer in float64."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.buffers import RolloutBuffer
    from stable_baselines3.common.env_util import make_vec_env

    model = PPO("MlpPolicy", make_vec_env(env_id, n_envs=E, seed=seed), n_steps=T, batch_size=M, n_epochs=EPOCHS,
                learning_rate=lambda p: LR * p, clip_range=lambda p: CLIP * p, clip_range_vf=CLIP_VF,
                ent_coef=ENT, vf_coef=VF, max_grad_norm=MAX_NORM, target_kl=target_kl, gamma=GAMMA, gae_lambda=LAM,
                rollout_buffer_class=sb.float64_buffer(RolloutBuffer), seed=seed, device="cpu",
                policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                                   ortho_init=False))
    sb.to_float64(model.policy)
    return model


def library_update(env_id, seed, theta, theta_v, discrete, target_kl=TARGET_KL):
    """SB3's first update from ``(theta, theta_v)``: the recorded rollout, minibatch rows, steps and logs."""
    model = sb3_model(env_id, seed, target_kl)
    pi, vf = sb.param_names(2, discrete)
    sb.put(model.policy, pi, theta)
    sb.put(model.policy, vf, theta_v)
    out = {}

    def before_train(m):
        out["batch"] = sb.batch_from_buffer(m.rollout_buffer, m._last_obs, m._last_episode_starts, discrete)
        out["adv"], out["ret"] = m.rollout_buffer.advantages.reshape(-1), m.rollout_buffer.returns.reshape(-1)
        out["rows"] = sb.record_rows(m.rollout_buffer, T, E)
        out["rec"] = sb.StepRecorder.of_policy(m.policy, pi + vf)
    sb.first_update(model, 2 * T * E, before_train)
    out["logs"] = dict(model.logger.name_to_value)
    out["spaces"] = (model.observation_space, model.action_space)
    return out


def purepg_update(lib, theta, theta_v, cfg_lam):
    """purepg's PPO update from the same state and rollout, replaying SB3's minibatch order;
    ``cfg_lam`` is ``purepg_config(...)``."""
    from purepg.algos import ppo
    from purepg.algos.common import flatten_with_gae
    from purepg.model.value import ValueFunction
    from purepg.optim import adam_init
    from purepg.run.runner import Context, make_policy

    cfg, lam = cfg_lam
    pol = make_policy(*lib["spaces"], cfg)
    ctx = Context(pol, ValueFunction(pol.obs_dim, cfg.vf_hidden, cfg.activation, cfg.init), cfg, 2 * T * E)
    state = {"theta": theta, "theta_v": theta_v, "opt": adam_init(theta.size), "opt_v": adam_init(theta_v.size)}
    trace = []
    order = sb.epochs_order(lib["rows"], T * E)
    new, logs = ppo.update(ctx, state, lib["batch"], np.random.default_rng(0), 0.0, order=order, trace=trace)
    flat = flatten_with_gae(ctx, theta_v, lib["batch"], cfg.gamma, lam)
    return flat, trace, new, logs


def _means(trace):
    """SB3's logged means from purepg's trace: over all steps, KL over the last epoch's minibatches."""
    steps = [r for r in trace if "step" in r]                 # SB3 logs the stopping minibatch's losses too
    per_epoch = T * E // M
    last = [r["kl"] for r in trace[(len(trace) - 1) // per_epoch * per_epoch:]]
    mean = lambda f: float(np.mean([f(r["step"]) for r in steps]))  # noqa: E731
    return {"train/policy_gradient_loss": mean(lambda s: s.policy_loss), "train/value_loss": mean(lambda s: s.value_mse),
            "train/entropy_loss": mean(lambda s: -s.entropy), "train/clip_fraction": mean(lambda s: s.clip_fraction),
            "train/approx_kl": float(np.mean(last)), "train/loss": steps[-1]["step"].loss}


def compare(case, env_id, target_kl=TARGET_KL, seed=0):
    """Rows of one PPO case."""
    from purepg.run.runner import make_policy
    from purepg.model.value import ValueFunction
    import gymnasium as gym

    cfg, lam = purepg_config(target_kl)
    env = gym.make(env_id)
    pol = make_policy(env.observation_space, env.action_space, cfg)
    rng = np.random.default_rng(seed)
    theta = pol.init(rng)
    theta_v = ValueFunction(pol.obs_dim, cfg.vf_hidden, cfg.activation, cfg.init).init(rng)
    lib = library_update(env_id, seed, theta, theta_v, pol.discrete, target_kl)
    flat, trace, new, logs = purepg_update(lib, theta, theta_v, (cfg, lam))
    steps = [r for r in trace if "x" in r]
    theirs = lib["rec"].steps
    rows = [Row(case, "GAE advantages", rel(flat.adv, lib["adv"]), TOL),
            Row(case, "value targets (returns)", rel(flat.ret, lib["ret"]), TOL),
            Row(case, f"updates taken ({len(steps)} vs {len(theirs)})", 0.0 if len(steps) == len(theirs) else np.inf, 0.0,
                "early stop at the same minibatch" if len(steps) < EPOCHS * T * E // M else "")]
    for key, name in (("g", "clipped gradient, every step"), ("m", "Adam m, every step"), ("v", "Adam v, every step"),
                      ("x", "parameters after every step")):
        rows.append(Row(case, name, rel_steps(steps, theirs, key), TOL))
    for key, ours in _means(trace).items():
        rows.append(Row(case, key.split("/")[1] + (" (mean)" if key != "train/loss" else " (last step)"),
                        rel(ours, lib["logs"][key]), TOL))
    rows.append(Row(case, "new parameters", rel(np.concatenate([new["theta"], new["theta_v"]]), theirs[-1]["x"]), TOL))
    return rows


CASES = (lambda: compare("sb3 PPO CartPole-v1 (Discrete)", "CartPole-v1"),
         lambda: compare("sb3 PPO Pendulum-v1 (Box), no stop", "Pendulum-v1", target_kl=1.0),
         lambda: compare("sb3 PPO Pendulum-v1 (Box), KL stop", "Pendulum-v1"))
