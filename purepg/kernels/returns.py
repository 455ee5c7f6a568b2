r"""Kernels of the discounted sums of :mod:`purepg.pg.returns`: reward-to-go, bootstrapped returns, GAE.

Each kernel is the backward recursion (eqs. (2), (4), (6) of :mod:`purepg.pg.returns`), one pass over
``t = T-1, ..., 0``; each reference is the sum it computes, written out as a matrix product:

    y_t = sum_{k >= t} M_tk x_k,   M_tk = c^(k-t) if no episode boundary lies in t .. k-1, else 0,

with ``c = gamma`` and ``x = r`` (plus the bootstrap ``gamma (1 - terminated_k) v_next_k`` on the last step
``k`` of a segment) for the returns, and ``c = gamma lam``, ``x = delta`` for GAE (eq. (5)). The reference
takes O(E T^2) time and memory: it is the definition, for tests, not for long batches.

Accuracy. The recursion (Horner's rule) and the matrix product add the same terms in other orders, and
``c^(k-t)`` is one ``pow`` against ``k - t`` products: the two agree to ``4 (T + 1) eps sum_k M_tk |x_k|``
(each of at most T terms carries at most ~2T roundings of relative size eps), not bit for bit.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels._backend import unknown_backend


def segment_discounts(c, breaks):
    """(E, T, T) matrix ``M[e, t, k] = c^(k-t)`` for ``t <= k`` with no ``breaks[j, e]`` at ``t <= j < k``, else 0.

    ``breaks`` (T, E) bool: step ``j`` ends a segment of column ``e`` (its successor is not summed into it).
    """
    T = breaks.shape[0]
    lag = np.arange(T)[None, :] - np.arange(T)[:, None]                  # (T, T)  k - t
    before = np.cumsum(breaks, axis=0) - breaks                          # (T, E)  #breaks at j < t
    crossed = before.T[:, None, :] - before.T[:, :, None]                # (E, T, T)  #breaks at t <= j < k
    return np.where((lag >= 0) & (crossed == 0), float(c) ** np.maximum(lag, 0), 0.0)


@njit(cache=True, nogil=True)
def _discount_cumsum_numba(x, gamma):
    y = np.empty_like(x)  # (T,)
    acc = 0.0
    for t in range(x.shape[0] - 1, -1, -1):
        acc = x[t] + gamma * acc  # eq. (2)
        y[t] = acc
    return y


def _discount_cumsum_numpy(x, gamma):
    """Eq. (1) itself: ``y = M x`` with ``M_tk = gamma^(k-t)`` for ``k >= t``."""
    return segment_discounts(gamma, np.zeros((x.shape[0], 1), dtype=bool))[0] @ x   # (T,)


def discount_cumsum(x, gamma, backend="numba"):
    """``y_t = sum_{k>=t} gamma^(k-t) x_k`` (T,) of a float64 (T,) array and a float ``gamma``."""
    if backend == "numba":
        return _discount_cumsum_numba(x, gamma)
    if backend == "numpy":
        return _discount_cumsum_numpy(x, gamma)
    raise unknown_backend(backend)


@njit(cache=True, nogil=True)
def _returns_numba(rew, v_next, term, done, gamma):
    T, E = rew.shape
    G = np.empty((T, E))
    nxt = np.zeros(E)  # G_{t+1} of each env
    for t in range(T - 1, -1, -1):
        for e in range(E):
            boot = v_next[t, e] if (done[t, e] or t == T - 1) else nxt[e]
            nonterm = 0.0 if term[t, e] else 1.0
            nxt[e] = rew[t, e] + gamma * nonterm * boot  # eq. (4)
            G[t, e] = nxt[e]
    return G


def _returns_numpy(rew, v_next, term, done, gamma):
    """Eq. (4) unrolled: ``G_t = sum_k M_tk x_k``, the bootstrap folded into the last reward of each segment."""
    cut = done.copy()
    cut[-1:] = True                                                      # (T, E)  the batch end cuts too
    x = rew + gamma * (1.0 - term) * np.where(cut, v_next, 0.0)          # (T, E)
    return np.einsum("etk,ke->te", segment_discounts(gamma, done), x)


def discounted_returns(rew, v_next, term, done, gamma, backend="numba"):
    """Bootstrapped returns ``G`` (T, E), eq. (4), of float64 ``rew``, ``v_next`` and bool ``term``, ``done`` (T, E)."""
    if backend == "numba":
        return _returns_numba(rew, v_next, term, done, gamma)
    if backend == "numpy":
        return _returns_numpy(rew, v_next, term, done, gamma)
    raise unknown_backend(backend)


@njit(cache=True, nogil=True)
def _gae_numba(rew, v, v_next, term, done, gamma, lam):
    T, E = rew.shape
    adv = np.empty((T, E))
    a = np.zeros(E)  # A_{t+1} of each env
    for t in range(T - 1, -1, -1):
        for e in range(E):
            nonterm = 0.0 if term[t, e] else 1.0
            cont = 0.0 if done[t, e] else 1.0
            delta = rew[t, e] + gamma * nonterm * v_next[t, e] - v[t, e]
            a[e] = delta + gamma * lam * cont * a[e]  # eq. (6)
            adv[t, e] = a[e]
    return adv


def _gae_numpy(rew, v, v_next, term, done, gamma, lam):
    """Eq. (5): ``A_t = sum_l (gamma lam)^l delta_{t+l}`` over the rest of t's segment."""
    delta = rew + gamma * (1.0 - term) * v_next - v                      # (T, E)
    return np.einsum("etk,ke->te", segment_discounts(gamma * lam, done), delta)


def gae_advantages(rew, v, v_next, term, done, gamma, lam, backend="numba"):
    """GAE advantages ``A`` (T, E), eq. (6), of float64 ``rew``, ``v``, ``v_next`` and bool ``term``, ``done``."""
    if backend == "numba":
        return _gae_numba(rew, v, v_next, term, done, gamma, lam)
    if backend == "numpy":
        return _gae_numpy(rew, v, v_next, term, done, gamma, lam)
    raise unknown_backend(backend)
