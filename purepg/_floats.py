"""The binary exponent of an array's largest magnitude: for formulas that do not depend on the scale of
their input, which purepg rescales by a power of two (exactly) where float64 would underflow or overflow
(:func:`purepg.optim.trust_region.natural_step`, :mod:`purepg.pg.baselines`)."""
import numpy as np


def max_abs(X, axis=None):
    """``max |X|`` over ``axis`` (all entries if None), without a temporary array of ``|X|``; 0 over no
    entries; NaN if an entry is NaN."""
    if X.size == 0:
        return 0.0 if axis is None else np.zeros(np.delete(X.shape, axis))
    return np.maximum(X.max(axis=axis), -X.min(axis=axis))


def exponent(X, axis=None):
    """``e`` with ``max |X| = m 2^e``, ``m`` in [0.5, 1), over ``axis``: an int (``axis`` None) or an integer
    array; 0 where the magnitudes are all zero or one is not finite (``np.frexp``'s convention)."""
    e = np.frexp(max_abs(X, axis))[1]
    return int(e) if axis is None else e
