"""Tests of purepg.optim.cg: conjugate gradient on SPD matrices of controlled spectrum (tolerance,
exactness in n steps and in the number of distinct eigenvalues, damping), non-positive curvature,
and bad input.

Matrices are built as ``A = Q diag(lam) Q^T`` (see tests/helpers/matrices.py), so the spectrum -- hence
the condition number and the sign pattern -- is controlled exactly.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from purepg.optim import conjugate_gradient

from helpers.matrices import matvec, orthogonal, st_indefinite, st_seed, st_spd, sym

# ----------------------------------------------------------------------------- conjugate gradient


@given(st_spd())
def test_cg_solves_spd_to_tolerance(Ab):
    A, b = Ab
    res = conjugate_gradient(matvec(A), b, iters=200, tol=1e-10)
    # 200 iterations: the Chebyshev bound 2((sqrt(k)-1)/(sqrt(k)+1))^200 with k <= 100 is < 1e-17.
    assert res.converged and res.iterations <= 200 and "converged" in res.reason
    assert res.residual <= 1e-10 * np.linalg.norm(b)
    # True residual: the recursive one plus its drift O(iters * u * ||A|| ||x||) <~ 60 * 1e-16 * 10 * 10 ||b||.
    assert np.linalg.norm(b - A @ res.x) <= 2e-10 * np.linalg.norm(b)
    x_star = np.linalg.solve(A, b)
    # Forward error <= condition (100) * relative residual (2e-10).
    np.testing.assert_allclose(res.x, x_star, atol=2e-8 * np.linalg.norm(x_star))


@given(st_spd(n_max=6))
def test_cg_exact_in_n_steps(Ab):
    # In exact arithmetic x_n = x*. In float64 the directions lose conjugacy as n and the condition grow
    # (Greenbaum & Strakos 1992): over 3000 random n <= 30, k <= 100 problems the error after exactly n
    # steps reached 3e-4, so n-step exactness is asserted where rounding stays small -- n <= 6 (measured
    # worst 7e-12 over 3000 problems; 1e-9 leaves two orders of margin) -- and, for any n <= 30, through
    # the spectrum in the next test.
    A, b = Ab
    n = b.size
    res = conjugate_gradient(matvec(A), b, iters=n, tol=0.0)
    x_star = np.linalg.solve(A, b)
    assert res.iterations <= n
    np.testing.assert_allclose(res.x, x_star, atol=1e-9 * np.linalg.norm(x_star))


@given(n=st.integers(1, 30), seed=st_seed,
       values=st.lists(st.sampled_from([0.1, 0.3, 1.0, 3.0, 10.0]), min_size=1, max_size=4, unique=True),
       data=st.data())
def test_cg_terminates_in_number_of_distinct_eigenvalues(n, seed, values, data):
    # Identity behind n-step exactness: the Krylov space of A with k distinct eigenvalues has dimension
    # <= k, so x_k = x*. Separated eigenvalues keep rounding at ~1e-14 (measured); tolerance 1e-10.
    lam = np.array(data.draw(st.lists(st.sampled_from(values), min_size=n, max_size=n)))
    A = sym(orthogonal(n, seed), lam)
    b = np.random.default_rng(seed + 7).standard_normal(n)
    k = np.unique(lam).size
    res = conjugate_gradient(matvec(A), b, iters=k, tol=0.0)
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), atol=1e-10 * np.linalg.norm(b) / lam.min())
    res = conjugate_gradient(matvec(A), b, iters=n + 5, tol=1e-10)
    assert res.converged and res.iterations <= k


@given(st_indefinite())
def test_cg_reports_non_positive_curvature(Ab):
    # b reaches a negative eigenvector, so within n steps the Lanczos LDL^T pivots p^T A p / r^T r of the
    # Krylov restriction of A (which has a negative eigenvalue) cannot all be positive (Sylvester's law).
    A, b = Ab
    n = b.size
    res = conjugate_gradient(matvec(A), b, iters=n, tol=0.0)
    assert not res.converged
    assert "non-positive curvature" in res.reason and "increase damping" in res.reason
    assert np.all(np.isfinite(res.x)) and np.isfinite(res.residual)
    # The returned x is the iterate before the failing step: rerunning with that many iterations gives it.
    if res.iterations > 0:
        again = conjugate_gradient(matvec(A), b, iters=res.iterations, tol=0.0)
        np.testing.assert_array_equal(again.x, res.x)
    else:
        assert np.all(res.x == 0.0)


def test_cg_curvature_by_hand():
    # A = diag(1, -1), b = (1, 1): p_0 = b has p^T A p = 0 exactly: reported at step 0, x = 0.
    res = conjugate_gradient(matvec(np.diag([1.0, -1.0])), np.ones(2), iters=5)
    assert (res.iterations, res.converged) == (0, False) and np.all(res.x == 0.0)
    assert "= 0.000e+00 at step 0" in res.reason
    # A singular PSD matrix with b in its null space: flat direction, same report.
    res = conjugate_gradient(matvec(np.diag([1.0, 0.0])), np.array([0.0, 1.0]))
    assert not res.converged and "non-positive curvature" in res.reason


@given(st_spd(n_max=20), st.floats(0.0, 5.0))
def test_cg_damping_solves_shifted_system(Ab, c):
    # matvec is A - c I, indefinite for c > 0.1; with damping c CG solves (A - c I + c I) x = A x = b.
    A, b = Ab
    n = b.size
    shifted = A - c * np.eye(n)
    res = conjugate_gradient(matvec(shifted), b, iters=200, tol=1e-12, damping=c)
    assert res.converged
    x_star = np.linalg.solve(A, b)
    # condition <= 100 times relative residual 1e-12, plus rounding of the shift.
    np.testing.assert_allclose(res.x, x_star, atol=1e-9 * np.linalg.norm(x_star))


def test_cg_zero_rhs_and_non_finite_matvec():
    res = conjugate_gradient(lambda v: v, np.zeros(3))
    assert res.converged and res.iterations == 0 and np.all(res.x == 0.0) and res.residual == 0.0
    res = conjugate_gradient(lambda v: np.full_like(v, np.nan), np.ones(3))
    assert not res.converged and "non-finite" in res.reason and np.all(res.x == 0.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(iters=0), r"iters: expected an integer >= 1, got 0\. Fix: CG needs at least one"),
    (dict(tol=-1e-3), r"tol: expected .*got -0\.001\. Fix: pass a relative tolerance"),
    (dict(damping=-1.0), r"damping: expected .*got -1\.0\. Fix: pass 0\.0"),
])
def test_cg_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conjugate_gradient(lambda v: v, np.ones(2), **kwargs)


def test_cg_bad_inputs():
    with pytest.raises(ValueError, match=r"b: expected finite values, got nan at index 0"):
        conjugate_gradient(lambda v: v, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"matvec: expected a vector of shape \(2,\), got \(3,\)"):
        conjugate_gradient(lambda v: np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match=r"matvec: expected a callable, got ndarray"):
        conjugate_gradient(np.eye(2), np.ones(2))
