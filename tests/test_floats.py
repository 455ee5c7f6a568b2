"""purepg._floats: the binary exponent of an array's largest magnitude, exact values."""
import numpy as np
import pytest
from hypothesis import given
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st

from purepg._floats import exponent, max_abs


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5),
                  elements=st.floats(allow_nan=False, allow_infinity=False)))
def test_max_abs_and_exponent_equal_their_definitions(X):
    np.testing.assert_array_equal(max_abs(X), np.abs(X).max())
    np.testing.assert_array_equal(max_abs(X, 0), np.abs(X).max(axis=0))
    m, e = max_abs(X, 0), exponent(X, 0)
    nz = m > 0
    assert np.all((0.5 <= np.ldexp(m[nz], -e[nz])) & (np.ldexp(m[nz], -e[nz]) < 1.0))   # m = f 2^e, f in [0.5, 1)
    assert np.all(e[~nz] == 0)
    # over all entries: the largest column exponent among the nonzero columns (an all-zero column's 0 is a
    # convention, not a magnitude: X = [[0.25, 0]] has exponent -1)
    assert exponent(X) == (int(e[nz].max()) if nz.any() else 0) and isinstance(exponent(X), int)


@pytest.mark.parametrize("x, e", [([0.75], 0), ([-3.0, 1.0], 2), ([1.0], 1), ([2.64e-161], -533), ([5e-324], -1073),
                                  ([0.0, -0.0], 0), ([np.inf, 3.0], 0), ([np.nan, 3.0], 0), ([], 0),
                                  ([[0.25, 0.0]], -1)])
def test_exponent_exact_values_and_conventions(x, e):
    assert exponent(np.array(x)) == e


def test_max_abs_of_no_rows_is_zero_per_column():
    np.testing.assert_array_equal(max_abs(np.zeros((0, 3)), 0), np.zeros(3))
    assert max_abs(np.zeros(0)) == 0.0
