"""Tests of purepg.optim: Adam, clipping, schedules, CG, the natural step and the line search.

Matrices are built as ``A = Q diag(lam) Q^T`` with ``Q`` orthogonal (QR of a Gaussian matrix drawn from a
Hypothesis-chosen seed) and ``lam`` drawn by Hypothesis, so the spectrum -- hence the condition number
and the sign pattern -- is controlled exactly.
"""
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import purepg
from purepg.optim import (
    AdamState, adam_fit, adam_init, adam_step, backtracking_line_search, clip_grad_norm, conjugate_gradient,
    linear_schedule, minibatch_indices, natural_step,
    schedule_progress, solve_spd,
)

# ----------------------------------------------------------------------------- strategies

st_seed = st.integers(0, 2**32 - 1)


def _orthogonal(n, seed):
    Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))  # (n, n)
    return Q * np.sign(np.diag(R))


def _sym(Q, lam):
    A = (Q * lam) @ Q.T  # (n, n)
    return 0.5 * (A + A.T)  # exactly symmetric


@st.composite
def st_spd(draw, n_max=30, lo=0.1, hi=10.0):
    """(A, b): SPD ``A`` (n, n), n in [1, n_max], eigenvalues in [lo, hi] (condition <= hi/lo); b (n,)."""
    n = draw(st.integers(1, n_max))
    lam = np.array(draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n)))
    seed = draw(st_seed)
    b = np.random.default_rng(seed + 1).standard_normal(n)  # (n,)
    return _sym(_orthogonal(n, seed), lam), b


@st.composite
def st_indefinite(draw, n_max=30):
    """(A, b): symmetric A with >= 1 eigenvalue in [-10, -0.1], all |lam| in [0.1, 10]; b has every
    eigencomponent in [0.1, 1], so the Krylov space reaches a negative eigenvector."""
    n = draw(st.integers(1, n_max))
    mag = np.array(draw(st.lists(st.floats(0.1, 10.0), min_size=n, max_size=n)))
    sign = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)))
    sign[draw(st.integers(0, n - 1))] = -1.0
    c = np.array(draw(st.lists(st.floats(0.1, 1.0), min_size=n, max_size=n)))
    Q = _orthogonal(n, draw(st_seed))
    return _sym(Q, sign * mag), Q @ c


def _matvec(A):
    return lambda v: A @ v


# ----------------------------------------------------------------------------- Adam


def test_adam_three_steps_by_hand():
    # lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8, theta_0 = (1, -2).
    # t=1, g=(0.5, -1):  m=(0.05, -0.1), v=(2.5e-4, 1e-3), mhat=g, vhat=g^2,
    #     theta_1 = (1 - 0.1*0.5/(0.5+1e-8), -2 + 0.1*1/(1+1e-8)).
    # t=2, g=(-0.5, -1): m=(-0.005, -0.19), v=(4.9975e-4, 1.999e-3); 1-0.9^2=0.19, 1-0.999^2=1.999e-3,
    #     mhat=(-1/38, -1), vhat=(0.25, 1): theta_2 = theta_1 + (0.1/38/(0.5+1e-8), 0.1/(1+1e-8)).
    # t=3, g=0: m=(-0.0045, -0.171), v=(4.9925025e-4, 1.997001e-3); 1-0.9^3=0.271, 1-0.999^3=2.997001e-3,
    #     mhat = m/0.271, vhat = v/2.997001e-3, theta_3 = theta_2 - 0.1 mhat/(sqrt(vhat)+1e-8).
    # Values below: the same arithmetic in 40-digit decimals, rounded to 20 digits.
    expected_theta = [
        (0.900000001999999960000, -1.90000000099999999000),
        (0.905263159789473646316, -1.80000000199999998000),
        (0.909331595996696912362, -1.72269971311578969503),
    ]
    expected_m = [(0.05, -0.1), (-0.005, -0.19), (-0.0045, -0.171)]
    expected_v = [(2.5e-4, 1e-3), (4.9975e-4, 1.999e-3), (4.9925025e-4, 1.997001e-3)]
    theta, state = np.array([1.0, -2.0]), adam_init(2)
    for t, g in enumerate([(0.5, -1.0), (-0.5, -1.0), (0.0, 0.0)]):
        theta, state = adam_step(theta, np.array(g), state, lr=0.1)
        assert state.t == t + 1
        # 1e-14: a handful of float64 roundings on O(1) numbers.
        np.testing.assert_allclose(theta, expected_theta[t], rtol=1e-14)
        np.testing.assert_allclose(state.m, expected_m[t], rtol=1e-14)
        np.testing.assert_allclose(state.v, expected_v[t], rtol=1e-14)


