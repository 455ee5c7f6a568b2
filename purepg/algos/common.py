"""Pieces every on-policy algorithm uses on a batch: flattening, values, GAE advantages.

``final_obs[t, e]`` of a :class:`purepg.rollout.Batch` is the observation after step ``t`` in every
slot (the ended episode's last one where it ended), so ``v_next = V(final_obs)`` everywhere and
:func:`purepg.returns.gae` bootstraps truncated episodes and the batch end with it, and terminated ones
with 0 (the terminated flag zeroes it).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from purepg.returns import gae


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


def normalize_adv(adv):
    """``(A - mean A) / std A`` (a per-minibatch convention of PPO implementations).

    With ``std A = 0`` (all advantages equal, e.g. one sample) there is no direction to rescale:
    the centred advantages (all zero) are returned.
    """
    c = adv - adv.mean()
    s = c.std()
    return c / s if s > 0 else c
