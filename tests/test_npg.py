"""purepg.algos.npg: the natural step against a hand solve, the line search's guarantees on real batches,
skipped updates on a Fisher that is not positive definite, config errors, and learning on CartPole.

Helpers here (``make_ctx``, ``NotPD``, ``train_small``) are also used by tests/test_trpo.py and
tests/test_offpolicy.py."""
import csv
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purepg.env import envs, rollout

from purepg.run import runner
from purepg.algos import critic, get_algo, npg, trust_region
from purepg.model.value import ValueFunction

SMALL = dict(num_steps=64, hidden=(8,), vf_hidden=(8,), vf_minibatch_size=64)


def make_ctx(algo, config, env="CartPole-v1", seed=0):
    """``(ctx, state, batch, rng)``: an algorithm's state and one batch collected by its initial policy."""
    vec = envs.make_vec_env(env, config.num_envs, seed=seed)
    pol = runner.make_policy(vec.single_observation_space, vec.single_action_space, config)
    ctx = runner.Context(pol, ValueFunction(pol.obs_dim, config.vf_hidden, config.activation), config, 10**5)
    rng = np.random.default_rng(seed)
    state = algo.init(ctx, rng)
    batch, _ = rollout.collect(vec, pol, state["theta"], config.num_steps, rng, rollout.start(vec))
    vec.close()
    return ctx, state, batch, rng


class NotPD:
    """A policy whose Fisher (matrix and products) is negated: negative semi-definite, never PD."""

    def __init__(self, pol):
        self._pol = pol

    def __getattr__(self, name):
        return getattr(self._pol, name)

    def fisher(self, theta, obs):
        return -self._pol.fisher(theta, obs)

    def fvp(self, theta, obs, v):
        return -self._pol.fvp(theta, obs, v)

    def fisher_operator(self, theta, obs):
        F_op = self._pol.fisher_operator(theta, obs)
        return lambda v: -F_op(v)


def train_small(tmp_path, name, config, total_steps, seed=0):
    """Train in ``tmp_path`` and return the rows of progress.csv (dicts of floats)."""
    algo = get_algo(name)
    runner.train(algo, "CartPole-v1", config, seed=seed, out_dir=str(tmp_path / name), total_steps=total_steps,
                 verbose=False)
    with open(tmp_path / name / "progress.csv", newline="") as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


# ----------------------------------------------------------------------------- config
def test_registered_and_config_roundtrip():
    assert get_algo("npg") is npg and npg.NAME == "npg"
    c = npg.Config(delta=0.02, hidden=(16,))
    assert runner.config_from_dict(npg.Config, runner.config_to_dict(c), algo="npg") == c
    # The defaults shared with TRPO are rl-zoo's CartPole-v1 TRPO values; 32-32 keeps F at 13 MB; the
    # exact solve takes sb3-contrib's default damping 0.1.
    d = npg.Config()
    assert (d.num_envs, d.num_steps, d.gamma, d.gae_lambda, d.damping, d.vf_epochs) == (2, 512, 0.99, 0.98, 0.1, 20)
    assert d.hidden == (32, 32) and d.solver == "cholesky"


