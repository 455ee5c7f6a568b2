"""Conformance of one TRPO update with sb3-contrib's ``TRPO.train()``.

Setting (both sides): 2 env copies x 64 steps, KL radius ``delta``, CG damping ``c`` and 15 CG steps,
line search 0.8^j for j < 10, critic: 4 epochs of Adam (lr 1e-3) on minibatches of 32, 64-64 tanh
networks; purepg with the ``sb3`` profile. sb3-contrib starts CG from ``1e-4 * torch.randn_like(g)``
drawn from torch's global generator: the case seeds it (``torch.manual_seed``) right before
``train()``, draws the same numbers again after it, and passes them to purepg's update as ``cg_x0``
(purepg draws its own ``1e-4 z`` from its Generator in a normal run).

Conditioning: the CG solve amplifies rounding by about the condition number of ``F + c I``, so at
small damping the step differs between any two float64 implementations far above 1e-15. The case
measures sb3-contrib's own sensitivity -- its update rerun with every advantage moved by one ulp --
and judges the step, the new parameters and what follows from them against ``max(1e-9, 10 x that)``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from purepg.verify import conformance_sb3 as sb
from purepg.verify.conformance import TOL, Row, rel

T, E, VF_MB, VF_EPOCHS, VF_LR, CG_ITERS, LS_RATIO, LS_STEPS, GAMMA, LAM, SEED_CG = (
    64, 2, 32, 4, 1e-3, 15, 0.8, 10, 0.99, 0.95, 1234)


def purepg_config(delta, damping, profile="sb3", **explicit):
    """purepg's TRPO Config for the setting above (field names of either vocabulary)."""
    from purepg.algos import conventions, trpo

    names = {f.name for f in dataclasses.fields(trpo.Config)}
    radius = "delta" if "delta" in names else "target_kl"
    cfg, _ = conventions.configure(
        trpo.Config, profile, num_envs=E, num_steps=T, gamma=GAMMA, gae_lambda=LAM,
        **{"damping" if "damping" in names else "cg_damping": damping},
        cg_iters=CG_ITERS, ls_ratio=LS_RATIO, ls_max_steps=LS_STEPS, vf_lr=VF_LR, vf_epochs=VF_EPOCHS,
        vf_minibatch_size=VF_MB, init="torch", **{radius: delta}, **explicit)
    return cfg


def sb3_model(env_id, seed, delta, damping):
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.buffers import RolloutBuffer
    from stable_baselines3.common.env_util import make_vec_env

    model = TRPO("MlpPolicy", make_vec_env(env_id, n_envs=E, seed=seed), learning_rate=VF_LR, n_steps=T,
                 batch_size=VF_MB, gamma=GAMMA, cg_max_steps=CG_ITERS, cg_damping=damping,
                 line_search_shrinking_factor=LS_RATIO, line_search_max_iter=LS_STEPS, n_critic_updates=VF_EPOCHS,
                 gae_lambda=LAM, normalize_advantage=True, target_kl=delta, seed=seed, device="cpu",
                 rollout_buffer_class=sb.float64_buffer(RolloutBuffer),
                 policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                                    ortho_init=False))
    sb.to_float64(model.policy)
    return model


def _record_cg(out):
    """Wrap sb3-contrib's CG (as TRPO.train looks it up) to record its right-hand side and solution."""
    import sb3_contrib.trpo.trpo as mod

    inner = mod.conjugate_gradient_solver

    def solver(matvec, b, **kw):
        x = inner(matvec, b, **kw)
        out["b"], out["x"] = b.detach().numpy().copy(), x.detach().numpy().copy()
        return x
    mod.conjugate_gradient_solver = solver
    return lambda: setattr(mod, "conjugate_gradient_solver", inner)


def _count_calls(obj, name, out):
    inner = getattr(obj, name)
    out[name] = 0

    def counted(*a, **k):
        out[name] += 1
        return inner(*a, **k)
    setattr(obj, name, counted)


