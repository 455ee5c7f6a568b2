"""The convention options: each primitive's alternative against its defining formula (or finite
differences), the algorithms' options end to end, the explicit minibatch order, and the profiles."""
import dataclasses
import json

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp

from helpers.finite_diff import gradient
from purepg import cli
from purepg.algos import conventions, ppo, trpo
from purepg.algos.common import Flat, normalize_advantage
from purepg.env import envs, rollout
from purepg.model.value import ValueFunction, value_loss_terms
from purepg.optim import backtracking_line_search, conjugate_gradient, linear_schedule
from purepg.run import runner

FAST = dict(num_envs=2, num_steps=32, hidden=(8,), vf_hidden=(8,), epochs=2, minibatch_size=16)
TR_FAST = dict(num_envs=2, num_steps=32, hidden=(8,), vf_hidden=(8,), vf_epochs=2, vf_minibatch_size=16)


def vec(n, lo=-5.0, hi=5.0):
    return hnp.arrays(np.float64, n, elements=st.floats(lo, hi, allow_nan=False))


# ------------------------------------------------------------------------------ primitives ----
@given(st.integers(2, 20).flatmap(vec))
def test_sample_eps_normalisation_is_sample_std_plus_offset(a):
    assume(np.ptp(a) > 1e-3)
    n = a.size
    s1 = np.sqrt(np.sum((a - a.sum() / n) ** 2) / (n - 1))                      # ddof 1 by its definition
    np.testing.assert_allclose(normalize_advantage(a, "sample_eps"), (a - a.mean()) / (s1 + 1e-8), rtol=1e-12, atol=1e-12)
    s0 = np.sqrt(np.mean((a - a.mean()) ** 2))
    np.testing.assert_allclose(normalize_advantage(a), (a - a.mean()) / s0, rtol=1e-12, atol=1e-12)


def test_a_single_advantage_is_left_unchanged_by_sample_eps_and_centred_by_population():
    assert normalize_advantage(np.array([3.5]), "sample_eps")[0] == 3.5
    assert normalize_advantage(np.array([3.5]))[0] == 0.0


@given(st.integers(1, 10).flatmap(lambda n: st.tuples(vec(n), vec(n), vec(n))), st.floats(0.05, 1.0))
def test_clipped_prediction_loss_and_gradient(b, eps_v):
    v, R, v_old = b
    d = np.abs(np.abs(v - v_old) - eps_v)
    assume(d.min() > 1e-4)                                                     # away from the clip kinks
    L, g = value_loss_terms(v, R, v_old=v_old, clip_eps=eps_v, clip_style="prediction")
    vc = v_old + np.clip(v - v_old, -eps_v, eps_v)
    assert L == pytest.approx(0.5 * np.mean((vc - R) ** 2), rel=1e-14, abs=1e-300)
    f = lambda x: value_loss_terms(x, R, v_old=v_old, clip_eps=eps_v, clip_style="prediction")[0]  # noqa: E731
    np.testing.assert_allclose(g, gradient(f, v), rtol=1e-6, atol=1e-6 * (1 + abs(L)))
    L_max = value_loss_terms(v, R, v_old=v_old, clip_eps=eps_v)[0]
    assert L <= L_max + 1e-12                                                  # eq. 2 takes the larger square


def test_unknown_clip_style_is_one_line():
    with pytest.raises(ValueError, match=r"clip_style: expected one of max, prediction, got 'min'"):
        value_loss_terms(np.ones(2), np.zeros(2), v_old=np.ones(2), clip_eps=0.1, clip_style="min")


def spd(n, seed):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    return B @ B.T + n * np.eye(n), rng.standard_normal(n)


@pytest.mark.parametrize("seed", range(4))
def test_cg_from_a_start_and_with_the_absolute_test_solves_the_system(seed):
    A, b = spd(6, seed)
    x0 = 1e-4 * np.random.default_rng(seed + 10).standard_normal(6)
    res = conjugate_gradient(lambda v: A @ v, b, iters=30, tol=1e-20, x0=x0, stop="absolute")
    assert res.converged and res.residual ** 2 < 1e-20
    np.testing.assert_allclose(A @ res.x, b, rtol=0, atol=1e-9)


def test_cg_absolute_test_returns_the_start_when_it_already_solves():
    A, b = spd(5, 0)
    x = np.linalg.solve(A, b)
    res = conjugate_gradient(lambda v: A @ v, b, iters=10, tol=1e-10, x0=x, stop="absolute")
    assert res.iterations == 0 and np.array_equal(res.x, x)
    loose = conjugate_gradient(lambda v: A @ v, b, iters=10, tol=1e6, stop="absolute")   # ||b||^2 < 1e6
    assert loose.iterations == 0 and not np.any(loose.x)