def test_adam_hand_numbers_are_decimal_exact():
    # The first coordinate of theta_1 written in closed form, to pin the constant above to its derivation.
    exact = Decimal(1) - Decimal("0.1") * Decimal("0.5") / (Decimal("0.5") + Decimal("1e-8"))
    assert abs(float(exact) - 0.900000001999999960000) < 1e-16


@given(n=st.integers(1, 8), T=st.integers(1, 6), seed=st_seed,
       beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.9999), lr=st.floats(1e-4, 1.0))
def test_adam_matches_unrolled_textbook_formulas(n, T, seed, beta1, beta2, lr):
    # Reference: the closed form m_T = (1-b1) sum_i b1^(T-i) g_i (the recursion unrolled), applied to
    # theta_T = theta_{T-1} - lr mhat_T / (sqrt(vhat_T) + eps) at every T. 1e-12: float64 rounding of
    # short sums; any error in the recursion or the bias correction is O(1) relative.
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((T, n))  # (T, n)
    theta0 = rng.standard_normal(n)  # (n,)
    theta, state = theta0, adam_init(n)
    ref = theta0.copy()
    for t in range(1, T + 1):
        theta, state = adam_step(theta, G[t - 1], state, lr=lr, beta1=beta1, beta2=beta2)
        w1 = (1 - beta1) * beta1 ** (t - 1 - np.arange(t))  # (t,)
        w2 = (1 - beta2) * beta2 ** (t - 1 - np.arange(t))  # (t,)
        m_hat = (w1 @ G[:t]) / (1 - beta1**t)  # (n,)
        v_hat = (w2 @ G[:t] ** 2) / (1 - beta2**t)  # (n,)
        ref = ref - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(theta, ref, rtol=1e-12, atol=1e-12)


@given(g=st.lists(st.floats(-100, 100).filter(lambda x: abs(x) > 1e-3), min_size=1, max_size=6),
       T=st.integers(1, 20), lr=st.floats(1e-4, 1.0))
def test_adam_constant_gradient_moves_lr_per_step(g, T, lr):
    # Identity: with g constant, m_t = (1 - beta1^t) g and v_t = (1 - beta2^t) g^2, so mhat = g, vhat = g^2
    # exactly and every step is -lr g / (|g| + eps): the bias correction is what makes this hold at t=1.
    g = np.array(g)
    theta, state = np.zeros_like(g), adam_init(g.size)
    for _ in range(T):
        theta, state = adam_step(theta, g, state, lr=lr)
    # 1e-12: T <= 20 steps, each exact to a few ulps.
    np.testing.assert_allclose(theta, -T * lr * g / (np.abs(g) + 1e-8), rtol=1e-12)


@given(n=st.integers(1, 8), T=st.integers(1, 6), seed=st_seed, eps=st.floats(1e-10, 1e-3))
def test_unchecked_adam_and_clipping_return_the_same_bits(n, T, seed, eps):
    # check=False skips the argument validation only: the same steps to the last bit
    rng = np.random.default_rng(seed)
    a = b = (rng.standard_normal(n), adam_init(n))
    for _ in range(T):
        g = 10 * rng.standard_normal(n)
        gc, norm = clip_grad_norm(g, 0.5)
        gu, norm_u = clip_grad_norm(g, 0.5, check=False)
        assert norm_u == norm
        np.testing.assert_array_equal(gu, gc)
        a = adam_step(*a[:1], gc, a[1], lr=1e-2, eps=eps)
        b = adam_step(*b[:1], gu, b[1], lr=1e-2, eps=eps, check=False)
        for x, y in ((a[0], b[0]), (a[1].m, b[1].m), (a[1].v, b[1].v)):
            np.testing.assert_array_equal(x, y)
        assert a[1].t == b[1].t


def test_adam_does_not_mutate_inputs():
    theta, g, state = np.ones(3), np.ones(3), adam_init(3)
    adam_step(theta, g, state, lr=0.1)
    assert np.all(theta == 1.0) and np.all(state.m == 0.0) and state.t == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=0.0), r"lr: expected a finite number > 0, got 0\.0\. Fix: use a positive"),
    (dict(lr=0.1, beta1=1.0), r"beta1: expected a finite number in \[0, 1\), got 1\.0\. Fix: the usual value is 0\.9"),
    (dict(lr=0.1, beta2=-0.1), r"beta2: expected .*got -0\.1"),
    (dict(lr=0.1, eps=0.0), r"eps: expected .*got 0\.0"),
])
def test_adam_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        adam_step(np.zeros(2), np.zeros(2), adam_init(2), **kwargs)


