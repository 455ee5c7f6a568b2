"""Toy policies for rollout tests: the ``sample`` / ``log_prob`` contract of purepg.env.rollout and nothing
more (no network), with fixed parameters, plus a field-by-field batch comparison."""
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

FIELDS = ("obs", "act", "rew", "terminated", "truncated", "final_obs", "next_obs_last", "logp_old",
          "obs_raw", "episode_returns", "episode_lengths")


class FakeCategorical:
    """Softmax over ``n`` actions with logits ``theta`` (n,), independent of the observation."""
    discrete = True

    def __init__(self, obs_dim, n):
        self.obs_dim, self.n_actions = obs_dim, n

    def _logp(self, theta):
        z = theta - theta.max()
        return z - np.log(np.exp(z).sum())

    def sample(self, theta, obs, rng):
        return rng.choice(self.n_actions, size=obs.shape[0], p=np.exp(self._logp(theta)))

    def log_prob(self, theta, obs, act):
        return self._logp(theta)[act]


class FakeGaussian:
    """``N(mean, diag(exp(2 log_std)))`` with ``theta = [mean (k), log_std (k)]``."""
    discrete = False

    def __init__(self, obs_dim, k):
        self.obs_dim, self.act_dim = obs_dim, k

    def sample(self, theta, obs, rng):
        k = self.act_dim
        return theta[:k] + np.exp(theta[k:]) * rng.standard_normal((obs.shape[0], k))

    def log_prob(self, theta, obs, act):
        k = self.act_dim
        u = (act - theta[:k]) / np.exp(theta[k:])
        return (-0.5 * u**2 - theta[k:] - 0.5 * np.log(2 * np.pi)).sum(axis=1)


CAT = FakeCategorical(2, 2)          # for CountingEnv (Discrete(2))
THETA_CAT = np.array([0.3, -0.2])
CAT3 = FakeCategorical(2, 3)         # for NoisyEnv (Discrete(3))
THETA3 = np.array([0.1, 0.0, -0.4])


def sync(fns, mode=AutoresetMode.SAME_STEP):
    return SyncVectorEnv(fns, autoreset_mode=mode)


def assert_batches_equal(b1, b2):
    for f in FIELDS:
        x, y = getattr(b1, f), getattr(b2, f)
        if x is None or y is None:
            assert x is None and y is None, f
        else:
            np.testing.assert_array_equal(x, y, err_msg=f)
