r"""Categorical sampling by inverse CDF (:func:`purepg.model.distributions.categorical_sample`).

Given probabilities ``p`` (N, A) and uniforms ``u`` (N,) drawn by the caller, action ``i`` is
``a_i = min(#{j : c_ij <= u_i c_i,A-1}, A - 1)`` with ``c_i = cumsum(p_i)`` (scaling ``u`` by the total
keeps a rounded total below 1 from biasing the last action). The kernel runs the running sum, the
comparisons and the count in one pass per row; the NumPy reference builds ``c``, a mask and a count.
The running sum adds left to right as NumPy's ``cumsum`` does, so the actions are the same.
Random numbers are never drawn inside a kernel: callers pass them in.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels._backend import unknown_backend


@njit(cache=True, nogil=True, inline="always")
def _inverse_cdf_row(p, u):
    """One row: the action for probabilities ``p`` (A,) and the uniform ``u`` (also the acting pass's,
    :mod:`purepg.kernels.acting`)."""
    A = p.shape[0]
    total = 0.0
    for j in range(A):
        total += p[j]                                            # c_A-1
    threshold = u * total
    c, k = 0.0, 0
    for j in range(A):
        c += p[j]                                                # c_j
        if c <= threshold:
            k += 1
    return min(k, A - 1)


@njit(cache=True, nogil=True)
def _inverse_cdf_numba(p, u, out):
    for i in range(p.shape[0]):
        out[i] = _inverse_cdf_row(p[i], u[i])
    return out


def _inverse_cdf_numpy(p, u):
    c = np.cumsum(p, axis=1)                                     # (N, A)
    threshold = u[:, None] * c[:, -1:]                           # (N, 1)
    return np.minimum((c <= threshold).sum(axis=1), p.shape[1] - 1).astype(np.int64)


def inverse_cdf(p, u, backend="numba"):
    """Categorical actions (N,) int64 from probabilities ``p`` (N, A) and uniforms ``u`` (N,) in [0, 1)."""
    if backend == "numba":
        return _inverse_cdf_numba(p, u, np.empty(p.shape[0], dtype=np.int64))
    if backend == "numpy":
        return _inverse_cdf_numpy(p, u)
    raise unknown_backend(backend)