def test_adam_bad_arrays():
    with pytest.raises(ValueError, match=r"g: expected finite values, got nan at index 1\. Fix: .*skip this update"):
        adam_step(np.zeros(2), np.array([0.0, np.nan]), adam_init(2), lr=0.1)
    with pytest.raises(ValueError, match=r"g: expected shape \(2,\), got \(3,\)\. Fix: "):
        adam_step(np.zeros(2), np.zeros(3), adam_init(2), lr=0.1)
    with pytest.raises(ValueError, match=r"state\.m: expected shape \(2,\), got \(3,\)\. Fix: pass"):
        adam_step(np.zeros(2), np.zeros(2), adam_init(3), lr=0.1)
    with pytest.raises(ValueError, match=r"P: expected an integer >= 1, got 0\. Fix: pass the number"):
        adam_init(0)


# ----------------------------------------------------------------------------- clipping


@given(g=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=10), max_norm=st.floats(1e-3, 1e3))
def test_clip_grad_norm(g, max_norm):
    g = np.array(g)
    gc, norm = clip_grad_norm(g, max_norm)
    assert norm == pytest.approx(np.sqrt(np.sum(g * g)), rel=1e-14)
    if norm <= max_norm:
        np.testing.assert_array_equal(gc, g)
        assert gc is not g
    else:
        # Clipped exactly onto the sphere (1e-14: one division and one norm) and along the same direction.
        assert np.linalg.norm(gc) == pytest.approx(max_norm, rel=1e-14)
        np.testing.assert_allclose(gc, g * (max_norm / norm), rtol=1e-15)


def test_clip_grad_norm_zero_and_torch_offset():
    gc, norm = clip_grad_norm(np.zeros(4), 1.0)
    assert norm == 0.0 and np.all(gc == 0.0)
    # offset=1e-6 reproduces PyTorch's max_norm / (total_norm + 1e-6), which clips even at norm == max_norm.
    gc, norm = clip_grad_norm(np.array([3.0, 4.0]), 5.0, offset=1e-6)
    np.testing.assert_allclose(gc, np.array([3.0, 4.0]) * 5.0 / (5.0 + 1e-6), rtol=1e-15)
    gc, _ = clip_grad_norm(np.array([3.0, 4.0]), 5.0)
    np.testing.assert_array_equal(gc, [3.0, 4.0])


def test_clip_grad_norm_bad_input():
    with pytest.raises(ValueError, match=r"max_norm: expected .*got 0\. Fix: use a positive bound"):
        clip_grad_norm(np.ones(2), 0)
    with pytest.raises(ValueError, match=r"g: expected finite values, got inf at index 0"):
        clip_grad_norm(np.array([np.inf, 1.0]), 1.0)
    with pytest.raises(ValueError, match=r"g: its 2-norm overflows float64 or is NaN: expected a finite norm, "
                                         r"got inf .*Fix: rescale the loss"):
        clip_grad_norm(np.array([1e200, 1e200]), 1.0)
    # unchecked, a non-finite entry is caught by its norm: a clipped gradient is always finite
    with pytest.raises(ValueError, match=r"g: its 2-norm overflows float64 or is NaN: expected a finite norm, "
                                         r"got nan .*a NaN or inf entry means it diverged"):
        clip_grad_norm(np.array([np.nan, 1.0]), 1.0, check=False)


# ----------------------------------------------------------------------------- schedules, minibatches


@given(start=st.floats(-10, 10), end=st.floats(-10, 10), p=st.floats(0, 1))
def test_linear_schedule(start, end, p):
    assert linear_schedule(start, end, 0.0) == start
    assert linear_schedule(start, end, 1.0) == pytest.approx(end, abs=1e-14)
    v = linear_schedule(start, end, p)
    assert min(start, end) - 1e-14 <= v <= max(start, end) + 1e-14
    assert v == pytest.approx(start * (1 - p) + end * p, abs=1e-13)


def test_schedules_by_hand_and_bad_input():
    assert linear_schedule(1e-3, 0.0, 0.25) == pytest.approx(7.5e-4, rel=1e-15)
    assert schedule_progress(0, 100) == 0.0 and schedule_progress(50, 100) == 0.5
    assert schedule_progress(130, 100) == 1.0  # the last batch may overshoot
    with pytest.raises(ValueError, match=r"progress: expected a finite number in \[0, 1\], got 1\.5\. Fix: pass the fraction"):
        linear_schedule(1.0, 0.0, 1.5)
    with pytest.raises(ValueError, match=r"start: expected a finite number, got nan"):
        linear_schedule(float("nan"), 0.0, 0.5)
    with pytest.raises(ValueError, match=r"total_steps: expected an integer >= 1, got 0"):
        schedule_progress(0, 0)
    with pytest.raises(ValueError, match=r"step: expected an integer >= 0, got -1"):
        schedule_progress(-1, 10)