def library_update(env_id, seed, theta, theta_v, discrete, delta, damping, perturb=False):
    """sb3-contrib's first TRPO update from ``(theta, theta_v)``; ``perturb`` moves every advantage by one ulp."""
    import torch

    model = sb3_model(env_id, seed, delta, damping)
    pi, vf = sb.param_names(2, discrete)
    sb.put(model.policy, pi, theta)
    sb.put(model.policy, vf, theta_v)
    out = {}

    def before_train(m):
        buf = m.rollout_buffer
        out["batch"] = sb.batch_from_buffer(buf, m._last_obs, m._last_episode_starts, discrete)
        out["adv"], out["ret"] = buf.advantages.reshape(-1).copy(), buf.returns.reshape(-1).copy()
        if perturb:
            buf.advantages = np.nextafter(buf.advantages, np.inf)
        out["rows"] = sb.record_rows(buf, T, E)
        out["rec"] = sb.StepRecorder.of_policy(m.policy, vf)
        _count_calls(m.policy, "get_distribution", out)
        torch.manual_seed(SEED_CG)
    undo = _record_cg(out)
    try:
        sb.first_update(model, 2 * T * E, before_train)
    finally:
        undo()
    torch.manual_seed(SEED_CG)
    actor = [n for n, _ in model.policy.named_parameters() if "value" not in n]   # sb3-contrib's CG order
    z = 1e-4 * torch.randn(sum(dict(model.policy.named_parameters())[n].numel() for n in actor), dtype=torch.float64)
    perm = _to_purepg_order(model.policy, actor, pi)
    params = dict(model.policy.named_parameters())
    out.update(x0=z.numpy()[perm], b=out["b"][perm], x=out["x"][perm], trials=out["get_distribution"] - 2,
               theta=sb.flat([params[n] for n in pi]), theta_v=sb.flat([params[n] for n in vf]),
               logs=dict(model.logger.name_to_value), spaces=(model.observation_space, model.action_space))
    return out


def _to_purepg_order(policy, sb3_names, purepg_names):
    """Indices taking a vector in ``sb3_names`` order to ``purepg_names`` order."""
    sizes = {n: p.numel() for n, p in policy.named_parameters()}
    start = dict(zip(sb3_names, np.cumsum([0] + [sizes[n] for n in sb3_names])))
    return np.concatenate([np.arange(start[n], start[n] + sizes[n]) for n in purepg_names])


def purepg_update(lib, theta, theta_v, cfg):
    """purepg's TRPO update from the same state and rollout (sb3-contrib's critic order and CG start),
    and, from purepg's own functions, the policy gradient and CG solution it steps along."""
    from purepg.algos import critic, trpo
    from purepg.model.value import ValueFunction
    from purepg.optim import adam_init, natural_step
    from purepg.pg.surrogates import surrogate
    from purepg.run.runner import Context, make_policy

    pol = make_policy(*lib["spaces"], cfg)
    ctx = Context(pol, ValueFunction(pol.obs_dim, cfg.vf_hidden, cfg.activation, cfg.init), cfg, 2 * T * E)
    state = {"theta": theta, "theta_v": theta_v, "opt_v": adam_init(theta_v.size)}
    order = sb.epochs_order(lib["rows"][1:], T * E)          # rows[0]: the policy step's whole batch
    new, logs = trpo.update(ctx, state, lib["batch"], np.random.default_rng(0), 0.0, order=order, cg_x0=lib["x0"])
    flat, adv = critic.advantages(ctx, state, lib["batch"])
    L0 = surrogate(pol, theta, flat.obs, flat.act, flat.logp_old, adv)                     # L(theta), g (P,)
    g = L0.grad
    ns = natural_step(g, trpo.fisher_operator(ctx, theta, flat.obs), cfg.delta, damping=cfg.damping,
                      solver="cg", cg_iters=cfg.cg_iters, cg_tol=cfg.cg_tol, cg_x0=lib["x0"], cg_stop=cfg.cg_stop)
    return flat, g, ns.x, new, {**logs, "surrogate": L0.value + logs["surrogate_gain"]}


