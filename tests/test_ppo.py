"""purepg.algos.ppo: exact minibatch gradients (clip and KL-penalty objectives), the shared loop's rules,
the configs of both variants, learning."""
import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from helpers.algo_runs import PPO_FAST as FAST, make_ctx
from helpers.finite_diff import gradient
from purepg.run import runner
from purepg.algos import ppo, ppo_kl
from purepg.algos.common import Flat
from purepg.optim import adam_init, adam_step
from purepg.model.policy import CategoricalPolicy, GaussianPolicy
from purepg.model.value import ValueFunction



# ----------------------------------------------------------------------------- strategies ---
def st_case():
    """Seed, policy kind, variant, entropy and value-clip settings of a minibatch-gradient case."""
    return st.tuples(st.integers(0, 2**31 - 1), st.booleans(), st.sampled_from(["clip", "kl"]),
                     st.sampled_from([0.0, 0.05]), st.sampled_from([None, 0.3]))


def _minibatch_case(seed, discrete, N=12):
    """A policy ``theta`` moved away from the sampling ``theta_old`` so some ratios leave [0.8, 1.2]."""
    rng = np.random.default_rng(seed)
    pol = CategoricalPolicy(3, 3, (5,)) if discrete else GaussianPolicy(3, 2, (5,), log_std_init=-0.3)
    vf = ValueFunction(3, (4,))
    theta_old = pol.init(rng) + 0.3 * rng.standard_normal(pol.num_params)      # (P,)
    obs = rng.uniform(-2, 2, (N, 3))                                            # (N, 3)
    act = pol.sample(theta_old, obs, rng)
    theta = theta_old + 0.15 * rng.standard_normal(pol.num_params)             # (P,)
    theta_v = vf.init(rng)                                                      # (P_v,)
    mb = Flat(obs, act, pol.log_prob(theta_old, obs, act), rng.standard_normal(N),
              rng.standard_normal(N), vf.predict(theta_v, obs) + 0.3 * rng.standard_normal(N))
    return pol, vf, theta_old, theta, theta_v + 0.2 * rng.standard_normal(theta_v.size), mb


def _ctx(pol, vf, **cfg):
    return runner.Context(pol, vf, ppo.Config(**{**FAST, **cfg}), 10_000)


def _far_from_kinks(pol, vf, theta, theta_v, mb, eps, eps_v, gap=1e-4):
    """True if no ratio is within ``gap`` of 1 +- eps and no value term is near its clip or tie kink."""
    r = np.exp(pol.log_prob(theta, mb.obs, mb.act) - mb.logp_old)              # (N,)
    ok = np.min(np.abs(np.abs(r - 1.0) - eps)) > gap
    if eps_v is not None:
        v = vf.predict(theta_v, mb.obs)                                         # (N,)
        v_c = mb.v + np.clip(v - mb.v, -eps_v, eps_v)                           # (N,)
        tie = np.abs((v - mb.ret) ** 2 - (v_c - mb.ret) ** 2)                   # 0 inside the clip interval
        outside = np.abs(v - mb.v) > eps_v
        ok = ok and np.min(np.abs(np.abs(v - mb.v) - eps_v)) > gap and np.all(tie[outside] > gap)
    return ok