def test_cg_bad_start_and_stop_are_one_line():
    A, b = spd(3, 0)
    with pytest.raises(ValueError, match="x0: expected shape"):
        conjugate_gradient(lambda v: A @ v, b, x0=np.zeros(4))
    with pytest.raises(ValueError, match="stop: expected one of relative, absolute"):
        conjugate_gradient(lambda v: A @ v, b, stop="sometimes")


@pytest.mark.parametrize("strict, accepted", [(False, True), (True, False)])
def test_strict_line_search_rejects_a_kl_equal_to_the_bound(strict, accepted):
    res = backtracking_line_search(lambda th: float(th[0]), np.zeros(1), np.ones(1), constraint=lambda th: 0.25,
                                   delta=0.25, max_steps=1, strict=strict)
    assert res.accepted is accepted


# ------------------------------------------------------------------------------ PPO options ---
def batch_for(Config, **cfg):
    config = Config(**cfg)
    vecenv = envs.make_vec_env("CartPole-v1", config.num_envs, seed=0)
    pol = runner.make_policy(vecenv.single_observation_space, vecenv.single_action_space, config)
    ctx = runner.Context(pol, ValueFunction(pol.obs_dim, config.vf_hidden), config, 1000)
    rng = np.random.default_rng(0)
    state = (ppo if Config is ppo.Config else trpo).init(ctx, rng)
    batch, _ = rollout.collect(vecenv, pol, state["theta"], config.num_steps, rng, rollout.start(vecenv))
    vecenv.close()
    return ctx, state, batch


def test_ppo_explicit_order_replays_the_drawn_one_bit_for_bit():
    ctx, state, batch = batch_for(ppo.Config, **FAST)
    new, logs = ppo.update(ctx, state, batch, np.random.default_rng(5), 0.0)
    draw = np.random.default_rng(5)
    order = [draw.permutation(64) for _ in range(FAST["epochs"])]
    trace = []
    again, logs2 = ppo.update(ctx, state, batch, np.random.default_rng(99), 0.0, order=order, trace=trace)
    assert np.array_equal(new["theta"], again["theta"]) and np.array_equal(new["theta_v"], again["theta_v"])
    assert [r["idx"].tolist() for r in trace] == [o[i:i + 16].tolist() for o in order for i in range(0, 64, 16)]
    with pytest.raises(ValueError, match="order: expected a permutation for epoch 1"):
        ppo.update(ctx, state, batch, draw, 0.0, order=order[:1])


@pytest.mark.parametrize("at, factor, steps", [("minibatch", 1.5, 1), ("epoch", 1.0, 4)])
def test_kl_stop_before_the_step_or_after_the_epoch(at, factor, steps):
    ctx, state, batch = batch_for(ppo.Config, **FAST, kl_stop=1e-12, kl_stop_at=at, kl_stop_factor=factor,
                                  kl_stop_estimator="k3", lr=1e-2)
    trace = []
    _, logs = ppo.update(ctx, state, batch, np.random.default_rng(1), 0.0, trace=trace)
    assert logs["updates"] == steps      # minibatch: k3 = 0 at theta_old, > 1.5e-12 after one step; epoch: one epoch
    if at == "epoch":
        assert logs["epochs"] == 1 and trace[-1]["kl"] > 1e-12
        mb = trace[-1]
        r = np.exp(ctx.pol.log_prob(trace[-2]["x"][:ctx.pol.num_params], batch.obs.reshape(64, -1)[mb["idx"]],
                                    batch.act.reshape(64)[mb["idx"]]) - batch.logp_old.reshape(64)[mb["idx"]])
        assert mb["kl"] == pytest.approx(np.mean(r - 1 - np.log(r)), rel=1e-9)


def test_schedule_after_collection_reads_the_schedule_one_batch_later():
    ctx, state, batch = batch_for(ppo.Config, **FAST, schedule_at="after_collection", lr=1e-3, lr_final=0.0)
    _, logs = ppo.update(ctx, state, batch, np.random.default_rng(1), 0.25)
    assert logs["lr"] == linear_schedule(1e-3, 0.0, 0.25 + 64 / 1000)


