"""Tests of purepg.env.rollout on toy envs whose every transition is known in advance (the saved env
state restored in the middle of a run is tested in tests/test_envs.py)."""
import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv, AutoresetMode
from hypothesis import given
from hypothesis import strategies as st

import purepg
from purepg.env import normalize as nz
from purepg.env import rollout as ro
from purepg.env.envs import make_vec_env
from helpers.toy_envs import EchoEnv, NonFiniteEnv, counting, noisy
from helpers.toy_policies import (CAT, CAT3, FIELDS, THETA3, THETA_CAT, FakeCategorical, FakeGaussian,
                                  assert_batches_equal, sync)

MODES = (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED)


# ------------------------------------------------------------------ exact contents on toy envs
def expected(specs, t0, T, ep0=0):
    """What ``T`` steps from global step ``t0`` of ``CountingEnv`` copies must record.

    ``specs[e] = (L, limit)``: episodes last ``Lf = min(L, limit)`` steps; at step ``t`` copy ``e``
    is at ``k = t mod Lf`` of episode ``ep0 + t // Lf``, gets reward ``k + 1``, terminates iff
    ``k + 1 == L`` and is truncated iff ``k + 1 == limit`` (TimeLimit truncates even when the
    episode also terminates).
    """
    E = len(specs)
    out = {f: np.zeros((T, E)) for f in ("rew",)}
    out.update(obs=np.zeros((T, E, 2)), final_obs=np.zeros((T, E, 2)), next_obs_last=np.zeros((E, 2)),
               terminated=np.zeros((T, E), bool), truncated=np.zeros((T, E), bool))
    ends = []
    for e, (L, limit) in enumerate(specs):
        Lf = min(x for x in (L, limit) if x is not None)
        for i, t in enumerate(range(t0, t0 + T)):
            k, ep = t % Lf, ep0 + t // Lf
            out["obs"][i, e] = k, ep
            out["rew"][i, e] = k + 1
            out["final_obs"][i, e] = k + 1, ep
            out["terminated"][i, e] = k + 1 == L
            out["truncated"][i, e] = k + 1 == limit
            if k + 1 == Lf:
                ends.append((i, e, Lf))
        t = t0 + T
        out["next_obs_last"][e] = t % Lf, ep0 + t // Lf
    ends.sort()
    out["episode_lengths"] = np.array([Lf for _, _, Lf in ends])
    out["episode_returns"] = out["episode_lengths"] * (out["episode_lengths"] + 1) / 2.0
    return out


def check_expected(batch, exp):
    for f, v in exp.items():
        np.testing.assert_array_equal(getattr(batch, f), v, err_msg=f)
    assert batch.obs_raw is None
    assert batch.act.dtype == np.int64 and batch.act.shape == batch.rew.shape
    np.testing.assert_allclose(batch.logp_old, CAT.log_prob(THETA_CAT, None, batch.act), rtol=0, atol=0)


st_spec = st.tuples(st.one_of(st.none(), st.integers(1, 5)), st.one_of(st.none(), st.integers(1, 5))) \
    .filter(lambda s: s != (None, None))


@given(specs=st.lists(st_spec, min_size=1, max_size=4), T1=st.integers(1, 9), T2=st.integers(1, 9),
       mode=st.sampled_from(MODES))
def test_batch_holds_exactly_the_expected_transitions(specs, T1, T2, mode):
    vec = sync([counting(L, limit) for L, limit in specs], mode)
    state = ro.start(vec, seed=0)
    rng = np.random.default_rng(0)
    b1, state = ro.collect(vec, CAT, THETA_CAT, T1, rng, state)
    b2, state = ro.collect(vec, CAT, THETA_CAT, T2, rng, state)   # episodes span the two batches
    check_expected(b1, expected(specs, 0, T1))
    check_expected(b2, expected(specs, T1, T2))
    assert state.step_count == (T1 + T2) * len(specs)


def test_make_vec_env_batch_lengths_2_3_5_and_both_flags():
    # Copies: terminates after 2 / 3 / 5 steps, truncated by TimeLimit(4) (never terminates), and
    # L = limit = 3 (terminated and truncated at once). make_vec_env resets once, start again: ep0 = 1.
    specs = [(2, None), (3, None), (5, None), (None, 4), (3, 3)]
    vec = make_vec_env([counting(L, lim) for L, lim in specs], 5, seed=0)
    batch, _ = ro.collect(vec, CAT, THETA_CAT, 11, np.random.default_rng(1), ro.start(vec))
    check_expected(batch, expected(specs, 0, 11, ep0=1))
    assert batch.rew.min() >= 1.0                   # no NEXT_STEP reset step (reward 0) was recorded
    assert batch.terminated[:, 4].sum() == batch.truncated[:, 4].sum() == 3
    assert batch.truncated[:, 3].sum() == 2 and not batch.terminated[:, 3].any()


