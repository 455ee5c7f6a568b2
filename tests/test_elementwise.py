"""The vectorised elementwise kernels against mpmath and against their NumPy references.

Error is measured in ulp of the exact value: ``|got - f(x)| / spacing(f(x) rounded to float64)``, with
``f(x)`` evaluated by mpmath at 160 bits. The stated bound is 4 ulp (purepg.kernels.elementwise).
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from purepg.kernels import elementwise as ew

mpmath = pytest.importorskip("mpmath")
ULP_BOUND = 4.0
TINY = np.nextafter(0.0, 1.0)                        # smallest subnormal


def ulp_errors(got, x, f):
    """Per element: the distance of ``got`` from mpmath's ``f(x)``, in units of the exact value's ulp."""
    err = np.empty(len(x))
    with mpmath.workprec(160):
        for i, (g, xi) in enumerate(zip(np.ravel(got), np.ravel(x))):
            exact = f(mpmath.mpf(float(xi)))
            spacing = np.spacing(abs(float(exact))) if float(exact) != 0.0 else TINY
            err[i] = float(abs(mpmath.mpf(float(g)) - exact)) / spacing
    return err


def signed_log_grid(lo_exp, hi_exp, n):
    mag = np.logspace(lo_exp, hi_exp, n)
    return np.concatenate([mag, -mag])


TANH_GRIDS = {
    "linear [-21, 21]": np.linspace(-21.0, 21.0, 4001),
    "log |x| in [1e-300, 25]": signed_log_grid(-300, np.log10(25.0), 1500),
    "|x| in [0.1, 1], dense": np.linspace(0.1, 1.0, 2001),
    "k boundaries 2|x| = j ln 2": np.array([v for j in range(1, 59) for v in (
        np.nextafter(j * np.log(2) / 2, 0.0), j * np.log(2) / 2, np.nextafter(j * np.log(2) / 2, np.inf))]),
}


@pytest.mark.parametrize("name", sorted(TANH_GRIDS))
def test_tanh_within_bound_on_dense_grids(name):
    x = TANH_GRIDS[name]
    err = ulp_errors(ew.tanh(x), x, mpmath.tanh)
    assert err.max() <= ULP_BOUND, (name, x[np.argmax(err)], err.max())


def test_expm1_within_bound_on_its_domain():
    y = np.concatenate([np.linspace(0.0, 40.0, 4001), np.logspace(-300, np.log10(40.0), 1500),
                        [TINY, 2.5 * TINY, 1e-310]])
    err = ulp_errors(ew.expm1_nonneg(y), y, mpmath.expm1)
    assert err.max() <= ULP_BOUND, (y[np.argmax(err)], err.max())


@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(allow_nan=False, allow_infinity=False)))
def test_tanh_within_bound_on_random_floats(x):
    err = ulp_errors(ew.tanh(x), x, mpmath.tanh)
    assert err.max() <= ULP_BOUND, (x[np.argmax(err)], err.max())


@given(hnp.arrays(np.float64, st.integers(1, 40), elements=st.floats(-30.0, 30.0)))
def test_tanh_within_bound_where_it_is_not_saturated(x):
    err = ulp_errors(ew.tanh(x), x, mpmath.tanh)
    assert err.max() <= ULP_BOUND, (x[np.argmax(err)], err.max())


def test_tanh_special_values():
    x = np.array([0.0, -0.0, TINY, -TINY, 1e-310, -2.2e-308, 1e-20, np.inf, -np.inf, np.nan,
                  19.2, -19.2, 20.0, 25.0, -700.0, 1e308, -np.finfo(float).max])
    t = ew.tanh(x)
    np.testing.assert_array_equal(np.signbit(t[:2]), [False, True])              # tanh(+-0) = +-0
    np.testing.assert_array_equal(t[2:7], x[2:7])                                # subnormals, tiny: tanh(x) = x
    np.testing.assert_array_equal(t[7:9], [1.0, -1.0])                           # +-inf
    assert np.isnan(t[9])
    np.testing.assert_array_equal(t[10:], np.sign(x[10:]))                       # saturation: exactly +-1


def test_tanh_agrees_with_numpy_reference_any_shape_and_in_place():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((37, 11)) * 3.0
    ref = ew.tanh(z, backend="numpy")
    np.testing.assert_allclose(ew.tanh(z), ref, rtol=8 * np.finfo(float).eps, atol=0)
    strided = z[:, ::2]                                                          # not contiguous
    np.testing.assert_array_equal(ew.tanh(strided), ew.tanh(np.ascontiguousarray(strided)))
    out = np.empty(strided.shape)
    assert ew.tanh(strided, out=out) is out
    w = z.copy()
    assert ew.tanh(w, out=w) is w                                               # in place
    np.testing.assert_array_equal(w, ew.tanh(z))
    assert float(ew.tanh(np.float64(0.5))) == float(ew.tanh(np.array([0.5]))[0])   # 0-d


def test_expm1_agrees_with_numpy_reference():
    rng = np.random.default_rng(1)
    y = rng.uniform(0.0, 40.0, 1000)
    np.testing.assert_allclose(ew.expm1_nonneg(y), ew.expm1_nonneg(y, backend="numpy"),
                               rtol=8 * np.finfo(float).eps, atol=0)


def test_bad_out_and_backend_are_named():
    with pytest.raises(ValueError, match="out: expected a float64 array of shape"):
        ew.tanh(np.zeros(3), out=np.zeros(4))
    with pytest.raises(ValueError, match="backend: expected .numba. or .numpy., got .torch."):
        ew.tanh(np.zeros(3), backend="torch")