# ----------------------------------------------------------------------------- gradients ----
@given(st_case())
def test_minibatch_gradients_match_finite_differences(case):
    """Both gradients of L = -objective - c_2 S + c_1 mean (V - R)^2 against central differences.

    Tolerance 1e-6 relative + 1e-7 absolute: tests/helpers/finite_diff.py (h = 1e-6, error ~ eps^(2/3) times
    third derivatives of order <= 1e2 on these small nets), far below an O(1) wrong term. Points within
    1e-4 of a kink of the clipped terms are skipped (a difference quotient across a kink is not a
    derivative), so the test exercises the clipped and unclipped pieces on both sides.
    """
    seed, discrete, variant, c2, eps_v = case
    pol, vf, theta_old, theta, theta_v, mb = _minibatch_case(seed, discrete)
    ctx = _ctx(pol, vf, ent_coef=c2, vf_clip=eps_v, vf_coef=0.7)
    v, coefs = (ppo.CLIP, {"clip_range": 0.2}) if variant == "clip" else (ppo_kl.KL_PENALTY, {"beta": 3.0})
    assume(_far_from_kinks(pol, vf, theta, theta_v, mb, 0.2 if variant == "clip" else 10.0, eps_v))
    step = ppo.loss_and_grad(ctx, theta, theta_v, mb, theta_old, coefs, v)
    fd = gradient(lambda th: ppo.loss_and_grad(ctx, th, theta_v, mb, theta_old, coefs, v).loss, theta)
    fd_v = gradient(lambda tv: ppo.loss_and_grad(ctx, theta, tv, mb, theta_old, coefs, v).loss, theta_v)
    np.testing.assert_allclose(step.g, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(step.g_v, fd_v, rtol=1e-6, atol=1e-7)


@given(st.integers(0, 2**31 - 1), st.booleans())
def test_first_step_gradient_is_the_policy_gradient(seed, discrete):
    """At theta = theta_old every ratio is 1: -g = (1/N) sum_i A_i grad log pi(a_i|s_i), for both variants
    (the KL term has zero gradient at theta_old); g_v = 2 c_1 grad L_V."""
    pol, vf, theta_old, _, theta_v, mb = _minibatch_case(seed, discrete)
    ctx = _ctx(pol, vf, vf_coef=0.25)
    pg = pol.log_prob_grad(theta_old, mb.obs, mb.act, mb.adv / mb.adv.size)     # (P,)
    for v, coefs in ((ppo.CLIP, {"clip_range": 0.2}), (ppo_kl.KL_PENALTY, {"beta": 5.0})):
        step = ppo.loss_and_grad(ctx, theta_old, theta_v, mb, theta_old, coefs, v)
        np.testing.assert_allclose(-step.g, pg, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(step.g_v, 0.5 * vf.loss(theta_v, mb.obs, mb.ret).grad, rtol=1e-12)


@pytest.mark.parametrize("field, bad, match", [("obs", lambda mb: mb.obs[:, :-1], "obs"),
                                               ("adv", lambda mb: mb.adv[:-1], "adv"),
                                               ("theta", lambda mb: None, "theta")])
def test_loss_and_grad_validates_then_equals_the_unchecked_step(field, bad, match):
    """The public loss_and_grad names a bad argument in the one message format; on good arguments it is
    the unchecked step the loop calls, bit for bit."""
    pol, vf, theta_old, theta, theta_v, mb = _minibatch_case(3, True)
    ctx, coefs = _ctx(pol, vf), {"clip_range": 0.2}
    a = ppo.loss_and_grad(ctx, theta, theta_v, mb, theta_old, coefs)
    b = ppo.loss_and_grad_unchecked(ctx, theta, theta_v, mb, theta_old, coefs)
    assert a.loss == b.loss and np.array_equal(a.g, b.g) and np.array_equal(a.g_v, b.g_v)
    args = (theta[:-1], mb) if field == "theta" else (theta, mb._replace(**{field: bad(mb)}))
    with pytest.raises(ValueError, match=rf"^{match}: expected .* Fix: "):
        ppo.loss_and_grad(ctx, args[0], theta_v, args[1], theta_old, coefs)


@given(st_case(), st.sampled_from(["max", "prediction"]))
def test_minibatch_step_into_workspaces_equals_fresh_arrays_bit_for_bit(case, value_clip):
    """The loop's steps write both networks' passes into workspaces (ppo.workspaces, reused across steps):
    the same loss and gradients, bit for bit, as the passes on fresh arrays, for every variant and option."""
    seed, discrete, variant, ent_coef, vf_clip = case
    pol, _, theta_old, theta, _, mb = _minibatch_case(seed, discrete)
    vf = ValueFunction(3, (5,))                                                 # the policy's widths: arrays shared
    theta_v = vf.init(np.random.default_rng(seed)) + 0.2
    ctx = _ctx(pol, vf, ent_coef=ent_coef, vf_clip=vf_clip, value_clip=value_clip)
    v, coefs = (ppo.CLIP, {"clip_range": 0.2}) if variant == "clip" else (ppo_kl.KL_PENALTY, {"beta": 5.0})
    ws = ppo.workspaces(ctx, mb.adv.size)
    assert ppo.workspaces(ctx, mb.adv.size) is ws                                 # kept for the next steps
    for val, pol_a in zip(ws[1].h + ws[1].dz, ws[0].h + ws[0].dz):           # one thread: the value passes
        assert (val is pol_a) == (val.shape == pol_a.shape)                     # take the policy's arrays
    assert ws[1].h[0] is ws[0].h[0]
    for _ in range(2):                                                          # a second pass over the same arrays
        a = ppo.loss_and_grad_unchecked(ctx, theta, theta_v, mb, theta_old, coefs, v)
        b = ppo.loss_and_grad_unchecked(ctx, theta, theta_v, mb, theta_old, coefs, v, ws)
        assert a.loss == b.loss and a.value_mse == b.value_mse
        np.testing.assert_array_equal(a.g, b.g)
        np.testing.assert_array_equal(a.g_v, b.g_v)
        theta = theta + 0.01


@pytest.mark.parametrize("max_grad_norm", [0.5, None])
def test_separate_adam_states_equal_one_adam_on_the_concatenation(max_grad_norm):
    """Two networks, two Adam states, jointly clipped gradients == the loop's one Adam on [theta, theta_v],
    bit for bit (Adam and the clip scale act coordinate-wise): join, clip_and_step, split."""
    rng = np.random.default_rng(0)
    P, Pv = 7, 5
    state = {"theta": rng.standard_normal(P), "theta_v": rng.standard_normal(Pv),
             "opt": adam_init(P), "opt_v": adam_init(Pv), "other": 3}
    cfg = ppo.Config(max_grad_norm=max_grad_norm, adam_eps=1e-5)
    joint, sep = ppo.join(state), dict(state)
    for _ in range(4):
        g = 10 * rng.standard_normal(P + Pv)                                   # norm >> 0.5: clipped
        joint = ppo.clip_and_step(joint, ppo.Step(0.0, g[:P], g[P:], 0.0, 0.0), 1e-2, cfg)
        if max_grad_norm is not None:
            g = g * (max_grad_norm / np.linalg.norm(g))
        sep["theta"], sep["opt"] = adam_step(sep["theta"], g[:P], sep["opt"], lr=1e-2, eps=1e-5)
        sep["theta_v"], sep["opt_v"] = adam_step(sep["theta_v"], g[P:], sep["opt_v"], lr=1e-2, eps=1e-5)
    new = ppo.split(state, joint)
    assert new["other"] == 3 and new["opt"].t == new["opt_v"].t == 4
    for k in ("theta", "theta_v"):
        np.testing.assert_array_equal(new[k], sep[k])
    for k in ("opt", "opt_v"):
        np.testing.assert_array_equal(new[k].m, sep[k].m)
        np.testing.assert_array_equal(new[k].v, sep[k].v)


def test_join_refuses_adam_states_at_different_steps():
    state = {"theta": np.zeros(2), "theta_v": np.zeros(1), "opt": adam_init(2), "opt_v": adam_init(1)._replace(t=3)}
    with pytest.raises(ValueError, match=r"state: expected the policy and value Adam states at one step count, "
                                         r"got opt\.t = 0 and opt_v\.t = 3\. Fix"):
        ppo.join(state)


# ----------------------------------------------------------------------------- the loop -----
def _batch(config, seed=0, env_id="CartPole-v1"):
    return make_ctx(ppo_kl if isinstance(config, ppo_kl.Config) else ppo, config, env=env_id, seed=seed)


def test_target_kl_stops_after_the_first_step():
    """KL is 0 before the first minibatch step and > 1.5 * 1e-12 before the second: one step, one epoch."""
    ctx, state, batch, rng = _batch(ppo.Config(**FAST, kl_stop=1e-12))
    _, logs = ppo.update(ctx, state, batch, rng, 0.0)
    assert logs["updates"] == 1 and logs["epochs"] == 1
    ctx, state, batch, rng = _batch(ppo.Config(**FAST))
    _, logs = ppo.update(ctx, state, batch, rng, 0.0)
    assert logs["updates"] == 4 * 4 and logs["epochs"] == 4            # K = 4 epochs of 64 / 16 minibatches


def test_update_validates_state_and_batch_once():
    """The minibatch steps skip validation; the iteration checks what they read, with the usual messages."""
    ctx, state, batch, rng = _batch(ppo.Config(**FAST))
    bad = {**state, "theta_v": state["theta_v"][:-1]}
    with pytest.raises(ValueError, match=r"theta_v: expected shape \(%d,\), got \(%d,\)\. Fix"
                                         % (ctx.vf.num_params, ctx.vf.num_params - 1)):
        ppo.update(ctx, bad, batch, rng, 0.0)
    opt = state["opt"]._replace(v=np.full_like(state["opt"].v, np.nan))
    with pytest.raises(ValueError, match=r"opt\.v: expected finite values, got nan"):
        ppo.update(ctx, {**state, "opt": opt}, batch, rng, 0.0)
    act = batch.act.copy()
    act[3, 1] = 7
    with pytest.raises(ValueError, match=r"act: expected actions in \[0, 2\), got 7\. Fix"):
        ppo.update(ctx, state, dataclasses.replace(batch, act=act), rng, 0.0)


def test_linear_schedules_and_logs():
    ctx, state, batch, rng = _batch(ppo.Config(**FAST, lr=1e-3, lr_final=1e-4, clip=0.3, clip_final=0.1))
    _, logs = ppo.update(ctx, state, batch, rng, 0.25)
    assert logs["lr"] == pytest.approx(1e-3 + 0.25 * (1e-4 - 1e-3), rel=1e-14)
    assert logs["clip_range"] == pytest.approx(0.3 + 0.25 * (0.1 - 0.3), rel=1e-14)
    assert 0 <= logs["clip_fraction"] <= 1 and logs["entropy"] > 0 and logs["value_loss"] > 0
    assert set(logs) >= {"kl", "entropy", "clip_fraction", "value_loss", "explained_variance", "lr", "epochs"}


def test_gaussian_policy_iteration_runs():
    """One PPO-clip and one PPO-KL iteration on Pendulum (Box actions): finite logs, theta moves."""
    for Cfg in (ppo.Config, ppo_kl.Config):
        ctx, state, batch, rng = _batch(Cfg(**FAST, ent_coef=0.01, vf_clip=0.2), env_id="Pendulum-v1")
        new, logs = (ppo if Cfg is ppo.Config else ppo_kl).update(ctx, state, batch, rng, 0.0)
        assert all(np.isfinite(v) for v in logs.values()) and not np.array_equal(new["theta"], state["theta"])


# ----------------------------------------------------------------------------- configs ------
@pytest.mark.parametrize("Cfg", [ppo.Config, ppo_kl.Config])
@pytest.mark.parametrize("field, value, match", [
    ("lr", 0.0, r"lr: expected a finite number > 0, got 0\.0"),
    ("lr_final", -1e-3, r"lr_final: expected a finite number >= 0"),
    ("gamma", 1.5, r"gamma: expected a finite number in \[0, 1\], got 1\.5"),
    ("gae_lambda", -0.1, r"gae_lambda: expected a finite number in \[0, 1\]"),
    ("epochs", 0, r"epochs: expected an integer >= 1, got 0"),
    ("minibatch_size", 100, r"minibatch_size: expected a divisor of the batch N = num_envs \* num_steps = 256, got 100\. Fix: pass a divisor of 256"),
    ("vf_coef", -1.0, r"vf_coef: expected a finite number >= 0"),
    ("vf_clip", 0.0, r"vf_clip: expected None \(off\) or a finite number > 0, got 0\.0"),
    ("max_grad_norm", -1.0, r"max_grad_norm: expected None \(off\) or a finite number > 0"),
    ("kl_stop", float("nan"), r"kl_stop: expected None \(off\) or a finite number > 0"),
    ("adam_eps", 0, r"adam_eps: expected a finite number > 0"),
    ("normalize_advantage", "yes", r"normalize_advantage: expected True or False, got 'yes'"),
    ("activation", "sigmoid", r"activation: expected one of 'tanh', 'relu', got 'sigmoid'"),
    ("num_envs", 0, r"num_envs: expected an integer >= 1, got 0"),
])
def test_invalid_shared_fields(Cfg, field, value, match):
    with pytest.raises(ValueError, match=match):
        Cfg(**{field: value})


@pytest.mark.parametrize("Cfg, field, value, match", [
    (ppo.Config, "clip", 0.0, r"clip: expected a finite number > 0, got 0\.0"),
    (ppo.Config, "clip_final", -0.1, r"clip_final: expected a finite number >= 0"),
    (ppo_kl.Config, "beta_init", 0.0, r"beta_init: expected a finite number > 0, got 0\.0"),
    (ppo_kl.Config, "target_kl", -0.01, r"target_kl: expected a finite number > 0"),
])
def test_invalid_variant_fields(Cfg, field, value, match):
    with pytest.raises(ValueError, match=match):
        Cfg(**{field: value})


def test_lr_of_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match=r"lr: expected a finite number > 0, got str '1e-3'"):
        ppo.Config(lr="1e-3")


def test_defaults_are_rl_zoo_cartpole():
    """rl-zoo hyperparams/ppo.yml, CartPole-v1 (and SB3 defaults for what it leaves unset)."""
    c = ppo.Config()
    assert (c.num_envs, c.num_steps, c.minibatch_size, c.epochs, c.gamma, c.gae_lambda) == (8, 32, 256, 20, 0.98, 0.8)
    assert (c.lr, c.lr_final, c.clip, c.clip_final, c.ent_coef) == (1e-3, 0.0, 0.2, 0.0, 0.0)
    assert (c.vf_coef, c.max_grad_norm, c.adam_eps, c.hidden, c.vf_hidden) == (0.5, 0.5, 1e-5, (64, 64), (64, 64))
    assert {f.name for f in dataclasses.fields(ppo_kl.Config)} - {f.name for f in dataclasses.fields(ppo.Config)} \
        == {"beta_init", "target_kl", "beta_min", "beta_max"}


# ----------------------------------------------------------------------------- training -----
def test_ppo_learns_cartpole(tmp_path):
    """rl-zoo defaults, 20480 steps (~3 s): the mean return of the last 100 episodes is far above a
    uniformly random policy's (about 22 on CartPole-v1). The threshold leaves room for the machine: a
    run's bits depend on its SIMD and BLAS, and sixteen runs (seeds 0-7, AVX-512 and AVX2) ended at 112-179
    (seed 0: 156 and 167)."""
    s = runner.train(ppo, "CartPole-v1", ppo.Config(), seed=0, out_dir=str(tmp_path / "r"), total_steps=20480,
                     verbose=False)
    assert s["last_row"]["ep_return_mean"] > 80