@pytest.mark.parametrize("mode", MODES[1:])
def test_autoreset_modes_give_identical_batches_on_a_random_env(mode):
    def run(m):
        vec = sync([noisy(4)] * 3, m)
        batch, _ = ro.collect(vec, CAT3, THETA3, 20, np.random.default_rng(5),
                              ro.start(vec, seed=11))
        return batch
    ref = run(AutoresetMode.SAME_STEP)
    assert ref.terminated.any() and ref.truncated.any()
    assert_batches_equal(run(mode), ref)


def test_async_vector_env_gives_the_sync_batch():
    def run(vectorization):
        vec = make_vec_env(noisy(4), 2, seed=3, vectorization=vectorization)
        try:
            return ro.collect(vec, CAT3, THETA3, 12, np.random.default_rng(0),
                              ro.start(vec))[0]
        finally:
            vec.close()
    ref = run("sync")
    assert_batches_equal(run("async"), ref)
    avec = AsyncVectorEnv([noisy(4)] * 2, autoreset_mode=AutoresetMode.NEXT_STEP)  # per-copy reset
    try:
        avec.reset(seed=3)
        b, _ = ro.collect(avec, CAT3, THETA3, 12, np.random.default_rng(0), ro.start(avec))
    finally:
        avec.close()
    assert_batches_equal(b, ref)


# ------------------------------------------------------------------ actions and normalisation
def test_gaussian_actions_clipped_for_the_env_unclipped_in_the_batch():
    pol, theta = FakeGaussian(4, 2), np.array([0.5, -0.3, 0.7, 0.7])     # std 2: often outside [-1, 1]
    vec = make_vec_env(lambda: EchoEnv(L=4), 3, seed=0)
    batch, _ = ro.collect(vec, pol, theta, 12, np.random.default_rng(2), ro.start(vec))
    assert batch.act.shape == (12, 3, 2) and batch.act.dtype == np.float64
    assert (np.abs(batch.act) > 1).mean() > 0.3
    np.testing.assert_array_equal(batch.final_obs[..., 2:], np.clip(batch.act, -1.0, 1.0))
    np.testing.assert_allclose(batch.logp_old, pol.log_prob(theta, None, batch.act.reshape(-1, 2))
                               .reshape(12, 3), rtol=1e-15)
    assert not np.allclose(batch.logp_old, pol.log_prob(theta, None, np.clip(batch.act, -1, 1)
                                                        .reshape(-1, 2)).reshape(12, 3))


def test_normalised_observations_use_the_statistics_at_arrival():
    vec = sync([noisy(4)] * 3)
    state = ro.start(vec, seed=2, normalize_obs=True)
    batch, end = ro.collect(vec, CAT3, THETA3, 9, np.random.default_rng(0), state)
    raw = np.concatenate([batch.obs_raw, end.obs_raw[None]])               # (T + 1, E, d)
    s = nz.init(2)
    for t in range(10):                                                      # one merge per arrival
        s = nz.update(s, raw[t])
        z = nz.normalize(s, raw[t])
        np.testing.assert_array_equal(batch.obs[t] if t < 9 else batch.next_obs_last, z)
        if t > 0:
            done = batch.terminated[t - 1] | batch.truncated[t - 1]
            np.testing.assert_array_equal(batch.final_obs[t - 1][~done], z[~done])
    assert end.norm.count == 30
    np.testing.assert_allclose(end.norm.mean, raw.reshape(-1, 2).mean(0), rtol=1e-12)
    np.testing.assert_allclose(end.norm.var, raw.reshape(-1, 2).var(0), rtol=1e-12)
    frozen, st2 = ro.collect(vec, CAT3, THETA3, 3, np.random.default_rng(0), end, update_norm=False)
    assert st2.norm is end.norm
    np.testing.assert_array_equal(frozen.obs, nz.normalize(end.norm, frozen.obs_raw))


