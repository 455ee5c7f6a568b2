"""Tests of purepg.env.envs: building vector envs (spaces refused before training, bad arguments) and
their saved state (a snapshot restored into the live objects gives the same future, and clear errors)."""
import threading

import numpy as np
import pytest
import gymnasium
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from purepg.env import rollout as ro
from purepg.env.envs import check_spaces, get_env_state, make_vec_env, set_env_state

from helpers.toy_envs import CountingEnv, SpaceEnv, counting, noisy
from helpers.toy_policies import (CAT, CAT3, THETA3, THETA_CAT, FakeCategorical, FakeGaussian,
                                  assert_batches_equal, sync)


# ------------------------------------------------------------------ make_vec_env
BOX2 = spaces.Box(-1.0, 1.0, (2,))


@pytest.mark.parametrize("obs_space, act_space, match", [
    (spaces.Dict({"a": BOX2}), spaces.Discrete(2), r"observation space of .*: expected a flat 1-D Box.*got Dict"),
    (spaces.Tuple((BOX2, BOX2)), spaces.Discrete(2), r"observation space.*got Tuple"),
    (spaces.Box(0, 255, (8, 8, 3), np.uint8), spaces.Discrete(2), r"observation space.*got Box\(0, 255, \(8, 8, 3\)"),
    (spaces.Discrete(5), spaces.Discrete(2), r"observation space.*got Discrete\(5\)"),
    (BOX2, spaces.MultiDiscrete([2, 3]), r"action space of .*: expected Discrete\(n\) or a 1-D float Box, got MultiDiscrete"),
    (BOX2, spaces.MultiBinary(3), r"action space.*got MultiBinary"),
    (BOX2, spaces.Box(-1, 1, (2, 2)), r"action space.*got Box\(-1.0, 1.0, \(2, 2\)"),
    (BOX2, spaces.Box(0, 5, (2,), np.int64), r"action space.*got Box\(0, 5, \(2,\), int64\)"),
    (BOX2, spaces.Discrete(3, start=1), r"action space of .*: expected Discrete with start 0, got Discrete\(3, start=1\)"),
])
def test_unsupported_spaces_are_refused_before_training(obs_space, act_space, match):
    with pytest.raises(ValueError, match=match + r".*purepg supports a flat 1-D Box observation space.*Fix:"):
        make_vec_env(lambda: SpaceEnv(obs_space, act_space), 2, seed=0)


def test_make_vec_env_bad_arguments():
    with pytest.raises(ValueError, match=r"env: expected an environment id registered in gymnasium.registry, "
                                         r"got the unknown id 'CartPol-v1'\. Fix: did you mean 'CartPole-v1'"):
        make_vec_env("CartPol-v1", 2, seed=0)
    with pytest.raises(ValueError, match=r"got the unknown id 'zzzqqq'\. Fix: list the ids with"):
        make_vec_env("zzzqqq", 2, seed=0)
    with pytest.raises(ValueError, match=r"num_envs: expected an integer >= 1, got 0\. Fix:"):
        make_vec_env("CartPole-v1", 0, seed=0)
    with pytest.raises(TypeError, match=r"seed: expected an int or None, got '1' \(str\)\. Fix:"):
        make_vec_env("CartPole-v1", 2, seed="1")
    with pytest.raises(ValueError, match=r"vectorization: expected one of .*got 'gpu'\. Fix:"):
        make_vec_env("CartPole-v1", 2, seed=0, vectorization="gpu")
    with pytest.raises(ValueError, match=r"env: expected 3 factories .*got 2\. Fix:"):
        make_vec_env([counting(2)] * 2, 3, seed=0)
    with pytest.raises(TypeError, match=r"env: expected an env id \(str\).*got int\. Fix:"):
        make_vec_env(5, 2, seed=0)
    with pytest.raises(ValueError, match=r"vectorization: expected 'auto', 'sync' or 'async' for an env factory \('vector_entry_point' needs a registered env id\)"):
        make_vec_env(counting(2), 2, seed=0, vectorization="vector_entry_point")