@pytest.mark.parametrize("offset", [0.0, 1e-6])
def test_clip_offset_and_half_mse_value_term(offset):
    ctx, state, batch = batch_for(ppo.Config, **FAST, max_grad_norm=1e-3, grad_clip_offset=offset)
    step = ppo.Step(0.0, np.full(3, 2.0), np.full(1, 2.0), 0.0, 0.0)
    g = ppo.clipped_gradient(step, ctx.config)
    assert np.allclose(g, 2.0 * 1e-3 / (4.0 + offset), rtol=1e-15, atol=0)
    cfg = ctx.config
    obs = batch.obs.reshape(64, -1)[:16]
    mb = Flat(obs, batch.act.reshape(64)[:16], batch.logp_old.reshape(64)[:16], np.ones(16), np.ones(16),
              np.zeros(16))
    full = ppo.loss_and_grad(ctx, state["theta"], state["theta_v"], mb, state["theta"], {"clip_range": 0.2})
    half_ctx = ctx._replace(config=dataclasses.replace(cfg, vf_loss="half_mse"))
    half = ppo.loss_and_grad(half_ctx, state["theta"], state["theta_v"], mb, state["theta"], {"clip_range": 0.2})
    np.testing.assert_allclose(half.g_v, 0.5 * full.g_v, rtol=1e-14, atol=0)


# ------------------------------------------------------------------------------ TRPO options --
def test_trpo_sb3_conventions_replay_order_and_start():
    ctx, state, batch = batch_for(trpo.Config, **TR_FAST, line_search_kl="new_old_lt", cg_x0="randn",
                                  cg_stop="absolute", vf_loss="mse", vf_adam_eps=1e-5, advantage_norm="sample_eps")
    new, logs = trpo.update(ctx, state, batch, np.random.default_rng(3), 0.0)
    draw = np.random.default_rng(3)
    x0 = 1e-4 * draw.standard_normal(ctx.pol.num_params)
    order = [draw.permutation(64) for _ in range(2)]
    again, logs2 = trpo.update(ctx, state, batch, np.random.default_rng(0), 0.0, order=order, cg_x0=x0)
    assert np.array_equal(new["theta"], again["theta"]) and np.array_equal(new["theta_v"], again["theta_v"])
    obs = batch.obs.reshape(64, -1)
    assert logs["kl"] == ctx.pol.kl(new["theta"], state["theta"], obs) < ctx.config.delta   # KL(new || old)


# ------------------------------------------------------------------------------ profiles ------
def test_every_profile_value_is_valid_and_sourced():
    for profile, table in conventions.PROFILES.items():
        for name, value in table.items():
            conventions.check_value(name, value)
            assert profile in conventions.CONVENTIONS[name].used_by
    for Config in (ppo.Config, trpo.Config):
        for f in dataclasses.fields(Config):
            if f.name in conventions.CONVENTIONS and f.name != "adam_eps":
                assert f.metadata["source"].startswith("purepg ") and f.default in conventions.CONVENTIONS[f.name].values


def test_configure_explicit_wins_and_is_recorded():
    cfg, record = conventions.configure(ppo.Config, "sb3", grad_clip_offset=0.0, num_envs=16)
    assert cfg.grad_clip_offset == 0.0 and cfg.advantage_norm == "sample_eps" and cfg.num_envs == 16
    assert record["overridden"] == {"grad_clip_offset": {"profile": 1e-6, "explicit": 0.0}}
    assert conventions.configure(ppo.Config)[0] == ppo.Config()
    with pytest.raises(ValueError, match="conventions: expected a profile among purepg, sb3, cleanrl, tianshou, got the unknown profile 'sb4'"):
        conventions.configure(ppo.Config, "sb4")
    with pytest.raises(ValueError, match="cg_stop: expected one of 'relative', 'absolute', got 'never'"):
        trpo.Config(cg_stop="never")


def test_cli_profiles_errors_and_config_json(tmp_path, capsys):
    assert cli.main(["algos", "--conventions", "cleanrl"]) == 0
    assert "kl_stop_at" in capsys.readouterr().out
    assert cli.main(["algos", "--conventions", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected a profile among purepg, sb3, cleanrl, tianshou" in err
    assert cli.main(["train", "--conventions", "sb3", "--value_clip", "wide", "--quiet"]) == 2
    assert "value_clip: expected one of 'max', 'prediction'" in capsys.readouterr().err
    out = tmp_path / "run"
    argv = ["train", "--conventions", "sb3", "--grad_clip_offset", "0", "--steps", "128", "--num_envs", "2",
            "--num_steps", "64", "--minibatch_size", "32", "--epochs", "1", "--hidden", "8", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["conventions"]["overridden"] == {"grad_clip_offset": {"profile": 1e-6, "explicit": 0.0}}
    assert meta["config"]["grad_clip_offset"] == 0.0 and meta["config"]["schedule_at"] == "after_collection"