def test_scaled_rewards_are_the_raw_ones_through_eqs_5_to_7():
    """rew = the raw rewards scaled step by step (purepg.env.normalize eqs. (5)-(7), episodes ending on
    terminated or truncated), rew_raw = the raw ones, episode returns raw; frozen collection does not
    merge; the state carries the scaler across batches exactly as one long batch would."""
    def run(T_parts):
        vec = sync([noisy(4)] * 3)
        state, rng, out = ro.start(vec, seed=2, normalize_reward=True, gamma=0.9), np.random.default_rng(0), []
        for T in T_parts:
            batch, state = ro.collect(vec, CAT3, THETA3, T, rng, state)
            out.append(batch)
        return out, state
    (batch,), end = run([12])
    vec = sync([noisy(4)] * 3)
    plain, _ = ro.collect(vec, CAT3, THETA3, 12, np.random.default_rng(0), ro.start(vec, seed=2))
    np.testing.assert_array_equal(batch.rew_raw, plain.rew)                   # same transitions, raw
    np.testing.assert_array_equal(batch.episode_returns, plain.episode_returns)
    assert plain.rew_raw is None and batch.rew.shape == (12, 3)
    rs = nz.return_scale_init(3, 0.9)
    for t in range(12):
        rs, s = nz.scale_rewards(rs, plain.rew[t], plain.terminated[t] | plain.truncated[t])
        np.testing.assert_array_equal(batch.rew[t], s)
    assert end.rscale.stats.count == 36
    np.testing.assert_array_equal(end.rscale.ret, rs.ret)
    parts, _ = run([5, 7])                                                    # two batches = one
    np.testing.assert_array_equal(np.concatenate([b.rew for b in parts]), batch.rew)
    vec = sync([noisy(4)] * 3)
    frozen, st2 = ro.collect(vec, CAT3, THETA3, 3, np.random.default_rng(0), ro.start(vec, seed=2)._replace(
        rscale=end.rscale), update_norm=False)
    assert st2.rscale.stats is end.rscale.stats
    with pytest.raises(ValueError, match=r"gamma: expected the discount factor for reward scaling, got None"):
        ro.start(vec, normalize_reward=True)


# ------------------------------------------------------------------ non-finite values
@pytest.mark.parametrize("what, value, at, quantity, step", [
    ("reward", np.nan, 2, "reward", 6), ("obs", np.inf, 2, "observation", 6),
    ("obs", np.nan, 3, "final observation", 9)])     # 3rd step ends the episode: its last obs is bad
def test_non_finite_values_raise_naming_quantity_env_and_step(what, value, at, quantity, step):
    vec = sync([counting(3), lambda: NonFiniteEnv(3, at, what, value), counting(3)])
    with pytest.raises(ro.NonFiniteError, match=rf"^{quantity}: expected finite values, got .* from env 1 "
                                                rf"at global step {step};.*Fix: check the environment"):
        ro.collect(vec, CAT, THETA_CAT, 5, np.random.default_rng(0), ro.start(vec, seed=0))


def test_non_finite_action_raises():
    vec = make_vec_env(lambda: EchoEnv(L=4), 2, seed=0)
    theta = np.array([np.nan, 0.0, 0.0, 0.0])
    with pytest.raises(ro.NonFiniteError, match=r"^action: expected finite values, got \[\s*nan .*from env 0 "
                                                r"at global step 0;.*the policy parameters theta"):
        ro.collect(vec, FakeGaussian(4, 2), theta, 3, np.random.default_rng(0), ro.start(vec))
    assert issubclass(ro.NonFiniteError, ValueError)


# ------------------------------------------------------------------ collect and Batch bad input
def test_collect_bad_arguments():
    vec = make_vec_env(counting(3), 2, seed=0)
    s = ro.start(vec)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"T: expected an integer >= 1, got 0\. Fix: pass the steps per copy"):
        ro.collect(vec, CAT, THETA_CAT, 0, rng, s)
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator, got int\. Fix:"):
        ro.collect(vec, CAT, THETA_CAT, 2, 0, s)
    with pytest.raises(TypeError, match=r"state: expected a RolloutState, got dict\. Fix:"):
        ro.collect(vec, CAT, THETA_CAT, 2, rng, {})
    with pytest.raises(ValueError, match=r"policy: expected \(obs_dim, discrete, n_actions or act_dim\) = "
                                         r"\(2, True, 2\) .*got \(2, True, 3\)\. Fix:"):
        ro.collect(vec, FakeCategorical(2, 3), np.zeros(3), 2, rng, s)
    with pytest.raises(ValueError, match=r"state: expected obs_raw of shape \(2, 2\).*got \(3, 2\)\. Fix:"):
        ro.collect(vec, CAT, THETA_CAT, 2, rng, ro.start(make_vec_env(counting(3), 3, seed=0)))
    bad = FakeCategorical(2, 2)
    bad.sample = lambda theta, obs, rng: np.zeros((obs.shape[0], 1), np.int64)
    with pytest.raises(ValueError, match=r"policy: expected policy.sample to return shape \(2,\), got \(2, 1\)"):
        ro.collect(vec, bad, THETA_CAT, 2, rng, s)


