"""Small gymnasium envs whose every observation and reward is known in advance (rollout tests).

* ``CountingEnv(L)``: observation ``[k, ep]`` with ``k`` the step within the episode (0 after a reset)
  and ``ep`` the number of resets before this one; reward ``k`` after the step (1, 2, ...);
  terminates when ``k == L`` (never if ``L is None``). Wrapped in ``TimeLimit(M)`` it truncates.
* ``EchoEnv(L, low, high)``: like ``CountingEnv`` with a Box action whose received value is appended
  to the observation, so tests can see what the env was sent (clipping).
* ``NoisyEnv``: random episode lengths and observations from the env's own ``np_random`` (seeding,
  determinism and saved-state tests).
* ``NonFiniteEnv``: emits NaN/inf in the reward or observation at a chosen step.
* ``SpaceEnv``: any observation / action space, for the space checks.
"""
import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit

OBS2 = spaces.Box(-np.inf, np.inf, (2,), np.float64)


class CountingEnv(gymnasium.Env):
    """Deterministic episodes of length ``L``: obs ``[k, ep]``, reward ``k`` after step ``k``."""

    def __init__(self, L=3, n_actions=2):
        self.L = L
        self.observation_space = OBS2
        self.action_space = spaces.Discrete(n_actions)
        self.k = 0
        self.ep = -1

    def _obs(self):
        return np.array([self.k, self.ep], dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.ep = 0, self.ep + 1
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.k += 1
        terminated = self.L is not None and self.k >= self.L
        return self._obs(), float(self.k), terminated, False, {}


def counting(L, limit=None):
    """Factory of ``CountingEnv(L)``, wrapped in ``TimeLimit(limit)`` if ``limit`` is given."""
    def make():
        env = CountingEnv(L)
        return env if limit is None else TimeLimit(env, max_episode_steps=limit)
    return make


class EchoEnv(gymnasium.Env):
    """Episodes of length ``L``; obs ``[k, ep, a_received...]``; Box action in ``[low, high]``."""

    def __init__(self, L=4, act_dim=2, low=-1.0, high=1.0):
        self.L, self.act_dim = L, act_dim
        self.observation_space = spaces.Box(-np.inf, np.inf, (2 + act_dim,), np.float64)
        self.action_space = spaces.Box(low, high, (act_dim,), np.float64)
        self.k, self.ep, self.a = 0, -1, np.zeros(act_dim)

    def _obs(self):
        return np.concatenate([[self.k, self.ep], self.a]).astype(np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.ep, self.a = 0, self.ep + 1, np.zeros(self.act_dim)
        return self._obs(), {}

    def step(self, action):
        self.a = np.array(action, dtype=np.float64)
        self.k += 1
        return self._obs(), float(self.k), self.k >= self.L, False, {}


class NoisyEnv(gymnasium.Env):
    """Episode length uniform in ``{1..L_max}`` and obs ``[k, u]``, ``u ~ N(0, 1)``, reward ``u``."""

    def __init__(self, L_max=6):
        self.L_max = L_max
        self.observation_space = OBS2
        self.action_space = spaces.Discrete(3)
        self.k, self.L, self.u = 0, 1, 0.0

    def _obs(self):
        return np.array([self.k, self.u], dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.L = 0, int(self.np_random.integers(1, self.L_max + 1))
        self.u = float(self.np_random.normal())
        return self._obs(), {}

    def step(self, action):
        self.k += 1
        self.u = float(self.np_random.normal()) + float(action)
        return self._obs(), self.u, self.k >= self.L, False, {}


def noisy(limit=4):
    """Factory of ``TimeLimit(NoisyEnv(), limit)`` (both terminations and truncations occur)."""
    return lambda: TimeLimit(NoisyEnv(), max_episode_steps=limit)


class NonFiniteEnv(CountingEnv):
    """``CountingEnv`` whose ``at``-th step (counted over the env's life) emits ``value`` in ``what``."""

    def __init__(self, L=3, at=2, what="reward", value=np.nan):
        super().__init__(L)
        self.at, self.what, self.value, self.n = at, what, value, 0

    def step(self, action):
        obs, r, term, trunc, info = super().step(action)
        self.n += 1
        if self.n == self.at:
            if self.what == "reward":
                r = self.value
            else:
                obs = obs.copy()
                obs[0] = self.value
        return obs, r, term, trunc, info


class SpaceEnv(gymnasium.Env):
    """An env with the given spaces, returning samples (space-check tests only)."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}