@given(n=st.integers(1, 200), batch_size=st.integers(1, 64), seed=st_seed)
def test_minibatch_indices_partition(n, batch_size, seed):
    batches = minibatch_indices(n, batch_size, np.random.default_rng(seed))
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    assert all(len(b) == batch_size for b in batches[:-1]) and 1 <= len(batches[-1]) <= batch_size
    with pytest.raises(TypeError, match=r"rng: expected a numpy\.random\.Generator"):
        minibatch_indices(n, batch_size, seed)


def test_adam_fit_least_squares():
    # Minibatch Adam on 1/2 mean (X w - y)^2 reaches the least-squares solution (noise-free, so exactly w*).
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))  # (N, 3)
    w_star = np.array([1.0, -2.0, 0.5])
    y = X @ w_star  # (N,)

    def loss_grad(w, idx):
        r = X[idx] @ w - y[idx]  # (B,)
        return 0.5 * np.mean(r * r), X[idx].T @ r / idx.size

    w, state, losses = adam_fit(loss_grad, np.zeros(3), adam_init(3), 64, epochs=300, batch_size=16,
                                lr=0.05, rng=rng, max_grad_norm=10.0)
    assert state.t == 300 * 4 and losses.shape == (1200,)
    assert losses[-4:].max() < 1e-6 * losses[0]
    np.testing.assert_allclose(w, w_star, atol=1e-3)


def test_adam_fit_one_full_batch_is_one_adam_step():
    # One epoch with batch_size = n is exactly one adam_step with the same hyperparameters and the
    # clipped gradient (here 2 theta - 1 on (3,), norm > 0.5 so clipping is active).
    loss_grad = lambda th, idx: (float(th @ th), 2.0 * th - 1.0)  # noqa: E731
    theta0, kw = np.array([3.0, -1.0, 0.5]), dict(lr=0.1, beta1=0.5, beta2=0.9, eps=1e-5)
    th, state, losses = adam_fit(loss_grad, theta0, adam_init(3), 5, epochs=1, batch_size=5,
                                 rng=np.random.default_rng(0), max_grad_norm=0.5, **kw)
    g, _ = clip_grad_norm(2.0 * theta0 - 1.0, 0.5)
    th_ref, state_ref = adam_step(theta0, g, adam_init(3), **kw)
    np.testing.assert_array_equal(th, th_ref)
    np.testing.assert_array_equal(state.v, state_ref.v)
    assert losses.tolist() == [9.0 + 1.0 + 0.25]


# ----------------------------------------------------------------------------- conjugate gradient


@given(st_spd())
def test_cg_solves_spd_to_tolerance(Ab):
    A, b = Ab
    res = conjugate_gradient(_matvec(A), b, iters=200, tol=1e-10)
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
    res = conjugate_gradient(_matvec(A), b, iters=n, tol=0.0)
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
    A = _sym(_orthogonal(n, seed), lam)
    b = np.random.default_rng(seed + 7).standard_normal(n)
    k = np.unique(lam).size
    res = conjugate_gradient(_matvec(A), b, iters=k, tol=0.0)
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), atol=1e-10 * np.linalg.norm(b) / lam.min())
    res = conjugate_gradient(_matvec(A), b, iters=n + 5, tol=1e-10)
    assert res.converged and res.iterations <= k


@given(st_indefinite())
def test_cg_reports_non_positive_curvature(Ab):
    # b reaches a negative eigenvector, so within n steps the Lanczos LDL^T pivots p^T A p / r^T r of the
    # Krylov restriction of A (which has a negative eigenvalue) cannot all be positive (Sylvester's law).
    A, b = Ab
    n = b.size
    res = conjugate_gradient(_matvec(A), b, iters=n, tol=0.0)
    assert not res.converged
    assert "non-positive curvature" in res.reason and "increase damping" in res.reason
    assert np.all(np.isfinite(res.x)) and np.isfinite(res.residual)
    # The returned x is the iterate before the failing step: rerunning with that many iterations gives it.
    if res.iterations > 0:
        again = conjugate_gradient(_matvec(A), b, iters=res.iterations, tol=0.0)
        np.testing.assert_array_equal(again.x, res.x)
    else:
        assert np.all(res.x == 0.0)


