"""Tests of purepg.optim.adam: Adam against hand numbers and the textbook formulas, gradient clipping,
the schedules, minibatches and ``adam_fit``."""
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from purepg.optim import (
    AdamState, adam_fit, adam_init, adam_step, clip_adam_step, clip_grad_norm, linear_schedule, minibatch_indices,
    schedule_progress,
)

st_seed = st.integers(0, 2**32 - 1)

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


@given(n=st.one_of(st.integers(1, 8), st.integers(9, 3000)), T=st.integers(1, 6), seed=st_seed,
       max_norm=st.sampled_from([0.5, 50.0, None]), offset=st.sampled_from([0.0, 1e-6]))
def test_clip_adam_step_equals_clipping_then_adam_bit_for_bit(n, T, seed, max_norm, offset):
    # the clip's product inside Adam's pass: the same steps as clip_grad_norm then adam_step, clipped or not,
    # with the norm in the same kernel call (fused) or from numpy.linalg.norm
    from purepg.kernels import blas, heads
    for fused in (True, False) if blas.AVAILABLE else (False,):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(heads, "ready", lambda: fused)
            rng = np.random.default_rng(seed)
            a = b = (rng.standard_normal(n), adam_init(n))
            for _ in range(T):
                g = 10 * rng.standard_normal(n)
                gc = g if max_norm is None else clip_grad_norm(g, max_norm, offset=offset)[0]
                a = adam_step(*a[:1], gc, a[1], lr=1e-2, eps=1e-5)
                b = clip_adam_step(*b[:1], g, b[1], max_norm=max_norm, offset=offset, lr=1e-2, eps=1e-5)
                for x, y in ((a[0], b[0]), (a[1].m, b[1].m), (a[1].v, b[1].v)):
                    np.testing.assert_array_equal(x, y)
                assert a[1].t == b[1].t
            for bad in (np.inf, np.nan):
                with pytest.raises(ValueError, match="^g: its 2-norm overflows"):
                    clip_adam_step(*b[:1], np.full(n, bad), b[1], max_norm=0.5, lr=1e-2)


@given(n=st.integers(1, 5000), seed=st_seed, scale=st.sampled_from([1e-150, 1e-3, 1.0, 1e3, 1e150]))
def test_the_fused_norm_is_numpys_norm(n, seed, scale):
    """:func:`purepg.kernels.adam.clip_adam_update`'s norm (NumPy's ``cblas_ddot`` from inside the kernel)
    is ``numpy.linalg.norm``'s bit for bit, and its step its NumPy reference's."""
    from purepg.kernels import adam as kadam, blas
    if not blas.AVAILABLE:
        pytest.skip(blas.REASON)
    rng = np.random.default_rng(seed)
    theta, g, m, v = rng.standard_normal(n), scale * rng.standard_normal(n), rng.standard_normal(n), rng.random(n)
    got = kadam.clip_adam_update(theta, g, m, v, 3, 1e-3, 0.9, 0.999, 1e-8, 0.5, 1e-6)
    ref = kadam.clip_adam_update(theta, g, m, v, 3, 1e-3, 0.9, 0.999, 1e-8, 0.5, 1e-6, backend="numpy")
    assert got[3] == ref[3] == np.linalg.norm(g) or (np.isinf(got[3]) and np.isinf(ref[3]))
    for x, y in zip(got[:3], ref[:3]):
        np.testing.assert_array_equal(x, y)


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


def test_adam_state_is_a_namedtuple():
    s = AdamState(np.zeros(1), np.zeros(1), 0)
    assert s._fields == ("m", "v", "t")
