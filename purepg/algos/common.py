"""Pieces every on-policy algorithm uses on a batch: flattening, values, GAE advantages.

``final_obs[t, e]`` of a :class:`purepg.env.rollout.Batch` is the observation after step ``t`` in every
slot (the ended episode's last one where it ended), so ``v_next = V(final_obs)`` everywhere and
:func:`purepg.pg.returns.gae` bootstraps truncated episodes and the batch end with it, and terminated ones
with 0 (the terminated flag zeroes it).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from purepg import _check
from purepg._check import BOOLEAN, INIT_SCHEMES, WIDTHS
from purepg.algos.fields import check, configclass, param
from purepg.pg.returns import gae


class Flat(NamedTuple):
    """A batch flattened to ``N = T E`` samples, time-major order (sample ``t E + e``)."""

    obs: np.ndarray       # (N, d)
    act: np.ndarray       # (N,) or (N, k)
    logp_old: np.ndarray  # (N,)
    adv: np.ndarray       # (N,)
    ret: np.ndarray       # (N,)  value targets A + V
    v: np.ndarray         # (N,)  V(s) before the update


def values(vf, theta_v, obs):
    """``V`` of a (T, E, d) array of observations: (T, E)."""
    T, E, d = obs.shape
    return vf.predict(theta_v, obs.reshape(T * E, d)).reshape(T, E)


def flatten_with_gae(ctx, theta_v, batch, gamma, gae_lambda) -> Flat:
    """GAE(gamma, lambda) advantages and value targets of ``batch`` (Schulman et al. 2016, eq. 16)."""
    v = values(ctx.vf, theta_v, batch.obs)                                   # (T, E)
    v_next = values(ctx.vf, theta_v, batch.final_obs)                        # (T, E)
    adv, ret = gae(batch.rew, v, v_next, batch.terminated, batch.truncated, gamma, gae_lambda)
    T, E, d = batch.obs.shape
    act = batch.act.reshape(T * E, *batch.act.shape[2:])
    return Flat(batch.obs.reshape(T * E, d), act, batch.logp_old.reshape(-1), adv.reshape(-1),
                ret.reshape(-1), v.reshape(-1))


ADVANTAGE_NORMS = ("population", "sample_eps")


def normalize_advantage(adv, convention="population"):
    """Standardised advantages, by one of two conventions (:data:`ADVANTAGE_NORMS`).

    ``"population"`` (purepg): ``(A - mean A) / std A`` with the population std (ddof 0, no offset);
    with ``std A = 0`` (all advantages equal, e.g. one sample) there is no direction to rescale: the
    centred advantages (all zero) are returned.

    ``"sample_eps"`` (Stable-Baselines3 ``ppo/ppo.py``, sb3-contrib ``trpo/trpo.py``, CleanRL ``ppo.py``,
    Tianshou ``ppo.py``): ``(A - mean A) / (std_1 A + 1e-8)`` with the sample std (ddof 1, torch's
    ``Tensor.std``); a single advantage is returned unchanged, as SB3 skips the normalisation for a
    minibatch of one.
    """
    if convention == "sample_eps":
        return adv.copy() if adv.size < 2 else (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)
    c = adv - adv.mean()
    s = c.std()
    return c / s if s > 0 else c


@configclass
class BaseConfig:
    """The fields every algorithm's Config has, first and in this order: the run's structure (env
    copies, steps per copy, networks, observation normalisation) and the discount.

    An algorithm redeclares the fields whose default or source it changes (:func:`purepg.algos.fields.like`);
    a redeclared field keeps its place (``dataclasses`` ordering). ``__post_init__`` checks every field
    against its range (:func:`purepg.algos.fields.check`).
    """

    num_envs: int = param(2, "E", "parallel environment copies", "integer >= 1", "rl-zoo n_envs")
    num_steps: int = param(512, "T", "steps per copy per iteration (batch N = E T)", "integer >= 1",
                           "rl-zoo n_steps")
    hidden: tuple = param((64, 64), "", "policy hidden layer widths", WIDTHS, "SB3 MlpPolicy")
    activation: str = param("tanh", "", "hidden activation", "tanh | relu", "SB3 MlpPolicy")
    normalize_obs: bool = param(False, "", "running mean/std observation normalisation", BOOLEAN,
                                "rl-zoo CartPole-v1")
    normalize_reward: bool = param(False, "", "rewards / running std of the discounted return", BOOLEAN,
                                   "rl-zoo CartPole-v1")
    log_std_init: float = param(0.0, "log_sigma_0", "initial log std of a Gaussian policy", "(-inf, inf)", "SB3")
    vf_hidden: tuple = param((64, 64), "", "value network hidden layer widths", WIDTHS, "SB3 MlpPolicy")
    gamma: float = param(0.99, "gamma", "discount factor", "[0, 1]", "rl-zoo")
    init: str = param("orthogonal", "", "orthogonal (with gains) or torch (nn.Linear's default) init",
                      " | ".join(INIT_SCHEMES), "SB3 ortho_init")

    def __post_init__(self):
        check(self)


@configclass
class CriticConfig(BaseConfig):
    """The fields NPG, TRPO, TRPO-Lagrangian and the off-policy learner share: :class:`BaseConfig` and
    the critic fitted between updates (rl-zoo CartPole-v1 TRPO values). Fields of a subclass follow
    these, in its own order.
    """

    vf_lr: float = param(1e-3, "", "critic Adam step size", "(0, inf)", "rl-zoo learning_rate")
    vf_epochs: int = param(20, "", "critic passes over the batch per iteration", "integer >= 1",
                           "rl-zoo n_critic_updates")
    vf_minibatch_size: int = param(512, "", "critic minibatch; divides N = E T", "integer >= 1", "rl-zoo batch_size")

    def __post_init__(self):
        super().__post_init__()
        _check.divides_batch(self, "vf_minibatch_size")