def test_cg_curvature_by_hand():
    # A = diag(1, -1), b = (1, 1): p_0 = b has p^T A p = 0 exactly: reported at step 0, x = 0.
    res = conjugate_gradient(_matvec(np.diag([1.0, -1.0])), np.ones(2), iters=5)
    assert (res.iterations, res.converged) == (0, False) and np.all(res.x == 0.0)
    assert "= 0.000e+00 at step 0" in res.reason
    # A singular PSD matrix with b in its null space: flat direction, same report.
    res = conjugate_gradient(_matvec(np.diag([1.0, 0.0])), np.array([0.0, 1.0]))
    assert not res.converged and "non-positive curvature" in res.reason


@given(st_spd(n_max=20), st.floats(0.0, 5.0))
def test_cg_damping_solves_shifted_system(Ab, c):
    # matvec is A - c I, indefinite for c > 0.1; with damping c CG solves (A - c I + c I) x = A x = b.
    A, b = Ab
    n = b.size
    shifted = A - c * np.eye(n)
    res = conjugate_gradient(_matvec(shifted), b, iters=200, tol=1e-12, damping=c)
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


# ----------------------------------------------------------------------------- natural step


@given(st_spd(n_max=20), st.floats(1e-4, 1.0), st.floats(0.0, 1.0))
def test_natural_step_kl_model_equals_epsilon(Ab, epsilon, c):
    F, g = Ab
    ns = natural_step(g, F, epsilon, damping=c)
    assert ns.ok and ns.solver == "cholesky" and ns.reason == "ok"
    Fc = F + c * np.eye(g.size)
    # 1e-10 relative: a P <= 20 quadratic form and one square root, all in float64.
    assert 0.5 * ns.step @ Fc @ ns.step == pytest.approx(epsilon, rel=1e-10)
    x_star = np.linalg.solve(Fc, g)
    np.testing.assert_allclose(ns.x, x_star, rtol=1e-10, atol=1e-12 * np.linalg.norm(x_star))
    assert ns.gFg == pytest.approx(g @ x_star, rel=1e-10)
    # (N1): g^T d = sqrt(2 epsilon g^T F^-1 g), and it is the largest g^T d on the ellipsoid.
    assert ns.expected_improve == pytest.approx(np.sqrt(2 * epsilon * ns.gFg), rel=1e-10)
    D = np.random.default_rng(0).standard_normal((16, g.size))  # (16, P) other directions
    D *= np.sqrt(2 * epsilon / np.einsum("kp,pq,kq->k", D, Fc, D))[:, None]  # on the boundary
    assert np.all(D @ g <= ns.expected_improve * (1 + 1e-10))
    assert ns.residual <= 1e-10 * np.linalg.norm(g)


@given(st_spd(n_max=20), st.floats(1e-4, 1.0), st.floats(0.0, 1.0))
def test_natural_step_cholesky_and_cg_agree(Ab, epsilon, c):
    F, g = Ab
    chol = natural_step(g, F, epsilon, damping=c)
    cg_dense = natural_step(g, F, epsilon, damping=c, solver="cg", cg_iters=200, cg_tol=1e-12)
    cg_fvp = natural_step(g, _matvec(F), epsilon, damping=c, cg_iters=200, cg_tol=1e-12)
    assert cg_fvp.solver == "cg" and cg_fvp.ok and cg_fvp.iterations >= 1
    # CG x has relative error <= condition (100) * 1e-12; the scale inherits it.
    np.testing.assert_allclose(cg_fvp.step, chol.step, atol=1e-9 * np.linalg.norm(chol.step))
    np.testing.assert_array_equal(cg_dense.step, cg_fvp.step)
    # Even a truncated CG keeps the damped KL model exactly at epsilon.
    short = natural_step(g, _matvec(F), epsilon, damping=c, cg_iters=2)
    Fc = F + c * np.eye(g.size)
    assert short.ok and 0.5 * short.step @ Fc @ short.step == pytest.approx(epsilon, rel=1e-10)


@given(st_indefinite(n_max=12), st.floats(1e-3, 1.0))
def test_natural_step_not_positive_definite(Ab, epsilon):
    F, g = Ab
    for ns in (natural_step(g, F, epsilon), natural_step(g, _matvec(F), epsilon, cg_iters=g.size)):
        assert not ns.ok and np.all(ns.step == 0.0)
        assert "not positive definite" in ns.reason and "increase damping" in ns.reason
        assert all(np.all(np.isfinite(v)) for v in (ns.x, ns.gFg, ns.expected_improve, ns.residual))
    # Enough damping makes it positive definite again (eigenvalues >= -10).
    assert natural_step(g, F, epsilon, damping=10.5).ok


