"""purepg.algos.offpolicy: the vector-batch glue (runs, TD-residual shaping, truncation, ESS) against hand
computations; K = 1 without reuse is the on-policy reward-to-go gradient; the shaped estimators are
exactly unbiased on an enumerated MDP; the buffer, config errors and resume."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from purepg.run import checkpoint, runner

from purepg.pg import estimators
from purepg.verify import tabular as tb
from purepg.algos import get_algo, offpolicy
from purepg.algos.common import values
from purepg.optim import adam_init, adam_step
from purepg.pg.returns import discounted_returns
from purepg.model.value import ValueFunction

from helpers.algo_runs import SMALL, make_ctx


def _as_dict(batch):
    return {k: getattr(batch, k) for k in offpolicy._FIELDS}


def _t_in_run(done):
    """Index of each step inside its run (T, E)."""
    t_seg = np.zeros(done.shape, dtype=np.int64)
    for e, t0, t1 in offpolicy.segments(done):
        t_seg[t0:t1 + 1, e] = np.arange(t1 - t0 + 1)
    return t_seg


def _rtg_in_runs(x, done, gamma):
    """sum_{t' >= t in the same run} gamma^(t'-t) x_t', by a plain loop (T, E)."""
    out = np.zeros_like(x)
    for e, t0, t1 in offpolicy.segments(done):
        acc = 0.0
        for t in range(t1, t0 - 1, -1):
            acc = x[t, e] + gamma * acc
            out[t, e] = acc
    return out


# ----------------------------------------------------------------------------- glue
@given(T=st.integers(1, 20), E=st.integers(1, 4), data=st.data())
def test_segments_partition_the_batch_at_episode_ends(T, E, data):
    done = np.array(data.draw(st.lists(st.booleans(), min_size=T * E, max_size=T * E))).reshape(T, E)
    seen = np.zeros((T, E), dtype=int)
    for e, t0, t1 in offpolicy.segments(done):
        assert 0 <= t0 <= t1 < T
        seen[t0:t1 + 1, e] += 1
        assert (done[t1, e] or t1 == T - 1) and not done[t0:t1, e].any()   # ends at a done or the batch end
        assert t0 == 0 or done[t0 - 1, e]                                   # starts after one
    assert np.all(seen == 1)


def test_shaped_rewards_telescope_to_bootstrapped_advantages():
    """sum_k gamma^k delta_{t+k} within a run = G_t - V(s_t), G bootstrapped with V at cuts (1e-10: sums
    of ~500 terms of O(10))."""
    ctx, state, batch, _ = make_ctx(offpolicy, offpolicy.Config(**SMALL), seed=1)
    b, gamma, theta_v = _as_dict(batch), ctx.config.gamma, state["theta_v"]
    done = batch.terminated | batch.truncated
    delta = offpolicy.shaped_rewards(ctx, theta_v, b)                            # (T, E)
    v, v_next = values(ctx.vf, theta_v, batch.obs), values(ctx.vf, theta_v, batch.final_obs)
    G = discounted_returns(batch.rew, batch.terminated, batch.truncated, v_next, gamma)
    np.testing.assert_allclose(_rtg_in_runs(delta, done, gamma), G - v, atol=1e-10)
    assert done.any()                                                            # episodes did end in the batch


@given(w=st.lists(st.floats(0.0, 1e3), min_size=1, max_size=50).filter(lambda w: sum(w) > 0),
       k=st.integers(-10, 10))
def test_normalised_ess(w, k):
    """Bounds, scale invariance and the two extremes. Invariance is checked for scales 2^k that keep every
    weight a normal number: such a scale is exact, so ``w / max w`` and the ESS are the same bits. (A
    scale that takes a weight below the normal range rounds it, or flushes it to 0, and is another input.)"""
    w = np.array(w)
    ess = offpolicy.normalised_ess(w)
    assert 1.0 / w.size - 1e-12 <= ess <= 1.0 + 1e-12
    if np.all((w == 0) | (w >= np.finfo(float).tiny * 2.0**10)):
        assert offpolicy.normalised_ess(2.0**k * w) == ess                          # scale free, exactly
    assert offpolicy.normalised_ess(np.full(w.size, 2.5)) == pytest.approx(1.0, rel=1e-15)
    one = np.zeros(w.size)
    one[0] = 3.0
    assert offpolicy.normalised_ess(one) == pytest.approx(1.0 / w.size, rel=1e-15)


def test_normalised_ess_of_subnormal_weights():
    """Weights far below 1e-154 (ratios of far-off actions): w^2 underflows, w / max w does not."""
    assert offpolicy.normalised_ess(np.array([5e-324])) == 1.0
    assert offpolicy.normalised_ess(np.array([5e-324, 0.0])) == 0.5
    assert offpolicy.normalised_ess(np.array([1e-300, 1e-300, 1e-300])) == pytest.approx(1.0, rel=1e-15)