@pytest.mark.parametrize("kwargs, match", [
    (dict(delta=0.0), r"delta: expected a finite number > 0, got 0\.0\. Fix: pass a number > 0"),
    (dict(delta=-0.01), r"delta: expected a finite number > 0, got -0\.01"),
    (dict(delta=float("nan")), r"delta: expected a finite number > 0, got nan"),
    (dict(damping=-1e-3), r"damping: expected a finite number >= 0, got -0\.001\. Fix: pass a number >= 0"),
    (dict(cg_iters=0), r"cg_iters: expected an integer >= 1, got 0\. Fix: pass a whole number"),
    (dict(cg_iters=2.5), r"cg_iters: expected an integer >= 1, got 2\.5"),
    (dict(solver="lu"), r"solver: expected one of 'cholesky', 'cg', got 'lu'\. Fix: pick one of those"),
    (dict(gamma=1.5), r"gamma: expected a finite number in \[0, 1\], got 1\.5\. Fix"),
    (dict(gae_lambda=-0.1), r"gae_lambda: expected a finite number in \[0, 1\], got -0\.1"),
    (dict(ls_ratio=1.0), r"ls_ratio: expected a finite number in \(0, 1\), got 1\.0\. Fix"),
    (dict(ls_max_steps=0), r"ls_max_steps: expected an integer >= 1, got 0"),
    (dict(cg_tol=-1.0), r"cg_tol: expected a finite number >= 0, got -1\.0"),
    (dict(vf_minibatch_size=300), r"vf_minibatch_size: expected a divisor of the batch N = num_envs \* num_steps = 1024, "
                                  r"got 300\. Fix: pass a divisor of 1024"),
    (dict(vf_lr=0.0), r"vf_lr: expected a finite number > 0, got 0\.0"),
    (dict(hidden=(0,)), r"hidden: expected a tuple of layer widths >= 1, got \(0,\)\. Fix: e\.g\. \(64, 64\)"),
    (dict(vf_hidden=[8]), r"vf_hidden: expected a tuple of layer widths >= 1, got \[8\]"),
    (dict(activation="sigmoid"), r"activation: expected one of 'tanh', 'relu', got 'sigmoid'"),
    (dict(num_envs=0), r"num_envs: expected an integer >= 1, got 0"),
    (dict(normalize_obs="yes"), r"normalize_obs: expected True or False, got 'yes'\. Fix: pass a bool"),
    (dict(normalize_reward=1), r"normalize_reward: expected True or False, got 1\. Fix: pass a bool"),
    (dict(init="he"), r"init: expected one of 'orthogonal', 'torch', got 'he'\. Fix: pick one of those"),
    (dict(log_std_init=float("inf")), r"log_std_init: expected a finite number, got inf"),
    (dict(normalize_advantage=1), r"normalize_advantage: expected True or False, got 1\. Fix: pass a bool"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        npg.Config(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(delta="0.01"), r"delta: expected a finite number > 0, got str '0\.01'\. Fix: pass a number > 0"),
    (dict(gamma=None), r"gamma: expected a finite number in \[0, 1\], got NoneType None"),
    (dict(vf_lr=True), r"vf_lr: expected a finite number > 0, got bool True"),
])
def test_config_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        npg.Config(**kwargs)


# ----------------------------------------------------------------------------- the step
@settings(max_examples=8)
@given(seed=st.integers(0, 2**31 - 1), delta=st.floats(1e-4, 0.05), damping=st.floats(0.0, 0.1))
def test_natural_policy_step_equals_hand_solution(seed, delta, damping):
    """On a real CartPole batch: g = S^T A / N from the score matrix, d from np.linalg.solve, and the
    accepted parameters satisfy the KL bound and raise the surrogate."""
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL), seed=seed % 1000)
    flat, adv = critic.advantages(ctx, state, batch)
    pol, theta = ctx.pol, state["theta"]
    F = pol.fisher(theta, flat.obs)                                              # (P, P)
    damping = max(damping, 1e-6)   # the categorical F is singular (softmax shift): Cholesky needs c > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                           # no skipped step here
        ps = trust_region.natural_policy_step(pol, theta, flat.obs, flat.act, flat.logp_old, adv, F, delta=delta,
                                     damping=damping, solver="cholesky", cg_iters=1, cg_tol=0.0, ls_ratio=0.5,
                                     ls_max_steps=15)
    g = pol.score(theta, flat.obs, flat.act).T @ adv / adv.size                  # (P,)
    A = F + damping * np.eye(g.size)
    x = np.linalg.solve(A, g)
    d = np.sqrt(2 * delta / (x @ A @ x)) * x
    # 1e-8 relative: LAPACK's LU against purepg's Cholesky on F + cI with condition up to ~1e8 (c >= 1e-6).
    np.testing.assert_allclose(ps.step, d, atol=1e-8 * np.linalg.norm(d))
    assert not ps.skipped and ps.cg_iterations == 0
    if ps.accepted:
        np.testing.assert_array_equal(ps.theta, theta + ps.step_fraction * ps.step)
        assert 0 < ps.kl <= delta and ps.surrogate_gain > 0
        assert ps.kl == pol.kl(theta, ps.theta, flat.obs)
    else:
        np.testing.assert_array_equal(ps.theta, theta)
        assert ps.kl == 0.0 and ps.surrogate_gain == 0.0 and ps.ls_steps == 15