def test_natural_step_scale_survives_cg_rounding():
    # Condition 1e4, n = 40, 30 CG steps: float64 CG loses orthogonality, so g^T x and x^T F x differ
    # (by 3e-4 relative here, checked below); the step is scaled by x^T F x, so 1/2 d^T F d = epsilon
    # still holds to rounding (1e-10 relative: one quadratic form of size 40 at this condition).
    rng = np.random.default_rng(3)
    Q = _orthogonal(40, 3)
    F = _sym(Q, np.exp(rng.uniform(0.0, np.log(1e4), 40)))
    g = rng.standard_normal(40)
    ns = natural_step(g, _matvec(F), 0.01, cg_iters=30)
    assert ns.ok and abs(ns.gFg - ns.x @ F @ ns.x) > 1e-5 * ns.gFg
    assert 0.5 * ns.step @ F @ ns.step == pytest.approx(0.01, rel=1e-10)


def test_natural_step_zero_gradient_and_gFg_sign():
    ns = natural_step(np.zeros(3), np.eye(3), 0.01)
    assert not ns.ok and "g is zero" in ns.reason and np.all(ns.step == 0.0)
    # A callable "Fisher" that is positive along CG's direction but negative along the solution x (it
    # flips sign after its first call): CG takes one step (p^T F p = 1), converges, then x^T F x = -1.
    calls = []

    def fvp(v):
        calls.append(1)
        return v if len(calls) == 1 else -v

    ns = natural_step(np.array([1.0, 0.0]), fvp, 0.01, cg_iters=1)
    assert not ns.ok and "x^T (F + c I) x = -1.000e+00" in ns.reason and np.all(ns.step == 0.0)


def test_solve_spd():
    rng = np.random.default_rng(3)
    B = rng.standard_normal((6, 6))
    F = B @ B.T  # (6, 6) SPD
    g = rng.standard_normal(6)
    np.testing.assert_allclose(solve_spd(F, g, 0.5), np.linalg.solve(F + 0.5 * np.eye(6), g), rtol=1e-10)
    with pytest.raises(np.linalg.LinAlgError, match=r"F \+ 0\.0 I is not positive definite.*increase damping"):
        solve_spd(-F, g)
    with pytest.raises(ValueError, match=r"F: expected a symmetric matrix"):
        solve_spd(F + np.triu(np.ones((6, 6)), 1), g)
    with pytest.raises(ValueError, match=r"F: expected shape \(6, 6\) to match g, got \(5, 5\)"):
        solve_spd(np.eye(5), g)


@pytest.mark.parametrize("args, kwargs, match", [
    ((np.ones(2), np.eye(2), 0.0), {}, r"delta: expected .*got 0\.0\. Fix: use a positive KL radius"),
    ((np.ones(2), np.eye(2), -1.0), {}, r"delta: expected .*got -1\.0"),
    ((np.ones(2), np.eye(2), 0.01), dict(damping=-1e-3), r"damping: expected .*got -0\.001"),
    ((np.ones(2), np.eye(2), 0.01), dict(solver="lu"), r"solver: expected one of 'cholesky', 'cg', got 'lu'"),
    ((np.ones(2), lambda v: v, 0.01), dict(solver="cholesky"), r"solver: expected 'cg' for a callable .*got 'cholesky'\. Fix: pass solver='cg'"),
    ((np.array([1.0, np.inf]), np.eye(2), 0.01), {}, r"g: expected finite values, got inf at index 1"),
])
def test_natural_step_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        natural_step(*args, **kwargs)


@pytest.mark.parametrize("make", [
    lambda: purepg.CategoricalPolicy(3, 3, hidden=(4,)),
    lambda: purepg.GaussianPolicy(3, 2, hidden=(4,)),
])
def test_natural_step_on_a_policy(make):
    # Issue 5: on a real policy, the true mean KL of the step over its quadratic model 1/2 d^T F d tends
    # to 1 as epsilon -> 0 (the gap is the cubic Taylor term, O(|d|) = O(sqrt(epsilon)) relative), and
    # the explicit-Fisher (Cholesky) and matrix-free (CG on pol.fvp) steps agree.
    pol, rng = make(), np.random.default_rng(0)
    theta = pol.init(rng) + 0.3 * rng.standard_normal(pol.num_params)  # (P,)
    obs = rng.standard_normal((20, 3))  # (N, 3)
    act = pol.sample(theta, obs, rng)
    g = pol.log_prob_grad(theta, obs, act, rng.standard_normal(20) / 20)  # (P,)
    F = pol.fisher(theta, obs)  # (P, P)
    gaps = []
    # epsilon <= 1e-5: the asymptotic regime here (at 1e-4 the Gaussian's gap still changes sign); >= 1e-9
    # keeps the rounding of a KL of O(1) terms (~1e-16 / epsilon relative) far below the gap.
    for epsilon in (1e-5, 1e-7, 1e-9):
        d = natural_step(g, F, epsilon, damping=1e-3).step
        gaps.append(abs(pol.kl(theta, theta + d, obs) / (0.5 * d @ F @ d) - 1.0))
    assert gaps[2] < 1e-3
    # Each factor 100 in epsilon shrinks the gap about 10x (sqrt); allow 4x for the higher-order terms.
    assert gaps[1] < gaps[0] / 4 and gaps[2] < gaps[1] / 4
    chol = natural_step(g, F, 0.01, damping=1e-3)
    mf = natural_step(g, lambda v: pol.fvp(theta, obs, v), 0.01, damping=1e-3, cg_iters=300, cg_tol=1e-14)
    np.testing.assert_allclose(mf.step, chol.step, atol=1e-8 * np.linalg.norm(chol.step))


