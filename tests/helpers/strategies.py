"""The suite's Hypothesis strategies are purepg's public ones (:mod:`purepg.testing.strategies`)."""
from purepg.testing.strategies import *  # noqa: F401,F403


def st_vec(n, lo, hi):
    """float64 arrays of ``n`` entries in ``[lo, hi]`` (no NaN)."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
    import numpy as np
    return hnp.arrays(np.float64, n, elements=st.floats(lo, hi, allow_nan=False))