def test_batch_checks_shapes_and_state_dict_errors():
    vec = make_vec_env(counting(3), 2, seed=0)
    b, s = ro.collect(vec, CAT, THETA_CAT, 4, np.random.default_rng(0), ro.start(vec))
    assert (b.num_steps, b.num_envs) == (4, 2)
    with pytest.raises(ValueError, match=r"rew: expected shape \(4, 2\) \(from obs \(4, 2, 2\)\), got \(4, 3\)"):
        ro.Batch(**{**{f: getattr(b, f) for f in FIELDS}, "rew": np.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"obs: expected shape \(T, E, d\), got \(8, 2\)\. Fix:"):
        ro.Batch(**{**{f: getattr(b, f) for f in FIELDS}, "obs": np.zeros((8, 2))})
    d = ro.state_to_dict(s)
    with pytest.raises(ValueError, match=r"d: expected the rollout-state fields .*\('ep_length' is missing\)"):
        ro.state_from_dict({k: v for k, v in d.items() if k != "ep_length"})
    with pytest.raises(ValueError, match=r"d: expected fields obs_raw \(E, d\).*got shapes \(2, 2\), \(3,\)"):
        ro.state_from_dict({**d, "ep_return": np.zeros(3)})


# ------------------------------------------------------------------ with purepg's own policies
def test_with_purepg_policies_on_cartpole_and_pendulum():
    for env, make_pol in (("CartPole-v1", lambda d, a: purepg.CategoricalPolicy(d, int(a.n), hidden=(8,))),
                          ("Pendulum-v1", lambda d, a: purepg.GaussianPolicy(d, a.shape[0], hidden=(8,)))):
        vec = make_vec_env(env, 3, seed=0)
        pol = make_pol(vec.single_observation_space.shape[0], vec.single_action_space)
        theta = pol.init(np.random.default_rng(0))
        batch, state = ro.collect(vec, pol, theta, 25, np.random.default_rng(1), ro.start(vec))
        flat_act = batch.act.reshape(75, *batch.act.shape[2:])
        np.testing.assert_allclose(batch.logp_old.ravel(),
                                   pol.log_prob(theta, batch.obs.reshape(75, -1), flat_act), rtol=1e-12)
        assert state.step_count == 75


class ContractOnly:
    """A purepg policy seen only through the policy contract: collect takes its generic path."""

    def __init__(self, pol):
        self.pol = pol
        self.discrete, self.obs_dim = pol.discrete, pol.obs_dim
        self.n_actions = self.act_dim = pol.act_dim

    def sample(self, theta, obs, rng):
        return self.pol.sample(theta, obs, rng)

    def log_prob(self, theta, obs, act):
        return self.pol.log_prob(theta, obs, act)


@pytest.mark.parametrize("env, norm", [("CartPole-v1", False), ("Pendulum-v1", True)])
def test_purepg_policy_fast_path_gives_the_generic_batch(env, norm):
    """A purepg Policy is sampled without re-validating theta and the observations every step (theta is
    checked once per collect, observations at arrival): the batch is the generic path's, bit for bit."""
    batches = []
    for wrap in (lambda p: p, ContractOnly):
        vec = make_vec_env(env, 3, seed=0)
        sp = vec.single_action_space
        pol = (purepg.CategoricalPolicy(vec.single_observation_space.shape[0], int(sp.n), hidden=(8,))
               if env == "CartPole-v1" else purepg.GaussianPolicy(3, sp.shape[0], hidden=(8,)))
        theta = pol.init(np.random.default_rng(0))
        batches.append(ro.collect(vec, wrap(pol), theta, 20, np.random.default_rng(1),
                                  ro.start(vec, normalize_obs=norm))[0])
    assert_batches_equal(*batches)


def test_purepg_policy_theta_is_checked_once_per_collect():
    vec = make_vec_env("CartPole-v1", 2, seed=0)
    pol = purepg.CategoricalPolicy(4, 2, hidden=(8,))
    theta = pol.init(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"theta: expected shape \(%d,\), got \(3,\)\. Fix: pass a flat vector "
                                         r"of length policy.num_params" % pol.num_params):
        ro.collect(vec, pol, theta[:3], 2, np.random.default_rng(0), ro.start(vec))
    bad = theta.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match=r"theta: expected finite values, got nan at index 5\. Fix"):
        ro.collect(vec, pol, bad, 2, np.random.default_rng(0), ro.start(vec))


