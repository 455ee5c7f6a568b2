r"""A minibatch's rows gathered from the flattened batch and its advantages standardised, in one pass
(``minibatch_rows``).

A PPO minibatch step starts by taking ``M`` rows ``idx`` of the six columns of the flattened batch
(states, actions, old log-probabilities, advantages, returns, old values) and standardising the
advantages over them (:func:`purepg.algos.common.normalize_advantage`)::

    A_hat = (A - mean A) / std A                       ("population": ddof 0; all-equal A: A - mean A)
    A_hat = (A - mean A) / (std_1 A + 1e-8)            ("sample_eps": ddof 1; one row: A unchanged)

In NumPy that is six fancy-indexing copies and the ~10 calls of ``mean`` and ``std``, ~70 us of
interpreter work for 256 rows; the kernel does it in one call.

Same bits as NumPy. ``numpy.add.reduce`` of a contiguous float64 vector (inside ``mean``, ``std``) is
``0 + pairwise(a)``: blocks of at most 128 terms summed with eight interleaved accumulators, combined
as ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, the rest added in order, longer vectors
split in two at a multiple of 8 below the half (NumPy's ``pairwise_sum``, ``loops_utils.h.src``).
:func:`_pairwise_sum` is that recursion, and the standardisation takes ``std``'s steps: the mean
``sum(a) / n``, the deviations ``a - mean`` squared, their sum over ``n - ddof``, its square root.
Every step is one IEEE operation in NumPy's order, so kernel and reference agree bit for bit
(``tests/test_batch.py``, against NumPy's own ``mean``/``std`` too).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels._backend import unknown_backend

CONVENTIONS = {None: 0, "population": 1, "sample_eps": 2}   # the kernel's ``mode``


@njit(cache=True, nogil=True)
def _pairwise_block(a, lo, n):
    """NumPy's pairwise sum of ``n <= 128`` terms from ``a[lo]``: eight accumulators, then the rest in order."""
    if n < 8:
        s = 0.0
        for i in range(lo, lo + n):
            s += a[i]
        return s
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    for i in range(lo + 8, lo + n - n % 8, 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(lo + n - n % 8, lo + n):
        s += a[i]
    return s


@njit(cache=True, nogil=True)
def _pairwise_sum(a, lo, n):
    """``a[lo] + ... + a[lo + n - 1]`` in NumPy's pairwise order (module docstring), without the leading 0.

    NumPy recurses: a sum of ``n > 128`` terms is the sum of its first ``h`` terms plus the sum of the
    others, ``h = n // 2`` rounded down to a multiple of 8. The same tree is walked here with an explicit
    stack (a self-recursive function does not survive Numba's on-disk cache): each frame is a range and
    how many of its two halves are summed, each finished range pushes its sum on ``vals``.
    """
    if n <= 128:
        return _pairwise_block(a, lo, n)
    starts, sizes, phase = np.empty(64, np.int64), np.empty(64, np.int64), np.empty(64, np.int64)
    vals, nv, top = np.empty(64), 0, 0
    starts[0], sizes[0], phase[0] = lo, n, 0
    while top >= 0:
        l, m = starts[top], sizes[top]
        if m <= 128:
            vals[nv] = _pairwise_block(a, l, m)
            nv += 1
            top -= 1
            continue
        h = m // 2
        h -= h % 8
        if phase[top] == 2:                                      # both halves summed: combine them
            vals[nv - 2] = vals[nv - 2] + vals[nv - 1]
            nv -= 1
            top -= 1
            continue
        phase[top] += 1
        first = phase[top] == 1
        top += 1
        starts[top], sizes[top], phase[top] = (l, h, 0) if first else (l + h, m - h, 0)
    return vals[0]


@njit(cache=True, nogil=True, error_model="numpy")
def _std_numba(a, ddof, scratch):
    """``a.std(ddof=ddof)`` as NumPy's ``_var`` computes it (``scratch``: an array like ``a``)."""
    n, lo = a.shape[0], ddof - ddof                              # lo: a run-time 0 (no literal specialisation)
    mean = (0.0 + _pairwise_sum(a, lo, n)) / n
    for i in range(n):
        d = a[i] - mean
        scratch[i] = d * d
    return np.sqrt((0.0 + _pairwise_sum(scratch, lo, n)) / max(n - ddof, 0))


@njit(cache=True, nogil=True, error_model="numpy")
def _minibatch_rows_numba(idx, obs, act, logp, adv, ret, v, o_obs, o_act, o_logp, o_adv, o_ret, o_v, mode):
    M = idx.shape[0]
    for r in range(M):                                           # element loops, not row assignments: no
        i = idx[r]                                               # broadcasting, so nothing to compile for its errors
        for k in range(obs.shape[1]):
            o_obs[r, k] = obs[i, k]
        for k in range(act.shape[1]):
            o_act[r, k] = act[i, k]
        o_logp[r] = logp[i]
        o_adv[r] = adv[i]
        o_ret[r] = ret[i]
        o_v[r] = v[i]
    if mode == 0 or (mode == 2 and M < 2):
        return
    ddof, lo = mode - 1, mode - mode                             # 0 for "population", 1 for "sample_eps"
    mean = (0.0 + _pairwise_sum(o_adv, lo, M)) / M               # adv.mean()
    if mode == 1:                                                # (A - mean A) / std(A - mean A)
        for r in range(M):
            o_adv[r] = o_adv[r] - mean
        s = _std_numba(o_adv, ddof, np.empty(M))
        if s > 0:
            for r in range(M):
                o_adv[r] = o_adv[r] / s
    else:                                                        # (A - mean A) / (std_1 A + 1e-8)
        s = _std_numba(o_adv, ddof, np.empty(M)) + 1e-8
        for r in range(M):
            o_adv[r] = (o_adv[r] - mean) / s


def _pairwise_sum_numpy(a, lo, n):
    return np.add.reduce(a[lo:lo + n])                           # = 0 + _pairwise_sum(a, lo, n)


def _std_numpy(a, ddof, scratch=None):
    return a.std(ddof=ddof)


def _minibatch_rows_numpy(idx, columns, convention):
    obs, act, logp, adv, ret, v = (c[idx] for c in columns)
    if convention == "population":
        c = adv - adv.mean()
        s = c.std()
        adv = c / s if s > 0 else c
    elif convention == "sample_eps" and adv.size >= 2:
        adv = (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)
    return obs, act, logp, adv, ret, v


def _fits(idx, columns):
    return (idx.dtype == np.int64 and idx.ndim == 1 and idx.size > 0 and columns[0].ndim == 2
            and columns[1].ndim in (1, 2) and all(c.ndim == 1 for c in columns[2:])
            and all(c.dtype in (np.float64, np.int64) and c.flags.c_contiguous for c in columns))


def minibatch_rows(idx, columns, convention, backend="numba"):
    """The rows ``idx`` (M,) of ``columns = (obs, act, logp_old, adv, ret, v)`` (each (N, ...)), fresh
    arrays, with the advantages standardised by ``convention`` (``"population"``, ``"sample_eps"`` or
    None: not standardised). ``backend="numpy"`` is the reference (also taken for arrays the kernel does
    not handle: not C-contiguous, an index that is not int64)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {sorted(CONVENTIONS, key=str)}, got {convention!r}. "
                         f"Fix: pick one of those")
    if backend == "numba":
        if not _fits(idx, columns):
            return _minibatch_rows_numpy(idx, columns, convention)
        out = tuple(np.empty((idx.size, *c.shape[1:]), dtype=c.dtype) for c in columns)
        obs, act = (c.reshape(c.shape[0], -1) for c in columns[:2])            # actions as (N, k), k >= 1
        o_obs, o_act = (o.reshape(idx.size, -1) for o in out[:2])
        _minibatch_rows_numba(idx, obs, act, *columns[2:], o_obs, o_act, *out[2:], CONVENTIONS[convention])
        return out
    if backend == "numpy":
        return _minibatch_rows_numpy(idx, columns, convention)
    raise unknown_backend(backend)
