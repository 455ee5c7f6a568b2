r"""Kernels of the categorical distribution (:mod:`purepg.model.distributions`): log-softmax, log-prob and (C1).

``log p_b = (z_b - m) - log sum_c exp(z_c - m)`` with ``m = max_c z_c`` (the largest term of the sum is
``exp(0) = 1``, so logits up to +-1e4 stay finite), and the score (C1) ``d log p_a / d z = e_a - p``. At
A = 2 about ten NumPy calls on (N, A) arrays dominate the arithmetic; each kernel makes one pass per row.

Accuracy. The kernels' ``exp`` and ``log`` are the C library's, NumPy's may be its own SIMD versions, and
NumPy sums a row pairwise where the kernel adds left to right: kernel and reference agree to a few ulp,
``|diff| <= 8 eps (1 + |value|)``, not bit for bit (``tests/test_kernels.py``); both are within 4 ulp of
the exact value (``tests/test_distributions.py``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels._backend import unknown_backend


@njit(cache=True, nogil=True, inline="always")
def _log_softmax_row(z, out):
    """One row: ``out = log_softmax(z)`` for ``z`` (A,) (also the acting pass's, :mod:`purepg.kernels.acting`)."""
    A = z.shape[0]
    m = z[0]
    for b in range(1, A):
        if z[b] > m:
            m = z[b]                                             # m = max_b z_b
    s = 0.0
    for b in range(A):
        s += np.exp(z[b] - m)                                    # sum_b exp(z_b - m), the largest term 1
    lse = np.log(s)
    for b in range(A):
        out[b] = (z[b] - m) - lse


@njit(cache=True, nogil=True)
def _log_softmax_numba(z, out):
    for i in range(z.shape[0]):
        _log_softmax_row(z[i], out[i])
    return out


def _log_softmax_numpy(z):
    s = z - z.max(axis=1, keepdims=True)                         # (N, A)  z - m
    return s - np.log(np.exp(s).sum(axis=1, keepdims=True))


def log_softmax(z, backend="numba"):
    """Stable ``log p`` (N, A) from logits ``z`` (N, A) float64."""
    if backend == "numba":
        return _log_softmax_numba(z, np.empty(z.shape))
    if backend == "numpy":
        return _log_softmax_numpy(z)
    raise unknown_backend(backend)


@njit(cache=True, nogil=True, boundscheck=True)      # an action out of range raises IndexError, as NumPy's indexing
def _categorical_log_prob_and_grad_numba(z, a, logp, g):
    N, A = z.shape
    ls = _log_softmax_numba(z, np.empty((N, A)))                 # (N, A)
    for i in range(N):
        for b in range(A):
            g[i, b] = -np.exp(ls[i, b])                          # (C1): e_a - p
        g[i, a[i]] += 1.0
        logp[i] = ls[i, a[i]]
    return logp, g


def _categorical_log_prob_and_grad_numpy(z, a):
    ls = _log_softmax_numpy(z)                                   # (N, A)
    onehot = np.arange(z.shape[1]) == a[:, None]                 # (N, A)  e_a
    return ls[np.arange(z.shape[0]), a], onehot - np.exp(ls)     # (C1): e_a - p


def categorical_log_prob_and_grad(z, a, backend="numba"):
    """``log p_a`` (N,) and (C1) ``d log p_a / d z`` (N, A) from one log-softmax; ``a`` int64 (N,)."""
    if backend == "numba":
        N, A = z.shape
        return _categorical_log_prob_and_grad_numba(z, a, np.empty(N), np.empty((N, A)))
    if backend == "numpy":
        return _categorical_log_prob_and_grad_numpy(z, a)
    raise unknown_backend(backend)