def test_cg_solver_agrees_with_cholesky():
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL))
    flat, adv = critic.advantages(ctx, state, batch)
    F = ctx.pol.fisher(state["theta"], flat.obs)
    kw = dict(delta=0.01, damping=1e-3, cg_tol=1e-14, ls_ratio=0.8, ls_max_steps=10)
    args = (ctx.pol, state["theta"], flat.obs, flat.act, flat.logp_old, adv, F)
    chol = trust_region.natural_policy_step(*args, solver="cholesky", cg_iters=1, **kw)
    cg = trust_region.natural_policy_step(*args, solver="cg", cg_iters=10 * F.shape[0], **kw)
    # 1e-8: CG to a 1e-14 relative residual on a system of condition <= ||F|| / c ~ 1e3.
    np.testing.assert_allclose(cg.step, chol.step, atol=1e-8 * np.linalg.norm(chol.step))
    assert cg.cg_iterations > 1 and cg.accepted == chol.accepted


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_fisher_not_positive_definite_skips_the_update(solver):
    """Issue 5, bad input: a Fisher that is not PD even with damping -> a reported, logged skipped update,
    theta kept, nothing NaN; the critic is still fitted."""
    ctx, state, batch, rng = make_ctx(npg, npg.Config(solver=solver, **SMALL))
    ctx = ctx._replace(pol=NotPD(ctx.pol))
    with pytest.warns(RuntimeWarning, match=r"natural policy step skipped, theta kept: .*(Cholesky failed|"
                                            r"non-positive curvature).*increase damping"):
        new, logs = npg.update(ctx, state, batch, rng, 0.0)
    np.testing.assert_array_equal(new["theta"], state["theta"])
    assert logs["skipped"] == 1.0 and logs["accepted"] == 0.0 and logs["kl"] == 0.0
    assert all(np.isfinite(v) for v in logs.values()) and np.all(np.isfinite(new["theta_v"]))
    assert not np.array_equal(new["theta_v"], state["theta_v"])


def test_zero_gradient_skips_the_update():
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL))
    flat, _ = critic.advantages(ctx, state, batch)
    F = ctx.pol.fisher(state["theta"], flat.obs)
    with pytest.warns(RuntimeWarning, match=r"g is zero: there is no ascent direction"):
        ps = trust_region.natural_policy_step(ctx.pol, state["theta"], flat.obs, flat.act, flat.logp_old,
                                     np.zeros(flat.adv.size), F, delta=0.01, damping=1e-3, solver="cholesky",
                                     cg_iters=10, cg_tol=0.0, ls_ratio=0.8, ls_max_steps=10)
    assert ps.skipped and not ps.accepted and np.array_equal(ps.theta, state["theta"])


def test_update_logs_and_state():
    ctx, state, batch, rng = make_ctx(npg, npg.Config(**SMALL))
    new, logs = npg.update(ctx, state, batch, rng, 0.0)
    want = {"surrogate_gain", "kl", "accepted", "skipped", "step_fraction", "ls_steps", "expected_improve",
            "cg_iterations", "cg_residual", "value_loss", "explained_variance", "entropy"}
    assert set(logs) == want and all(np.isfinite(v) for v in logs.values())
    assert logs["accepted"] == 1.0 and logs["kl"] <= ctx.config.delta and logs["surrogate_gain"] > 0
    assert logs["kl"] == pytest.approx(ctx.pol.kl(state["theta"], new["theta"], batch.obs.reshape(-1, 4)), rel=1e-12)
    c = ctx.config     # one Adam step per critic minibatch: epochs * N / minibatch
    assert set(new) == {"theta", "theta_v", "opt_v"} and new["opt_v"].t == c.vf_epochs * 128 // c.vf_minibatch_size


def test_npg_improves_cartpole(tmp_path):
    """Issue 5: a short run (~2 s) clearly beats the random policy (~22 per episode on CartPole-v1)."""
    cfg = npg.Config(num_envs=4, num_steps=128, hidden=(16, 16), vf_hidden=(32, 32), vf_minibatch_size=256,
                     delta=0.02)
    rows = train_small(tmp_path, "npg", cfg, 40960)
    first, last = rows[0]["ep_return_mean"], rows[-1]["ep_return_mean"]  # mean of the last 100 episodes
    assert first < 30 and last > 80 and last > 3 * first
    assert all(r["skipped"] == 0 for r in rows) and np.mean([r["accepted"] for r in rows]) > 0.9
