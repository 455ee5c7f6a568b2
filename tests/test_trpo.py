"""purepg.algos.trpo: explicit-Fisher and matrix-free steps agree, the line search's guarantees on real
batches, skipped steps, config errors, resume (of TRPO and the algorithms sharing its step), and learning."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purepg.run import checkpoint, runner
from purepg.algos import critic, get_algo, trpo, trpo_lagrangian
from purepg.algos.trust_region import surrogate_value

from helpers.algo_runs import SMALL, NotPD, learns, make_ctx


# ----------------------------------------------------------------------------- config
def test_defaults_are_rl_zoo_cartpole():
    """rl-zoo hyperparams/trpo.yml CartPole-v1, and sb3-contrib TRPO.__init__ defaults where it is silent."""
    c = trpo.Config()
    assert (c.num_envs, c.num_steps, c.vf_minibatch_size, c.damping, c.gae_lambda, c.gamma, c.vf_lr,
            c.vf_epochs) == (2, 512, 512, 1e-3, 0.98, 0.99, 1e-3, 20)
    assert (c.delta, c.cg_iters, c.ls_ratio, c.ls_max_steps, c.normalize_advantage, c.fisher) == \
        (0.01, 15, 0.8, 10, True, "fvp")
    assert (c.hidden, c.vf_hidden, c.activation) == ((64, 64), (64, 64), "tanh")
    assert get_algo("trpo") is trpo and get_algo("trpo-lagrangian") is trpo_lagrangian
    for mod in (trpo, trpo_lagrangian):
        c = mod.Config(delta=0.02)
        assert runner.config_from_dict(mod.Config, runner.config_to_dict(c), algo=mod.NAME) == c


@pytest.mark.parametrize("kwargs, match", [
    (dict(delta=0.0), r"delta: expected a finite number > 0, got 0\.0\. Fix: pass a number > 0"),
    (dict(delta=-1.0), r"delta: expected a finite number > 0, got -1\.0"),
    (dict(damping=-1e-3), r"damping: expected a finite number >= 0, got -0\.001\. Fix"),
    (dict(cg_iters=0), r"cg_iters: expected an integer >= 1, got 0\. Fix"),
    (dict(fisher="hessian"), r"fisher: expected one of 'fvp', 'explicit', got 'hessian'\. Fix: pick one"),
    (dict(ls_ratio=0.0), r"ls_ratio: expected a finite number in \(0, 1\), got 0\.0"),
    (dict(vf_epochs=0), r"vf_epochs: expected an integer >= 1, got 0"),
    (dict(num_steps=100), r"vf_minibatch_size: expected a divisor of the batch N = num_envs \* num_steps = 200, got 512"),
])
def test_trpo_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trpo.Config(**kwargs)


# ----------------------------------------------------------------------------- TRPO step
def _flat(seed=0, **kw):
    ctx, state, batch, rng = make_ctx(trpo, trpo.Config(**{**SMALL, **kw}), seed=seed)
    flat, adv = critic.advantages(ctx, state, batch)
    return ctx, state, flat, adv


@pytest.mark.parametrize("cg_iters, cg_tol", [(2000, 1e-14), (15, 1e-10)])
def test_explicit_and_matrix_free_fisher_give_the_same_step(cg_iters, cg_tol):
    """CG on pol.fisher and CG on pol.fvp give the same step to 1e-8 on the same batch, both for an
    exact solve (which also equals np.linalg.solve) and for the default 15 iterations (the two operators
    agree to rounding, so the CG iterates do too). The iteration at which a tolerance-stopped solve
    crosses 1e-14 depends on the BLAS kernel's rounding, so no count is asserted: only that the exact
    solve stopped by its tolerance, not its limit (CG's recursive residual keeps falling below the
    rounding level of the true one, so it crosses 1e-14 on any machine, long before 2000 steps, P = 58)."""
    ctx, state, flat, adv = _flat(cg_iters=cg_iters, cg_tol=cg_tol)
    steps = {}
    for fisher in ("fvp", "explicit"):
        c = ctx._replace(config=trpo.Config(**{**SMALL, "cg_iters": cg_iters, "cg_tol": cg_tol, "fisher": fisher}))
        steps[fisher] = trpo.policy_step(c, state["theta"], flat, adv)
    a, b = steps["fvp"].step, steps["explicit"].step
    np.testing.assert_allclose(a, b, atol=1e-8 * np.linalg.norm(b))
    if cg_iters > 15:
        assert all(s.cg_iterations < cg_iters for s in steps.values())
        F = ctx.pol.fisher(state["theta"], flat.obs) + 1e-3 * np.eye(a.size)
        g = ctx.pol.score(state["theta"], flat.obs, flat.act).T @ adv / adv.size
        x = np.linalg.solve(F, g)
        np.testing.assert_allclose(a, np.sqrt(2 * 0.01 / (x @ F @ x)) * x, atol=1e-8 * np.linalg.norm(b))


@settings(max_examples=10)
@given(seed=st.integers(0, 999), delta=st.floats(1e-4, 0.5), ls_ratio=st.floats(0.2, 0.9),
       ls_max_steps=st.integers(1, 12))
def test_trpo_step_never_accepts_a_kl_violating_or_worse_step(seed, delta, ls_ratio, ls_max_steps):
    ctx, state, flat, adv = _flat(seed, delta=delta, ls_ratio=ls_ratio, ls_max_steps=ls_max_steps)
    theta = state["theta"]
    ps = trpo.policy_step(ctx, theta, flat, adv)
    L0 = surrogate_value(ctx.pol, theta, flat.obs, flat.act, flat.logp_old, adv)
    if ps.accepted:
        assert ctx.pol.kl(theta, ps.theta, flat.obs) <= delta
        assert surrogate_value(ctx.pol, ps.theta, flat.obs, flat.act, flat.logp_old, adv) > L0
        np.testing.assert_array_equal(ps.theta, theta + ps.step_fraction * ps.step)
    else:
        np.testing.assert_array_equal(ps.theta, theta)
        assert ps.ls_steps == ls_max_steps


@pytest.mark.parametrize("fisher", ["fvp", "explicit"])
def test_fisher_not_positive_definite_skips_the_update(fisher):
    ctx, state, batch, rng = make_ctx(trpo, trpo.Config(fisher=fisher, **SMALL))
    ctx = ctx._replace(pol=NotPD(ctx.pol))
    with pytest.warns(RuntimeWarning, match=r"skipped, theta kept: cg: non-positive curvature .* at step 0"):
        new, logs = trpo.update(ctx, state, batch, rng, 0.0)
    np.testing.assert_array_equal(new["theta"], state["theta"])
    assert logs["skipped"] == 1.0 and logs["accepted"] == 0.0 and logs["cg_iterations"] == 0
    assert all(np.isfinite(v) for v in logs.values())


def test_trpo_logs_its_step_diagnostics():
    ctx, state, batch, rng = make_ctx(trpo, trpo.Config(**SMALL))
    new, logs = trpo.update(ctx, state, batch, rng, 0.0)
    for k in ("surrogate_gain", "kl", "cg_iterations", "cg_residual", "ls_steps", "accepted", "skipped",
              "value_loss", "explained_variance", "entropy"):
        assert np.isfinite(logs[k]), k
    # P = 58 here: CG reaches the 1e-10 relative residual in fewer than the 15 iterations allowed.
    assert 1 <= logs["cg_iterations"] <= 15 and logs["accepted"] == 1.0 and 0 < logs["kl"] <= 0.01
    assert logs["surrogate_gain"] > 0 and 1 <= logs["ls_steps"] <= 10


# ----------------------------------------------------------------------------- runs
@pytest.mark.parametrize("name", ["npg", "trpo", "trpo-lagrangian"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, name):
    """The algorithm state (AdamStates, lam) survives a checkpoint: 3 + 3 iterations == 6 iterations."""
    algo = get_algo(name)
    cfg = algo.Config(num_steps=32, hidden=(8,), vf_hidden=(8,), vf_minibatch_size=32)
    full, part = tmp_path / "full", tmp_path / "part"
    runner.train(algo, "CartPole-v1", cfg, seed=3, out_dir=str(full), total_steps=384, verbose=False)
    runner.train(algo, "CartPole-v1", cfg, seed=3, out_dir=str(part), total_steps=192, verbose=False)
    runner.resume(str(part), total_steps=384, verbose=False)
    rows = [(p / "progress.csv").read_text().splitlines() for p in (full, part)]
    strip = lambda lines: [",".join(r.split(",")[:-2]) for r in lines]   # noqa: E731  drop time_s, sps
    assert strip(rows[0]) == strip(rows[1]) and len(rows[0]) == 7
    a, b = (checkpoint.load(str(p / "checkpoint.npz"))[0]["algo"] for p in (full, part))
    np.testing.assert_array_equal(a["theta"], b["theta"])
    assert json.loads((part / "config.json").read_text())["total_steps"] == 384


def test_trpo_improves_cartpole(tmp_path):
    """Short runs (~2 s each) clearly beat the random policy (~22 per episode on CartPole-v1): the median
    over three seeds (``helpers.algo_runs.learns``) of the mean return of the last 100 episodes. Sixteen
    runs (seeds 0-7, AVX-512 and AVX2) ended at 68-288 from 18-24."""
    cfg = trpo.Config(num_envs=4, num_steps=128, hidden=(16, 16), vf_hidden=(32, 32), vf_minibatch_size=256,
                      delta=0.02)
    for rows in learns(tmp_path, "trpo", cfg, 40960, factor=2.0, floor=45.0):
        assert rows[0]["ep_return_mean"] < 30
        assert all(r["skipped"] == 0 for r in rows) and all(r["kl"] <= 0.02 for r in rows)