# ----------------------------------------------------------------------------- line search


@st.composite
def st_quadratic_problem(draw):
    """Surrogate f(th) = h^T e - 1/2 e^T H e and KL(th) = 1/2 e^T K e + kappa |e|^3, e = th - theta0,
    with H, K SPD (eigenvalues in [0.1, 10]), a random step (any direction) of scale in [1e-3, 10]."""
    P = draw(st.integers(1, 8))
    seed = draw(st_seed)
    rng = np.random.default_rng(seed)
    H = _sym(_orthogonal(P, seed), rng.uniform(0.1, 10, P))
    K = _sym(_orthogonal(P, seed + 1), rng.uniform(0.1, 10, P))
    h, theta0, step = rng.standard_normal((3, P))
    step *= draw(st.floats(1e-3, 10.0)) / np.linalg.norm(step)
    kappa = draw(st.floats(0.0, 1.0))
    f = lambda th: h @ (th - theta0) - 0.5 * (th - theta0) @ H @ (th - theta0)  # noqa: E731
    kl = lambda th: 0.5 * (th - theta0) @ K @ (th - theta0) + kappa * np.linalg.norm(th - theta0) ** 3  # noqa
    return f, kl, theta0, step


@given(st_quadratic_problem(), st.floats(1e-3, 1.0), st.floats(0.1, 0.9), st.integers(1, 15),
       st.one_of(st.none(), st.floats(1e-3, 10.0)), st.floats(0.0, 1.0))
def test_line_search_properties(problem, max_kl, ratio, max_steps, expected, accept_ratio):
    f, kl, theta0, step = problem
    calls = []

    def f_counted(th):
        calls.append(th.copy())
        return f(th)

    theta_in = theta0.copy()
    res = backtracking_line_search(f_counted, theta0, step, constraint=kl, delta=max_kl, ratio=ratio,
                                   max_steps=max_steps, expected_improve=expected, accept_ratio=accept_ratio)
    np.testing.assert_array_equal(theta0, theta_in)  # input untouched
    assert len(res.trace) == len(calls) - 1  # one f(theta) plus one call per trial
    f0 = f(theta0)
    for j, (a, fv, kv) in enumerate(res.trace):
        assert a == ratio**j
        assert fv == f(theta0 + a * step) and kv == kl(theta0 + a * step)
    if res.accepted:
        a, fv, kv = res.trace[-1]
        assert res.step_fraction == a and kv <= max_kl and fv > f0
        if expected is not None:
            assert fv - f0 >= accept_ratio * expected * a
        np.testing.assert_array_equal(res.theta, theta0 + a * step)
        for a_j, fv, kv in res.trace[:-1]:  # every earlier trial was rightly rejected
            assert kv > max_kl or fv <= f0 or (expected is not None and fv - f0 < accept_ratio * expected * a_j)
    else:
        assert len(res.trace) == max_steps and res.step_fraction == 0.0
        np.testing.assert_array_equal(res.theta, theta0)
        assert res.theta is not theta0 and "no step accepted" in res.reason