# ----------------------------------------------------------------------------- K = 1, no reuse
@pytest.mark.parametrize("weights", ["first_order", "per_decision"])
@pytest.mark.parametrize("baseline", ["none", "value"])
def test_k1_without_reuse_is_the_on_policy_reward_to_go_gradient(weights, baseline):
    """With K = 1 and one update per batch every ratio is 1, and the gradient is the on-policy
    reward-to-go estimate (1/n_runs) sum_runs sum_t gamma^t grad log pi(a_t|s_t) (Q_t - b_t), computed
    here from the score matrix; and it equals purepg.pg.estimators.reinforce_rtg on the same runs."""
    cfg = offpolicy.Config(buffer_batches=1, epochs=1, weights=weights, baseline=baseline, **SMALL)
    ctx, state, batch, rng = make_ctx(offpolicy, cfg, seed=2)
    pol, theta, gamma = ctx.pol, state["theta"], cfg.gamma
    g, ess, cut = offpolicy.batch_gradient(ctx, theta, state["theta_v"], _as_dict(batch))
    done = batch.terminated | batch.truncated
    runs = offpolicy.segments(done)
    if baseline == "none":
        A = _rtg_in_runs(batch.rew, done, gamma)                                 # Q_t, not bootstrapped
    else:
        v, v_next = (values(ctx.vf, state["theta_v"], o) for o in (batch.obs, batch.final_obs))
        A = discounted_returns(batch.rew, batch.terminated, batch.truncated, v_next, gamma) - v
    w = (gamma ** _t_in_run(done) * A).reshape(-1)                               # (T E,) time-major
    S = pol.score(theta, batch.obs.reshape(-1, 4), batch.act.reshape(-1))       # (T E, P)
    g_hand = S.T @ w / len(runs)
    # 1e-10 relative: the same sums in another order (score matrix vs one VJP, loop vs kernel returns).
    np.testing.assert_allclose(g, g_hand, atol=1e-10 * np.linalg.norm(g_hand))
    assert ess == 1.0 and cut == 0.0
    if baseline == "none":
        take = lambda x: [x[t0:t1 + 1, e] for e, t0, t1 in runs]                # noqa: E731
        ref = estimators.reinforce_rtg(pol, theta, take(batch.obs), take(batch.act), take(batch.rew), gamma=gamma)
        np.testing.assert_allclose(g, ref, atol=1e-12 * np.linalg.norm(ref))
    new, logs = offpolicy.update(ctx, state, batch, rng, 0.0)                     # the learner's own step
    np.testing.assert_array_equal(new["theta"], adam_step(theta, -g, adam_init(theta.size), lr=cfg.lr)[0])
    assert logs["ess_mean"] == 1.0 and logs["stored_batches"] == 1


# ----------------------------------------------------------------------------- off-policy weights
def _perturbed(weights, truncation, seed=3, baseline="value"):
    cfg = offpolicy.Config(weights=weights, truncation=truncation, baseline=baseline, **SMALL)
    ctx, state, batch, _ = make_ctx(offpolicy, cfg, seed=seed)
    theta_p = state["theta"] + 0.3 * np.random.default_rng(seed).standard_normal(state["theta"].size)
    return ctx, state, batch, theta_p


