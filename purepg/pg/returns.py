r"""Returns and advantages: what multiplies the score in a policy gradient.

The baselines subtracted from them are in :mod:`purepg.pg.baselines`.

1. Discounted sums
------------------
For a sequence ``x_0 .. x_{T-1}`` and a discount ``gamma`` in [0, 1], the discounted cumulative sum is

    y_t = sum_{k=t}^{T-1} gamma^(k-t) x_k.                                          (1)

Splitting off the first term, ``y_t = x_t + gamma * sum_{k=t+1}^{T-1} gamma^(k-t-1) x_k``, i.e.

    y_t = x_t + gamma * y_{t+1},    y_T = 0,                                           (2)

so one backward sweep computes every y_t in O(T) (``discount_cumsum``).

2. Total return and reward-to-go
--------------------------------
The total return of a trajectory is ``R = sum_t gamma^t r_t = y_0`` of (1) with ``x = r``; the
reward-to-go is ``Q_t = y_t`` itself. The policy gradient (docs/math/reinforce.md, eq. (1.3)) is

    grad J = E[ (sum_t grad log pi(a_t|s_t)) * (sum_t' r_t') ].                        (3)

Split the inner sum at t: ``sum_t' r_t' = sum_{t'<t} r_t' + Q_t``. For t' < t, condition on the
history h_t = (s_0, a_0, .., s_t), which fixes r_t':

    E[ grad log pi(a_t|s_t) r_t' ] = E[ r_t' * E_{a ~ pi(.|s_t)}[ grad log pi(a|s_t) ] ]
                                   = E[ r_t' * grad sum_a pi(a|s_t) ] = E[ r_t' * grad 1 ] = 0.

Past rewards add zero-mean noise only, so ``E[sum_t grad log pi_t * Q_t]`` equals (3): reward-to-go
is unbiased (causality). With gamma < 1 the exact gradient of ``E[sum_t gamma^t r_t]`` is
``E[sum_t gamma^t grad log pi_t Q_t]``; estimators that drop the ``gamma^t`` in front (most practical
code) estimate a different vector. This module computes the Q_t; the estimator chooses the weight.

3. Batches, episode boundaries, terminated vs truncated
-------------------------------------------------------
A rollout of E vector envs for T steps is time-major, arrays (T, E); ``done = terminated | truncated``.
Sums restart at every boundary, and what follows the last step of a segment is bootstrapped:

* terminated at t: the MDP reached a terminal state, whose value is 0 by definition: bootstrap 0;
* truncated at t: a time limit cut the episode; the state reached, s_final, still has value
  V(s_final), so the bootstrap is ``v_next[t] = V(s_final)`` (treating a time-out as a terminal state
  teaches V that time-outs are failures; Pardo et al. 2018, "Time Limits in Reinforcement Learning");
* t = T-1 and not done: the episode goes on beyond the batch: bootstrap ``v_next[T-1] = V(s_T)``.

With ``cut_t = done_t or t = T-1`` the bootstrapped Monte-Carlo return (``discounted_returns``) is

    G_t = r_t + gamma * (1 - terminated_t) * (v_next_t if cut_t else G_{t+1}).           (4)

4. Generalised advantage estimation (Schulman et al. 2016, Sec. 3, eqs. 11-16)
--------------------------------------------------------------------------------
The TD residual ``delta_t = r_t + gamma (1 - terminated_t) v_next_t - v_t`` is a one-step advantage
estimate. GAE averages the k-step estimates with weights (1 - lam) lam^(k-1), which sums to

    A_t = sum_{l>=0} (gamma lam)^l delta_{t+l}      (l running to the end of t's segment),  (5)

i.e. (1) with x = delta and discount gamma*lam, restarted at boundaries:

    A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1},    A_T = 0.                      (6)

lam = 0 gives ``A_t = delta_t``. lam = 1: inside a segment ``v_next_t = v_{t+1}`` (both are V(s_{t+1}),
the layout contract), so in ``sum_l gamma^l delta_{t+l}`` each ``+gamma^(l+1) v_{t+l+1}`` cancels the
``-gamma^(l+1) v_{t+l+1}`` of the next residual; what remains is ``G_t - v_t`` of (4). The value target
is ``ret = A + v`` (the lambda-return; for lam = 1 it is G).

References
----------
Williams 1992, "Simple statistical gradient-following algorithms" (REINFORCE).
Schulman, Moritz, Levine, Jordan & Abbeel 2016, "High-dimensional continuous control using GAE".
"""
from typing import NamedTuple

import numpy as np

from purepg import _check, kernels

_BACKENDS = ("numba", "numpy")


class GAEResult(NamedTuple):
    """Output of :func:`gae`: advantages ``adv`` (eq. 6) and value targets ``ret = adv + v``."""

    adv: np.ndarray
    ret: np.ndarray


# ----------------------------------------------------------------------------- validation


def _backend(backend):
    if backend not in _BACKENDS:
        raise ValueError(f"backend: expected one of {_BACKENDS}, got {backend!r}. "
                         "Fix: use 'numba' (fast) or 'numpy' (reference).")
    return backend