class _UntrustedWrapper:
    """A policy object that is not a purepg Policy: collect samples through its own ``sample``."""

    def __init__(self, policy):
        self.p = policy
        self.discrete, self.obs_dim, self.n_actions = policy.discrete, policy.obs_dim, policy.n_actions

    def sample(self, theta, obs, rng):
        return self.p.sample(theta, obs, rng)

    def log_prob(self, theta, obs, act):
        return self.p.log_prob(theta, obs, act)


def test_the_compiled_acting_pass_collects_the_batch_policy_sample_collects():
    """CartPole with 4 copies for 300 steps (many episodes end): the purepg policy acts through its compiled
    sampler, the wrapper through ``policy.sample``; every field of the two batches is the same."""
    pol = purepg.CategoricalPolicy(4, 2, hidden=(16, 16))
    theta = pol.init(np.random.default_rng(0))
    batches = []
    for policy in (pol, _UntrustedWrapper(pol)):
        vec = make_vec_env("CartPole-v1", 4, seed=3)
        batch, _ = ro.collect(vec, policy, theta, 300, np.random.default_rng(1), ro.start(vec))
        batches.append(batch)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(batches[0], name), getattr(batches[1], name), err_msg=name)


# ------------------------------------------------------------------ the copies stepped by collect
class _Float64ObsEnv(gymnasium.Env):
    """Observations computed in float64 for a float32 Box: the vector env's batch rounds them to float32."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.standard_normal(3) / 3.0, {"reset": True}

    def step(self, action):
        self.t += 1
        return self.np_random.standard_normal(3) / 3.0, 1.0 / 3.0, self.t % 7 == 0, self.t % 11 == 0, {"t": self.t}


@pytest.mark.parametrize("env, E", [("CartPole-v1", 8), ("Pendulum-v1", 3), ("Acrobot-v1", 2),
                                    (lambda: _Float64ObsEnv(), 4)])
def test_stepping_the_copies_is_the_vector_envs_own_step(env, E):
    """``step_copies`` against ``SyncVectorEnv.step`` on twin vector envs, 520 steps of random actions:
    the same observations, rewards, flags and final observations, and the same vector-env state after
    (every array of ``get_env_state``, the vector env's own buffers included, after every step that ended
    an episode and at the end)."""
    from purepg.env.envs import get_env_state
    own, here = make_vec_env(env, E, seed=5), make_vec_env(env, E, seed=5)
    assert ro.steps_copies(here)
    ended = 0
    for _ in range(520):                                  # past Acrobot-v1's 500-step limit
        a = np.array([here.single_action_space.sample() for _ in range(E)])
        x1, r1, te1, tr1, info = own.step(a)
        x2, r2, te2, tr2, final = ro.step_copies(here, a)
        for got, want in ((x2, x1), (r2, r1), (te2, te1), (tr2, tr1)):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype
        done = np.flatnonzero(te1 | tr1)
        assert sorted(final) == list(done)
        for e in done:
            np.testing.assert_array_equal(final[e], info["final_obs"][e])
        ended += done.size
        if done.size or _ == 519:                          # the state right after an autoreset, and at the end
            s1, s2 = get_env_state(own), get_env_state(here)
            assert s1.keys() == s2.keys()
            for k in s1:
                np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)
    assert ended > 0, "no episode ended: the autoreset was not exercised"


def test_collect_steps_the_copies_of_a_plain_same_step_sync_vector_env_only():
    from gymnasium.wrappers.vector import RecordEpisodeStatistics
    vec = make_vec_env("CartPole-v1", 2, seed=0)
    assert ro.steps_copies(vec)
    assert not ro.steps_copies(RecordEpisodeStatistics(vec))                  # a vector wrapper's own step runs
    patched = make_vec_env("CartPole-v1", 2, seed=0)
    patched.step = patched.step                                               # replaced on the instance
    assert not ro.steps_copies(patched)
    next_step = sync([counting(3)] * 2, AutoresetMode.NEXT_STEP)
    assert not ro.steps_copies(next_step)
    asynchronous = make_vec_env("CartPole-v1", 2, seed=0, vectorization="async")
    try:
        assert not ro.steps_copies(asynchronous)
    finally:
        asynchronous.close()