def test_line_search_by_hand():
    # f(th) = th - th^2 (max at 0.5), KL(th) = th^2 / 2, theta = 0, step = 4, ratio 0.5, max_kl 0.1:
    # j=0: th=4, KL 8 > 0.1; j=1: th=2, KL 2; j=2: th=1, KL 0.5; j=3: th=0.5, KL 0.125;
    # j=4: th=0.25, KL 0.03125 <= 0.1 and f = 0.1875 > 0: accepted at fraction 1/16.
    f = lambda th: th[0] - th[0] ** 2  # noqa: E731
    kl = lambda th: 0.5 * th[0] ** 2  # noqa: E731
    res = backtracking_line_search(f, np.zeros(1), np.array([4.0]), constraint=kl, delta=0.1)
    assert res.accepted and res.step_fraction == 0.0625 and res.theta[0] == 0.25
    assert [t[2] for t in res.trace] == [8.0, 2.0, 0.5, 0.125, 0.03125]
    assert "accepted at step 4" in res.reason
    # The KL bound is inclusive: KL == max_kl is accepted, one ulp-scale above is not.
    res = backtracking_line_search(f, np.zeros(1), np.array([0.5]), constraint=kl, delta=0.125)
    assert res.accepted and res.step_fraction == 1.0
    res = backtracking_line_search(f, np.zeros(1), np.array([0.5]), constraint=kl, delta=0.125 - 1e-15)
    assert res.accepted and res.step_fraction == 0.5 and res.trace[0][2] == 0.125
    # Improvement is strict: a flat surrogate is never accepted.
    res = backtracking_line_search(lambda th: 1.0, np.zeros(1), np.ones(1), constraint=kl, delta=1.0)
    assert not res.accepted and "no improvement: 10" in res.reason
    # With expected_improve = 4 (f'(0) * 4) and accept_ratio 0.8: j=4 needs 0.1875 >= 0.8*4/16 = 0.2 -- no;
    # j=5: th=0.125, f=0.109375 >= 0.1 -- yes.
    res = backtracking_line_search(f, np.zeros(1), np.array([4.0]), constraint=kl, delta=0.1,
                                   expected_improve=4.0, accept_ratio=0.8)
    assert res.accepted and res.step_fraction == 0.03125
    # A descent step never improves: rejected on all trials, theta restored, reason counts them.
    res = backtracking_line_search(f, np.zeros(1), np.array([-1.0]), constraint=kl, delta=10.0, max_steps=3)
    assert not res.accepted and res.theta[0] == 0.0 and len(res.trace) == 3
    assert "no improvement: 3" in res.reason


def test_line_search_never_accepts_non_finite():
    f = lambda th: np.nan if th[0] > 0.3 else th[0]  # noqa: E731
    kl = lambda th: np.inf if th[0] > 0.1 else 0.0  # noqa: E731
    res = backtracking_line_search(f, np.zeros(1), np.ones(1), constraint=kl, delta=1.0, max_steps=5)
    # fractions 1, .5 (f NaN), .25, .125 (KL inf), .0625 accepted.
    assert res.accepted and res.step_fraction == 0.0625
    res = backtracking_line_search(f, np.zeros(1), np.ones(1), constraint=kl, delta=1.0, max_steps=3)
    assert not res.accepted and "non-finite: 3" in res.reason and res.theta[0] == 0.0
    res = backtracking_line_search(lambda th: np.nan, np.zeros(1), np.ones(1), constraint=kl, delta=1.0)
    assert not res.accepted and "f(theta) = nan is not finite" in res.reason and res.trace == ()


@pytest.mark.parametrize("kwargs, match", [
    (dict(delta=0.0), r"delta: expected .*got 0\.0\. Fix: use a positive KL bound"),
    (dict(ratio=1.0), r"ratio: expected .*\(0, 1\), got 1\.0\. Fix: use a shrink factor"),
    (dict(max_steps=0), r"max_steps: expected an integer >= 1, got 0"),
    (dict(accept_ratio=-0.1), r"accept_ratio: expected .*got -0\.1"),
    (dict(expected_improve=-1.0), r"expected_improve: expected .*got -1\.0\. Fix: pass g\^T step > 0"),
    (dict(step=np.ones(3)), r"step: expected shape \(2,\), got \(3,\)"),
])
def test_line_search_bad_input(kwargs, match):
    args = dict(step=np.ones(2), constraint=lambda th: 0.0, delta=0.01)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        backtracking_line_search(lambda th: 0.0, np.zeros(2), **args)


def test_line_search_bad_callables():
    with pytest.raises(TypeError, match=r"constraint: expected a callable"):
        backtracking_line_search(lambda th: 0.0, np.zeros(2), np.ones(2), constraint=0.0, delta=0.01)
    with pytest.raises(ValueError, match=r"f: expected a scalar return value, got shape \(2,\)"):
        backtracking_line_search(lambda th: th, np.zeros(2), np.ones(2), constraint=lambda th: 0.0, delta=0.01)


def test_adam_state_is_a_namedtuple():
    s = AdamState(np.zeros(1), np.zeros(1), 0)
    assert s._fields == ("m", "v", "t")