def compare(case, env_id, delta, damping, seed=0):
    """Rows of one TRPO case (see the module docstring for the floors)."""
    import gymnasium as gym

    from purepg.model.value import ValueFunction
    from purepg.run.runner import make_policy

    cfg = purepg_config(delta, damping)
    env = gym.make(env_id)
    pol = make_policy(env.observation_space, env.action_space, cfg)
    rng = np.random.default_rng(seed)
    theta = pol.init(rng)
    theta_v = ValueFunction(pol.obs_dim, cfg.vf_hidden, cfg.activation, cfg.init).init(rng)
    lib = library_update(env_id, seed, theta, theta_v, pol.discrete, delta, damping)
    ulp = library_update(env_id, seed, theta, theta_v, pol.discrete, delta, damping, perturb=True)
    flat, g, x, new, logs = purepg_update(lib, theta, theta_v, cfg)
    floor = lambda key: max(TOL, 10 * rel(ulp[key], lib[key]))  # noqa: E731
    note = lambda key: f"floor: sb3-contrib moves {rel(ulp[key], lib[key]):.1e} for 1 ulp"  # noqa: E731
    obj, kl = lib["logs"]["train/policy_objective"], lib["logs"]["train/kl_divergence_loss"]
    obj_ulp, kl_ulp = ulp["logs"]["train/policy_objective"], ulp["logs"]["train/kl_divergence_loss"]
    steps, critic_steps = lib["rec"].steps, len(lib["rec"].steps)
    last = {"x": new["theta_v"], "m": new["opt_v"].m, "v": new["opt_v"].v}
    return [Row(case, "GAE advantages", rel(flat.adv, lib["adv"]), TOL),
            Row(case, "value targets (returns)", rel(flat.ret, lib["ret"]), TOL),
            Row(case, "policy gradient g", rel(g, lib["b"]), TOL),
            Row(case, "CG solution x", rel(x, lib["x"]), floor("x"), note("x")),
            Row(case, f"line-search trial ({logs['ls_steps'] - 1} vs {lib['trials'] - 1})",
                0.0 if logs["ls_steps"] == lib["trials"] else np.inf, 0.0),
            Row(case, "KL(new || old) accepted", rel(logs["kl"], kl), max(TOL, 10 * rel(kl_ulp, kl)),
                f"floor: {rel(kl_ulp, kl):.1e}"),
            Row(case, "surrogate at the accepted step", rel(logs["surrogate"], obj), max(TOL, 10 * rel(obj_ulp, obj)),
                f"floor: {rel(obj_ulp, obj):.1e}"),
            Row(case, "new policy parameters", rel(new["theta"], lib["theta"]), floor("theta"), note("theta")),
            Row(case, f"critic Adam steps ({VF_EPOCHS * T * E // VF_MB} vs {critic_steps})",
                0.0 if VF_EPOCHS * T * E // VF_MB == critic_steps else np.inf, 0.0),
            *[Row(case, f"critic {name} after the fit", rel(last[k], steps[-1][k]), TOL)
              for k, name in (("x", "parameters"), ("m", "Adam m"), ("v", "Adam v"))]]


CASES = (lambda: compare("sb3-contrib TRPO CartPole c=0.1", "CartPole-v1", 0.01, 0.1),
         lambda: compare("sb3-contrib TRPO CartPole c=1e-3", "CartPole-v1", 0.01, 1e-3),
         lambda: compare("sb3-contrib TRPO CartPole d=0.1", "CartPole-v1", 0.1, 0.1),
         lambda: compare("sb3-contrib TRPO Pendulum (Box)", "Pendulum-v1", 0.01, 0.1))