@pytest.mark.parametrize("truncation", [None, 1.2])
@pytest.mark.parametrize("weights", ["first_order", "per_decision"])
def test_importance_weights_and_truncation_by_hand(weights, truncation):
    """At theta' != pi_b: first-order sum_t min(rho_t, c) gamma^t g'_t Q_t, per-decision
    sum_t g'_t sum_{t'>=t} gamma^t' delta_t' prod_{t''<=t'} min(rho_t'', c), each by loops; the truncated
    fraction and the ESS of the weights used."""
    ctx, state, batch, theta_p = _perturbed(weights, truncation)
    g, ess, cut = offpolicy.batch_gradient(ctx, theta_p, state["theta_v"], _as_dict(batch))
    gamma, done = ctx.config.gamma, batch.terminated | batch.truncated
    logp_p = ctx.pol.log_prob(theta_p, batch.obs.reshape(-1, 4), batch.act.reshape(-1)).reshape(done.shape)
    rho = np.exp(logp_p - batch.logp_old)                                        # (T, E)
    rho_c = rho if truncation is None else np.minimum(rho, truncation)
    delta = offpolicy.shaped_rewards(ctx, state["theta_v"], _as_dict(batch))     # (T, E)
    w, used = np.zeros(done.shape), np.zeros(done.shape)
    runs = offpolicy.segments(done)
    for e, t0, t1 in runs:
        prefix = np.cumprod(rho_c[t0:t1 + 1, e])                                  # prod_{t''<=t} in the run
        disc = gamma ** np.arange(t1 - t0 + 1)
        for t in range(t1 - t0 + 1):
            if weights == "first_order":
                w[t0 + t, e] = rho_c[t0 + t, e] * disc[t] * np.sum(disc[t:] / disc[t] * delta[t0 + t:t1 + 1, e])
            else:
                w[t0 + t, e] = np.sum(disc[t:] * delta[t0 + t:t1 + 1, e] * prefix[t:])
        used[t0:t1 + 1, e] = rho_c[t0:t1 + 1, e] if weights == "first_order" else prefix
    S = ctx.pol.score(theta_p, batch.obs.reshape(-1, 4), batch.act.reshape(-1))
    g_hand = S.T @ w.reshape(-1) / len(runs)
    # 1e-9 relative: products of up to ~100 ratios reorder rounding more than plain sums.
    np.testing.assert_allclose(g, g_hand, atol=1e-9 * np.linalg.norm(g_hand))
    u = used.reshape(-1)
    assert ess == pytest.approx(u.sum() ** 2 / (u.size * (u * u).sum()), rel=1e-10) and ess < 1.0
    assert cut == (0.0 if truncation is None else np.mean(rho > truncation))
    if truncation is not None:
        assert 0 < cut < 1 and u.max() <= truncation ** (1 if weights == "first_order" else len(u))


def _mdp_case(seed):
    rng = np.random.default_rng(seed)
    mdp = tb.random_mdp(rng, S=2, A=2, T=3, gamma=0.9)
    cfg = offpolicy.Config(num_envs=1, num_steps=3, hidden=(), vf_hidden=(), vf_minibatch_size=3, gamma=0.9)
    pol = runner.make_policy(tb.TabularMDPEnv(mdp).observation_space, tb.TabularMDPEnv(mdp).action_space, cfg)
    vf = ValueFunction(2, ())
    ctx = runner.Context(pol, vf, cfg, 10**5)
    theta_b = rng.standard_normal(pol.num_params)
    theta_p = theta_b + 0.5 * rng.standard_normal(pol.num_params)
    return mdp, ctx, theta_b, theta_p, 3.0 * rng.standard_normal(vf.num_params)


def _exact_mean(mdp, ctx, theta_b, theta, theta_v):
    """E over trajectories of pi_b of the learner's estimate from a one-episode batch (E = 1 copy)."""
    enum = tb.enumerate_trajectories(mdp, tb.policy_table(ctx.pol, theta_b, mdp))
    obs = tb.one_hot(enum.states, 2)                                             # (K, T, S)
    mean = np.zeros(ctx.pol.num_params)
    for k in range(len(enum.prob)):
        o = obs[k][:, None]                                                       # (T, 1, S)
        b = {"obs": o, "act": enum.actions[k][:, None], "rew": enum.rewards[k][:, None],
             "terminated": np.array([[False], [False], [True]]), "truncated": np.zeros((3, 1), bool),
             "final_obs": np.concatenate([o[1:], o[-1:]]),                        # s_{t+1}; last is terminal
             "logp_old": ctx.pol.log_prob(theta_b, o[:, 0], enum.actions[k])[:, None]}
        mean += enum.prob[k] * offpolicy.batch_gradient(ctx, theta, theta_v, b)[0]
    return mean


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shaped_per_decision_is_exactly_unbiased_off_policy(seed):
    """On an enumerated MDP, with an arbitrary V (random linear table): E_b[per-decision estimate with
    TD-residual rewards] = grad J(theta') exactly -- the shaping is a baseline. First-order is exact only
    on-policy; a per-step cap c = 0.7 on the ratios biases the per-decision estimate (1e-10: sums of 64
    exact products)."""
    mdp, ctx, theta_b, theta_p, theta_v = _mdp_case(seed)
    pd = ctx._replace(config=offpolicy.Config(**{**ctx.config.__dict__, "weights": "per_decision"}))
    exact_p = tb.exact_gradient(mdp, ctx.pol, theta_p)
    np.testing.assert_allclose(_exact_mean(mdp, pd, theta_b, theta_p, theta_v), exact_p, atol=1e-10)
    np.testing.assert_allclose(_exact_mean(mdp, ctx, theta_b, theta_b, theta_v),
                               tb.exact_gradient(mdp, ctx.pol, theta_b), atol=1e-10)
    capped = pd._replace(config=offpolicy.Config(**{**pd.config.__dict__, "truncation": 0.7}))
    assert np.abs(_exact_mean(mdp, capped, theta_b, theta_p, theta_v) - exact_p).max() > 1e-3


