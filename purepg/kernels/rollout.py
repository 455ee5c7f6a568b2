r"""The per-step test of a rollout (:func:`purepg.env.rollout.collect`): finite values, some episode ended.

``(all_e,j isfinite(x_ej) and all_e isfinite(r_e), any_e terminated_e or truncated_e)`` for one vector
step of E copies. The kernel makes one pass instead of about six NumPy calls on (E,)-sized arrays, each
of which costs more than the arithmetic. Two booleans: kernel and reference agree exactly.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels._backend import unknown_backend


@njit(cache=True, nogil=True)
def _step_flags_numba(x, r, term, trunc):
    finite, any_done = True, False
    for e in range(x.shape[0]):
        for j in range(x.shape[1]):
            if not np.isfinite(x[e, j]):
                finite = False
        if not np.isfinite(r[e]):
            finite = False
        if term[e] or trunc[e]:
            any_done = True
    return finite, any_done


def _step_flags_numpy(x, r, term, trunc):
    return bool(np.isfinite(r).all() and np.isfinite(x).all()), bool((term | trunc).any())


def step_flags(x, r, term, trunc, backend="numba"):
    """``(every entry of x (E, d) and r (E,) is finite, some episode ended: term | trunc)`` for one step."""
    if backend == "numba":
        return _step_flags_numba(x, r, term, trunc)
    if backend == "numpy":
        return _step_flags_numpy(x, r, term, trunc)
    raise unknown_backend(backend)
