"""Argument checks of the optimisers (vectors, reals, integers, callables)."""
from __future__ import annotations


import numpy as np

# ----------------------------------------------------------------------------- validation helpers


def _vector(x, name, fix, size=None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    want = f"({size},)" if size is not None else "(P,)"
    if arr.ndim != 1 or (size is not None and arr.shape[0] != size):
        raise ValueError(f"{name}: expected a vector of shape {want}, got shape {arr.shape}; {fix}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: expected finite values, got {arr[bad]} at index {bad}; {fix}")
    return arr


def _real(x, name, lo, hi, fix, lo_open=False, hi_open=False) -> float:
    ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and np.isfinite(x)
    ok = ok and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: expected a finite number in {rng}, got {x!r}; {fix}")
    return float(x)


def _int(x, name, lo, fix) -> int:
    if not isinstance(x, (int, np.integer)) or isinstance(x, bool) or x < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {x!r}; {fix}")
    return int(x)


def _callable(f, name):
    if not callable(f):
        raise TypeError(f"{name}: expected a callable, got {type(f).__name__}; pass a function of theta")