def test_check_spaces_accepts_what_purepg_supports():
    box = spaces.Box(-np.inf, np.inf, (3,))
    check_spaces(box, spaces.Discrete(4))
    check_spaces(box, spaces.Box(-1.0, 1.0, (2,)))
    with pytest.raises(ValueError, match=r"action space of my-env: expected Discrete\(n\) or a 1-D float Box"):
        check_spaces(box, spaces.MultiDiscrete([2, 3]), name="my-env")


def test_same_seed_same_env_other_seed_other_env():
    """make_vec_env seeds copy e with seed + e: equal seeds give equal first observations, others differ."""
    obs = [make_vec_env("CartPole-v1", 2, seed=s).reset()[0] for s in (7, 7, 8)]   # (E, 4) each
    np.testing.assert_array_equal(obs[0], obs[1])
    assert not np.array_equal(obs[0], obs[2]) and not np.array_equal(obs[0][0], obs[0][1])


# ------------------------------------------------------------------ saved env state
def test_restored_state_gives_the_same_future():
    """Snapshot after some steps, step on, restore, step again: the same observations and rewards."""
    vec = make_vec_env("CartPole-v1", 2, seed=3)
    vec.reset(seed=3)
    for _ in range(5):
        vec.step(np.array([0, 1]))
    saved = get_env_state(vec)
    future = [vec.step(np.array([1, 0]))[:2] for _ in range(4)]
    set_env_state(vec, saved)
    again = [vec.step(np.array([1, 0]))[:2] for _ in range(4)]
    for (o1, r1), (o2, r2) in zip(future, again):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)


class LockedEnv(CountingEnv):
    def __init__(self):
        super().__init__(3)
        self.lock = threading.Lock()


def test_env_state_errors():
    vec = make_vec_env(counting(3), 2, seed=0)
    saved = get_env_state(vec)
    with pytest.raises(ValueError, match=r"st: expected the state of a vector env built like this one, "
                                         r"got one whose envs differ at .*vec\.envs\.2@env.*Fix: build"):
        set_env_state(make_vec_env(counting(3), 3, seed=0), saved)
    with pytest.raises(ValueError, match=r"st: expected an env state of format 'purepg-envstate-1', "
                                         r"got format None\. Fix: save it with"):
        set_env_state(vec, {k: v for k, v in saved.items() if k != "format@str"})
    with pytest.raises(ValueError, match=r"got 'vec\.envs\.0\.lock' of type lock.*Fix: use a pure"):
        get_env_state(make_vec_env(LockedEnv, 2, seed=0))
    avec = make_vec_env(counting(3), 2, seed=0, vectorization="async")
    try:
        with pytest.raises(ValueError, match=r"vec_env: expected a synchronous vector env, got an "
                                             r"AsyncVectorEnv.*vectorization='sync'"):
            get_env_state(avec)
    finally:
        avec.close()
    with pytest.raises(TypeError, match=r"vec_env: expected a gymnasium.vector.VectorEnv, got "
                                        r"CountingEnv\. Fix:"):
        get_env_state(CountingEnv())


def test_set_env_state_writes_into_the_live_objects():
    vec = make_vec_env(noisy(4), 2, seed=0)
    saved = get_env_state(vec)
    gen = vec.envs[0].unwrapped.np_random
    before = gen.random()
    set_env_state(vec, saved)
    assert vec.envs[0].unwrapped.np_random is gen and gen.random() == before


# ------------------------------------------------------------------ make_vec_env
def test_auto_vectorization_cartpole_is_exact_and_its_entry_point_is_refused():
    vec = make_vec_env("CartPole-v1", 2, seed=0)
    assert isinstance(vec, SyncVectorEnv) and vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    with pytest.raises(ValueError, match=r"vectorization: expected a vector entry point with SAME_STEP "
                                         r"autoreset, got AutoresetMode.NEXT_STEP for 'CartPole-v1'.*"
                                         r"Fix: use vectorization='auto' or 'sync'"):
        make_vec_env("CartPole-v1", 2, seed=0, vectorization="vector_entry_point")
    raw = gymnasium.make_vec("CartPole-v1", 2)                       # CartPoleVectorEnv, NEXT_STEP
    with pytest.raises(ValueError, match=r"vec_env: expected SAME_STEP autoreset or a Sync/AsyncVectorEnv, "
                                         r"got AutoresetMode.NEXT_STEP on CartPoleVectorEnv"):
        ro.collect(raw, CAT.__class__(4, 2), THETA_CAT, 2, np.random.default_rng(0), ro.start(raw, seed=0))