# ----------------------------------------------------------------------------- buffer and updates
def test_buffer_keeps_the_last_k_batches_and_state_is_not_mutated():
    cfg = offpolicy.Config(buffer_batches=2, **SMALL)
    ctx, state, batch, rng = make_ctx(offpolicy, cfg, seed=4)
    batches = [batch] + [make_ctx(offpolicy, cfg, seed=s)[2] for s in (5, 6)]
    buf, count, head = state["buffer"], 0, 0
    before = {k: v.copy() for k, v in buf.items()}
    for i, b in enumerate(batches):
        buf, count, head = offpolicy.push(buf, count, head, b)
        assert count == min(i + 1, 2) and head == (i + 1) % 2
    for k in before:
        np.testing.assert_array_equal(state["buffer"][k], before[k])             # input untouched
    kept = offpolicy.stored(buf, count)
    np.testing.assert_array_equal(kept[0]["obs"], batches[2].obs)                # slot 0 overwritten by the 3rd
    np.testing.assert_array_equal(kept[1]["logp_old"], batches[1].logp_old)
    s1, logs1 = offpolicy.update(ctx, state, batches[0], rng, 0.0)
    s2, logs2 = offpolicy.update(ctx, s1, batches[1], rng, 0.0)
    assert logs1["stored_batches"] == 1 and logs2["stored_batches"] == 2
    assert logs1["ess_min"] == 1.0 and logs2["ess_min"] < 1.0 and logs2["ess_mean"] > logs2["ess_min"]


def test_several_epochs_use_every_stored_batch():
    cfg = offpolicy.Config(buffer_batches=1, epochs=3, **SMALL)
    ctx, state, batch, rng = make_ctx(offpolicy, cfg, seed=7)
    new, logs = offpolicy.update(ctx, state, batch, rng, 0.0)
    theta, opt = state["theta"], state["opt"]
    for _ in range(3):
        g = offpolicy.batch_gradient(ctx, theta, state["theta_v"], _as_dict(batch))[0]
        theta, opt = adam_step(theta, -g, opt, lr=cfg.lr)
    np.testing.assert_array_equal(new["theta"], theta)
    # ESS is averaged over the 3 updates: 1 at the first (on-policy), below 1 after a step.
    assert new["opt"].t == 3 and logs["ess_min"] < 1.0 and logs["ess_mean"] > logs["ess_min"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(buffer_batches=0), r"buffer_batches: expected an integer >= 1, got 0\. Fix"),
    (dict(epochs=0), r"epochs: expected an integer >= 1, got 0"),
    (dict(weights="whole"), r"weights: expected one of 'per_decision', 'first_order', got 'whole'\. Fix"),
    (dict(truncation=0.0), r"truncation: expected None \(off\) or a finite number > 0, got 0\.0"),
    (dict(truncation=-1.0), r"truncation: expected None \(off\) or a finite number > 0, got -1\.0"),
    (dict(baseline="mean"), r"baseline: expected one of 'value', 'none', got 'mean'"),
    (dict(lr=0.0), r"lr: expected a finite number > 0, got 0\.0"),
    (dict(gamma=-0.5), r"gamma: expected a finite number in \[0, 1\], got -0\.5"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        offpolicy.Config(**kwargs)


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    """The buffer of K batches, its count and head survive a checkpoint: 3 + 3 iterations == 6."""
    assert get_algo("offpolicy") is offpolicy
    cfg = offpolicy.Config(num_steps=32, hidden=(8,), vf_hidden=(8,), vf_minibatch_size=32, buffer_batches=2,
                           weights="per_decision", truncation=2.0)
    full, part = tmp_path / "full", tmp_path / "part"
    runner.train(offpolicy, "CartPole-v1", cfg, seed=3, out_dir=str(full), total_steps=384, verbose=False)
    runner.train(offpolicy, "CartPole-v1", cfg, seed=3, out_dir=str(part), total_steps=192, verbose=False)
    runner.resume(str(part), total_steps=384, verbose=False)
    strip = lambda p: [",".join(r.split(",")[:-2]) for r in (p / "progress.csv").read_text().splitlines()]  # noqa
    assert strip(full) == strip(part) and len(strip(full)) == 7
    a, b = (checkpoint.load(str(p / "checkpoint.npz"))[0]["algo"] for p in (full, part))
    for k in a["buffer"]:
        np.testing.assert_array_equal(a["buffer"][k], b["buffer"][k])
    np.testing.assert_array_equal(a["theta"], b["theta"])
    assert runner.config_from_dict(offpolicy.Config, runner.config_to_dict(cfg), algo="offpolicy") == cfg
