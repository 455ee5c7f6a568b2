"""Pieces every on-policy algorithm uses on a batch: flattening, values, GAE advantages.

``final_obs[t, e]`` of a :class:`purepg.env.rollout.Batch` is the observation after step ``t`` in every
slot (the ended episode's last one where it ended), so ``v_next = V(final_obs)`` everywhere and
:func:`purepg.pg.returns.gae` bootstraps truncated episodes and the batch end with it, and terminated ones
with 0 (the terminated flag zeroes it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from purepg import _check
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


def flatten_with_gae(ctx, theta_v, batch, gamma, lam) -> Flat:
    """GAE(gamma, lam) advantages and value targets of ``batch`` (Schulman et al. 2016, eq. 16)."""
    v = values(ctx.vf, theta_v, batch.obs)                                   # (T, E)
    v_next = values(ctx.vf, theta_v, batch.final_obs)                        # (T, E)
    adv, ret = gae(batch.rew, v, v_next, batch.terminated, batch.truncated, gamma, lam)
    T, E, d = batch.obs.shape
    act = batch.act.reshape(T * E, *batch.act.shape[2:])
    return Flat(batch.obs.reshape(T * E, d), act, batch.logp_old.reshape(-1), adv.reshape(-1),
                ret.reshape(-1), v.reshape(-1))


ADVANTAGE_NORMS = ("population", "sample_eps")


def normalize_adv(adv, convention="population"):
    """Standardised advantages, by one of two conventions (:data:`ADVANTAGE_NORMS`).

    ``"population"`` (purepg): ``(A - mean A) / std A`` with the population std (ddof 0, no offset);
    with ``std A = 0`` (all advantages equal, e.g. one sample) there is no direction to rescale: the
    centred advantages (all zero) are returned.

    ``"sample_eps"`` (Stable-Baselines3 ``ppo/ppo.py``, sb3-contrib ``trpo/trpo.py``, CleanRL ``ppo.py``):
    ``(A - mean A) / (std_1 A + 1e-8)`` with the sample std (ddof 1, torch's ``Tensor.std``); a single
    advantage is returned unchanged, as SB3 skips the normalisation for a minibatch of one.
    """
    if convention == "sample_eps":
        return adv.copy() if adv.size < 2 else (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)
    c = adv - adv.mean()
    s = c.std()
    return c / s if s > 0 else c


@dataclass(frozen=True)
class BaseConfig:
    """The fields every algorithm's Config has, first and in this order: the run's structure (env
    copies, steps per copy, networks, observation normalisation) and the discount.

    Each algorithm documents every field in its own table (symbol, meaning, source) and redeclares the
    fields whose default it changes; a redeclared field keeps its place (``dataclasses`` ordering).
    ``__post_init__`` validates them (:func:`purepg._check.common_config`).
    """

    num_envs: int = 2
    num_steps: int = 512
    hidden: tuple = (64, 64)
    activation: str = "tanh"
    normalize_obs: bool = False
    normalize_reward: bool = False
    log_std_init: float = 0.0
    vf_hidden: tuple = (64, 64)
    gamma: float = 0.99
    init: str = "orthogonal"

    def __post_init__(self):
        _check.common_config(self)


@dataclass(frozen=True)
class CriticConfig(BaseConfig):
    """The fields NPG, TRPO, TRPO-Lagrangian and the off-policy learner share: :class:`BaseConfig` and
    the critic fitted between updates (rl-zoo CartPole-v1 TRPO values; each subclass documents every
    field in its own table and may change a default). Fields of a subclass follow these, in its own order.
    """

    vf_lr: float = 1e-3
    vf_epochs: int = 20
    vf_minibatch_size: int = 512