# ------------------------------------------------------------------ determinism and saved env state
def test_same_seed_same_batch_other_seed_other_batch():
    def run(env, seed):
        vec = make_vec_env(env, 4, seed=seed)
        pol = FakeCategorical(vec.single_observation_space.shape[0], int(vec.single_action_space.n))
        th = np.zeros(pol.n_actions)
        return ro.collect(vec, pol, th, 30, np.random.default_rng(seed), ro.start(vec))[0]
    for env in (noisy(4), "CartPole-v1"):
        assert_batches_equal(run(env, 7), run(env, 7))
        assert not np.array_equal(run(env, 7).obs, run(env, 8).obs)


def save_load(tmp_path, name, d):
    np.savez(tmp_path / name, **d)
    with np.load(tmp_path / name, allow_pickle=False) as f:
        return dict(f)


@pytest.mark.parametrize("env, gaussian, norm, T1", [(noisy(3), False, True, 37),
                                                     ("CartPole-v1", False, False, 37),
                                                     ("Pendulum-v1", True, True, 185)])   # TimeLimit 200
def test_resume_from_saved_env_state_reproduces_the_run(tmp_path, env, gaussian, norm, T1):
    def setup():
        vec = make_vec_env(env, 3, seed=4)
        d, a = vec.single_observation_space.shape[0], vec.single_action_space
        pol = FakeGaussian(d, a.shape[0]) if gaussian else FakeCategorical(d, int(a.n))
        th = np.zeros(2 * a.shape[0]) if gaussian else np.zeros(int(a.n))
        return vec, pol, th
    vec, pol, th = setup()
    rng = np.random.default_rng(9)
    _, state = ro.collect(vec, pol, th, T1, rng, ro.start(vec, normalize_obs=norm))
    env_st = save_load(tmp_path, "env.npz", get_env_state(vec))
    roll_st = save_load(tmp_path, "roll.npz", ro.state_to_dict(state))
    rng_st = rng.bit_generator.state
    b1, _ = ro.collect(vec, pol, th, 40, rng, state)
    assert b1.terminated.any() or b1.truncated.any()
    vec2, _, _ = setup()
    rng2 = np.random.default_rng(0)
    rng2.bit_generator.state = rng_st
    set_env_state(vec2, env_st)
    b2, _ = ro.collect(vec2, pol, th, 40, rng2, ro.state_from_dict(roll_st))
    assert_batches_equal(b2, b1)
    vec3, _, _ = setup()                                   # control: without the env state it differs
    rng2.bit_generator.state = rng_st
    b3, _ = ro.collect(vec3, pol, th, 40, rng2, ro.state_from_dict(roll_st))
    assert not np.array_equal(b3.final_obs, b1.final_obs)


def test_set_env_state_into_a_never_reset_env_creates_generators_and_counters():
    # Before its first reset a sub-env has np_random None and TimeLimit._elapsed_steps None: the
    # snapshot's kinds (rng, int) differ from the live ones and must still be restored.
    vec = sync([noisy(4)] * 2)
    state = ro.start(vec, seed=1)
    _, state = ro.collect(vec, CAT3, THETA3, 7, np.random.default_rng(0), state)
    saved = get_env_state(vec)
    b1, _ = ro.collect(vec, CAT3, THETA3, 15, np.random.default_rng(1), state)
    fresh = sync([noisy(4)] * 2)
    assert fresh.envs[0].unwrapped._np_random is None and fresh.envs[0]._elapsed_steps is None
    set_env_state(fresh, saved)
    b2, _ = ro.collect(fresh, CAT3, THETA3, 15, np.random.default_rng(1), state)
    assert_batches_equal(b2, b1)