def _flags(name, x, shape):
    """bool array of ``shape``; integer or float input is accepted when every entry is 0 or 1."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected booleans, got dtype {a.dtype}. Fix: pass a bool array.")
    _check.same_shape(a, name, "rew", shape)
    if a.dtype != np.bool_:
        bad = (a != 0) & (a != 1)  # NaN is caught here too
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name}: expected booleans (or 0/1), got {a[idx].item()!r} at index {idx}. "
                             f"Fix: pass a bool array, e.g. np.asarray({name}) != 0 if nonzero means True.")
    return np.ascontiguousarray(a, dtype=np.bool_)


# ----------------------------------------------------------------------------- discounted sums


def discount_cumsum(x, gamma, *, backend="numba"):
    """Discounted cumulative sum ``y_t = sum_{k>=t} gamma^(k-t) x_k`` (eq. 1, computed by eq. 2).

    Parameters
    ----------
    x : array_like, shape (T,)
        Finite reals (T may be 0).
    gamma : float in [0, 1]
    backend : {"numba", "numpy"}
        The backward recursion (Numba kernel), or its reference in :mod:`purepg.kernels.returns`: the
        same sums as a matrix product, O(T^2) (for tests).

    Returns
    -------
    y : ndarray, shape (T,), float64
    """
    x = _check.real_array(x, "x", (1,))
    gamma = _check.in_unit_interval(gamma, "gamma", "pass a float such as 0.99")
    return kernels.discount_cumsum(x, gamma, backend=_backend(backend))   # eq. (2), one backward pass


def reward_to_go(rew, gamma=1.0, *, backend="numba"):
    """Reward-to-go of one trajectory, ``Q_t = sum_{t'>=t} gamma^(t'-t) r_t'``, shape (T,) (Sec. 2)."""
    rew = _check.real_array(rew, "rew", (1,))
    return discount_cumsum(rew, gamma, backend=backend)


def total_return(rew, gamma=1.0):
    """Total return of one trajectory, ``R = sum_t gamma^t r_t`` (= Q_0; 0.0 when T = 0)."""
    q = reward_to_go(rew, gamma)  # (T,)
    return float(q[0]) if q.size else 0.0


# ----------------------------------------------------------------------------- batched (T, E)


def _batch(rew, terminated, truncated, **values):
    """Validate a (T, E) or (T,) batch; return 2-D float/bool arrays and the caller's shape."""
    rew = _check.real_array(rew, "rew", (1, 2))
    shape = rew.shape
    out = {name: _check.real_array(val, name, (1, 2)) for name, val in values.items()}
    for name, a in out.items():
        _check.same_shape(a, name, "rew", shape)
    term = _flags("terminated", terminated, shape)
    done = term | _flags("truncated", truncated, shape)
    as2d = [a.reshape(shape[0], -1) for a in (rew, term, done, *out.values())]
    return shape, as2d


def discounted_returns(rew, terminated, truncated, v_next, gamma, *, backend="numba"):
    """Bootstrapped Monte-Carlo returns of a time-major batch, restarting at episode boundaries.

    ``G_t = r_t + gamma (1 - terminated_t) (v_next_t if done_t or t = T-1 else G_{t+1})`` (eq. 4):
    0 after a terminated step, V(s_final) after a truncated one, V(s_T) at the batch end.

    Parameters
    ----------
    rew : array_like, shape (T, E) or (T,)
    terminated, truncated : array_like of bool (or 0/1), same shape
    v_next : array_like, same shape
        Value of the state after step t (see the layout contract; ignored where terminated).
    gamma : float in [0, 1]
    backend : {"numba", "numpy"}
        The backward recursion (Numba kernel), or its reference in :mod:`purepg.kernels.returns`: the
        same sums as a matrix product, O(T^2) (for tests).

    Returns
    -------
    G : ndarray, same shape as ``rew``
    """
    shape, (rew, term, done, v_next) = _batch(rew, terminated, truncated, v_next=v_next)
    gamma = _check.in_unit_interval(gamma, "gamma", "pass a float such as 0.99")
    G = kernels.discounted_returns(rew, v_next, term, done, gamma, backend=_backend(backend))   # (T, E) eq. (4)
    return G.reshape(shape)


def gae(rew, v, v_next, terminated, truncated, gamma, lam, *, backend="numba"):
    """Generalised advantage estimates and value targets (Schulman et al. 2016, eqs. 11-16).

    ``delta_t = r_t + gamma (1 - terminated_t) v_next_t - v_t`` and
    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}`` (eq. 6). lam = 0 gives ``delta``; lam = 1
    gives ``discounted_returns(...) - v`` when ``v_next[t] == v[t+1]`` inside episodes.

    Parameters
    ----------
    rew, v, v_next : array_like, shape (T, E) or (T,)
        Rewards, V(s_t) and the value of the state after step t (layout contract).
    terminated, truncated : array_like of bool (or 0/1), same shape
    gamma, lam : float in [0, 1]
    backend : {"numba", "numpy"}
        The backward recursion (Numba kernel), or its reference in :mod:`purepg.kernels.returns`: the
        same sums as a matrix product, O(T^2) (for tests).

    Returns
    -------
    GAEResult(adv, ret)
        ``adv`` and ``ret = adv + v``, each the shape of ``rew``.
    """
    shape, (rew, term, done, v, v_next) = _batch(rew, terminated, truncated, v=v, v_next=v_next)
    gamma = _check.in_unit_interval(gamma, "gamma", "pass a float such as 0.99")
    lam = _check.in_unit_interval(lam, "lam", "pass a float such as 0.95")
    adv = kernels.gae_advantages(rew, v, v_next, term, done, gamma, lam, backend=_backend(backend))  # (T, E) eq. (6)
    return GAEResult(adv.reshape(shape), (adv + v).reshape(shape))
