"""Tests of purepg.env.envs: building vector envs (spaces refused before training, bad arguments) and
their saved state (a snapshot restored into the live objects gives the same future, and clear errors)."""
import threading

import numpy as np
import pytest
from gymnasium import spaces

from purepg.env.envs import check_spaces, get_env_state, make_vec_env, set_env_state

from helpers.toy_envs import CountingEnv, SpaceEnv, counting, noisy


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
