"""Large float64 outputs whose memory is used again once every reference to them is gone.

A fresh (N, P) score matrix of N = 2048 rows of a 64-64 policy is 75 MB. An array that large is
mapped anew by the operating system on every allocation, and the system zeroes each page the first
time it is written: on the machines of ``bench/README.md`` that is about a third of the time of a
:meth:`purepg.model.policy.Policy.score` call, spent on memory that was just freed by the previous
call's result.

:func:`empty` returns an array that is new to its caller, ``numpy.empty(shape)`` as far as anyone
can tell, but takes the memory of an earlier result of the same shape when nothing refers to that
result any more: not the caller, not a view (a view refers to the array it was cut from), not a
buffer exported from it. "Nothing refers to it" is read from the array's reference count, which
counts every such reference in CPython; it is compared with the count of an array known to have no
other reference, measured by the same code path (:data:`_UNSHARED`). Where reference counts do not
say that (another Python implementation, a CPython without its global lock) every call allocates.

Kept: at most one array per shape and :data:`SHAPES` shapes (the oldest is let go), only of at least
:data:`MIN_BYTES` (smaller blocks are reused by the C allocator already). Values are never read
from a recycled array before they are written: the callers overwrite every entry.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

MIN_BYTES = 8 * 2**20
SHAPES = 4

_kept: dict = {}                 # shape -> the last array handed out for it
_lock = threading.Lock()


def _counts_tell():
    """Whether reference counts show that no one else holds an object (CPython with its global lock)."""
    gil = getattr(sys, "_is_gil_enabled", None)
    return sys.implementation.name == "cpython" and (gil is None or gil())


def _refs(a):
    """``a``'s reference count as seen from a caller that holds it in one local variable."""
    return sys.getrefcount(a)


def _unshared_count():
    """:func:`_refs` of an array held only by one local variable of the caller (as in :func:`empty`)."""
    a = np.empty(0)
    return _refs(a)


_UNSHARED = _unshared_count() if _counts_tell() else None


def empty(shape):
    """``numpy.empty(shape)`` (float64), on the memory of an earlier result of this shape if no one holds it.

    Parameters
    ----------
    shape : tuple of int

    Returns
    -------
    ndarray, float64, C-contiguous, of ``shape``; its entries are arbitrary (write them all).
    """
    shape = tuple(int(n) for n in shape)
    if _UNSHARED is None or 8 * int(np.prod(shape)) < MIN_BYTES:
        return np.empty(shape)
    with _lock:
        a = _kept.pop(shape, None)
        if a is None or _refs(a) > _UNSHARED:       # still held somewhere: the caller keeps it
            a = np.empty(shape)
        _kept[shape] = a                            # the newest shape last
        while len(_kept) > SHAPES:
            del _kept[next(iter(_kept))]
    return a


def clear():
    """Let go of every kept array (their memory is freed once no one else holds them)."""
    with _lock:
        _kept.clear()
