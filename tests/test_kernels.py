"""purepg.kernels: every Numba kernel against its one NumPy reference, to the accuracy its module states.

Bit for bit (``assert_array_equal``, signs of zero too) where kernel and reference do the same IEEE
operations per entry in the same order: the per-sample fill, phi', Adam, inverse-CDF sampling, the PPO
clip terms, the step flags. Bounds elsewhere, each from the kernel module's docstring: the Fisher
accumulation sums R products per entry in different orders (BLAS blocks, einsum, loops), so
``|diff| <= ~R eps sum_r |U_ra U_rb|``, far below 1e-12 of the scale for R <= 40; the categorical kernels
use the C library's exp/log against NumPy's own, ``8 eps (1 + |value|)``; the discounted sums add the
same terms in another order, ``4 (T + 1) eps sum_k M_tk |x_k|``.
"""
import inspect
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba.core.registry import CPUDispatcher

from helpers import strategies as S
from purepg import kernels
from purepg.model.nn import MLP
from purepg.kernels import (acting, adam, batch, distributions, elementwise, heads, nn, passes, returns, rollout,
                            sampling, surrogates)

MODULES = (nn, adam, sampling, acting, distributions, returns, rollout, surrogates, passes, batch, heads)
EPS = np.finfo(float).eps


@st.composite
def st_fill_case(draw):
    """(sizes int64, H (N, sum d_{l-1}), DZ (N, sum d_l)) for layer sizes from S.layer_sizes."""
    sizes = np.array(draw(S.layer_sizes()), dtype=np.int64)
    n = draw(st.integers(0, S.MAX_N))                                            # N = 0 is a valid empty fill
    H = draw(S.st_matrix(n, int(sizes[:-1].sum()), 10.0))
    DZ = draw(S.st_matrix(n, int(sizes[1:].sum()), 10.0))
    return sizes, H, DZ


def _num_params(sizes):
    return int(sum(o * i + o for i, o in zip(sizes[:-1], sizes[1:])))


def _fill_by_definition(sizes, H, DZ):
    """Row i, layer l: outer(dz_l[i], h_{l-1}[i]) row-major, then dz_l[i] -- written entry by entry."""
    out = []
    for i in range(H.shape[0]):
        row, hoff, zoff = [], 0, 0
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            row += [DZ[i, zoff + j] * H[i, hoff + k] for j in range(d_out) for k in range(d_in)]
            row += [DZ[i, zoff + j] for j in range(d_out)]
            hoff, zoff = hoff + d_in, zoff + d_out
        out.append(row)
    return np.array(out, dtype=np.float64).reshape(H.shape[0], _num_params(sizes))


@given(st_fill_case())
def test_persample_fill_numba_equals_numpy_reference_bit_for_bit(case):
    sizes, H, DZ = case
    a = kernels.persample_fill(sizes, H, DZ, backend="numba")
    b = kernels.persample_fill(sizes, H, DZ, backend="numpy")
    assert a.shape == b.shape == (H.shape[0], _num_params(sizes))
    np.testing.assert_array_equal(a, b)                                          # one product per entry
    np.testing.assert_array_equal(b, _fill_by_definition(sizes, H, DZ))


@given(st_fill_case())
def test_persample_fill_writes_into_out_view(case):
    # the policy fills the network block of a wider (N, P + extra) score matrix through a column view
    sizes, H, DZ = case
    P = _num_params(sizes)
    for backend in ("numba", "numpy"):
        S_ = np.full((H.shape[0], P + 2), 7.0)
        res = kernels.persample_fill(sizes, H, DZ, backend=backend, out=S_[:, :P])
        assert np.shares_memory(res, S_) or H.shape[0] == 0                      # (empty arrays share nothing)
        np.testing.assert_array_equal(S_[:, P:], 7.0)                            # extra columns untouched
        np.testing.assert_allclose(S_[:, :P], _fill_by_definition(sizes, H, DZ), atol=1e-12 * (1 + np.abs(S_).max(initial=0.0)))


@st.composite
def st_factor_rows(draw):
    r, p = draw(st.integers(0, 40)), draw(st.integers(1, 12))
    U = draw(S.st_matrix(r, p, 5.0))
    F0 = draw(S.st_matrix(p, p, 5.0))
    return U, F0 + F0.T                                                          # a symmetric starting F


@given(st_factor_rows())
def test_fisher_accumulate_all_backends_agree(case):
    U, F0 = case
    ref = F0 + sum((np.outer(u, u) for u in U), np.zeros_like(F0))               # F += sum_r u_r u_r^T
    scale = 1.0 + np.abs(F0).max() + (np.abs(U).T @ np.abs(U)).max(initial=0.0)
    for backend in ("numba", "numpy", "loops"):
        F = F0.copy()
        res = kernels.fisher_accumulate(U, F, backend=backend)
        assert res is F                                                          # updated in place
        np.testing.assert_allclose(F, ref, rtol=0, atol=1e-12 * scale, err_msg=backend)


def test_fisher_accumulate_loops_on_non_contiguous_rows():
    U = np.arange(24.0).reshape(4, 6)[:, ::2]                                    # a strided view (4, 3)
    F = np.zeros((3, 3))
    kernels.fisher_accumulate(U, F, backend="loops")
    np.testing.assert_array_equal(F, U.T @ U)


@given(st.integers(0, 9), st.integers(1, 9), st.sampled_from(["tanh", "relu"]), st.integers(0, 2**32 - 1))
def test_dphi_mul_numba_equals_numpy_reference_bit_for_bit(n, d, activation, seed):
    """dh * phi'(z) from h: the same IEEE operations per entry in both backends, so equal to the last bit
    (the kernel is compiled without fastmath: no fused multiply-add), for h at 0, +-1 and in between
    and dh spanning 40 orders of magnitude (and its zeros, whose sign relu keeps as dh * 0.0)."""
    rng = np.random.default_rng(seed)
    z = rng.choice([0.0, -0.0, 1.0, -1.0, 3.0], (n, d)) * rng.standard_normal((n, d)) ** 2
    h = np.tanh(z) if activation == "tanh" else np.maximum(z, 0.0)                 # (n, d)
    dh = rng.standard_normal((n, d)) * 10.0 ** rng.integers(-20, 20, (n, d))       # (n, d)
    dh[rng.random((n, d)) < 0.2] = -0.0
    a = kernels.dphi_mul(dh.copy(), h, activation, backend="numba")
    b = kernels.dphi_mul(dh.copy(), h, activation, backend="numpy")
    ref = dh * ((1.0 - h * h) if activation == "tanh" else (h > 0).astype(float))  # the definition
    for x in (a, b):
        np.testing.assert_array_equal(x, ref)
        assert np.array_equal(np.signbit(x), np.signbit(ref))


@given(st.integers(0, 300), st.integers(1, 70), st.floats(0.1, 30.0), st.integers(0, 2**32 - 1))
def test_bias_tanh_equals_the_bias_add_then_tanh_bit_for_bit(n, d, scale, seed):
    # one pass (the MLP's forward_into) = ``z += b`` then the tanh kernel, entry by entry: the same bits;
    # the NumPy reference, np.tanh(z + b), agrees to the tanh kernel's accuracy
    rng = np.random.default_rng(seed)
    z, b = scale * rng.standard_normal((n, d)), scale * rng.standard_normal(d)
    two = z + b
    elementwise.tanh(two, out=two)
    one = z.copy()
    assert elementwise.bias_tanh(one, b) is one
    np.testing.assert_array_equal(one.view(np.int64), two.view(np.int64))          # signs of zero too
    ref = elementwise.bias_tanh(z.copy(), b, backend="numpy")
    np.testing.assert_allclose(one, ref, rtol=8 * EPS, atol=0)
    strided = np.zeros((n, 2 * d))[:, ::2]                                          # the two-pass path
    strided[...] = z
    np.testing.assert_array_equal(elementwise.bias_tanh(strided, b), two)


@given(st.integers(0, 300), st.integers(1, 70), st.sampled_from(["tanh", "relu"]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_dphi_mul_with_column_sums_equals_numpy_sum_bit_for_bit(n, d, activation, strided, seed):
    """db = the column sums of the new dh, from the kernel's same pass: the bits of numpy's
    ``dh.sum(axis=0)`` (rows added in order for C-contiguous d >= 2; numpy's own sum otherwise), with
    magnitudes over 30 orders so that any other summation order would show in the last bits."""
    rng = np.random.default_rng(seed)
    h = np.tanh(rng.standard_normal((n, 2 * d))) if activation == "tanh" else np.maximum(rng.standard_normal((n, 2 * d)), 0)
    dh = rng.standard_normal((n, 2 * d)) * 10.0 ** rng.integers(-15, 15, (n, 2 * d))
    if strided:
        h, dh = h[:, ::2], dh[:, ::2]                                             # (n, d) views
    else:
        h, dh = np.ascontiguousarray(h[:, :d]), np.ascontiguousarray(dh[:, :d])
    want = kernels.dphi_mul(dh.copy(), h, activation, backend="numpy")
    for backend in ("numba", "numpy"):
        x, db = dh.copy(), np.full(d, np.nan)
        res = kernels.dphi_mul(x, h, activation, backend=backend, db=db)
        assert res is x
        np.testing.assert_array_equal(x, want)
        assert np.array_equal(db, want.sum(axis=0)) and np.array_equal(np.signbit(db), np.signbit(want.sum(axis=0)))


def test_dphi_mul_works_in_place_and_on_strided_views():
    rng = np.random.default_rng(1)
    h, dh = np.tanh(rng.standard_normal((6, 8))), rng.standard_normal((6, 8))
    for backend in ("numba", "numpy"):
        big = dh.copy()
        view = big[::2, 1::3]                                                        # (3, 3) strided
        res = kernels.dphi_mul(view, h[::2, 1::3], "tanh", backend=backend)
        assert res is view
        np.testing.assert_array_equal(big[::2, 1::3], dh[::2, 1::3] * (1.0 - h[::2, 1::3] ** 2))
        mask = np.ones_like(big, dtype=bool)
        mask[::2, 1::3] = False
        np.testing.assert_array_equal(big[mask], dh[mask])                         # the rest untouched


@given(st.integers(0, 40), st.integers(1, 10**6), st.floats(1e-6, 1.0), st.floats(0.0, 0.999),
       st.floats(0.0, 0.99999), st.floats(1e-12, 1e-3), st.integers(0, 2**32 - 1))
def test_adam_update_numba_equals_numpy_reference_bit_for_bit(P, t, lr, beta1, beta2, eps, seed):
    """One pass or a dozen: the same operations per coordinate in the same order, so the same bits, for
    gradients and moments over many orders of magnitude (and exact zeros)."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(P)
    g = rng.standard_normal(P) * 10.0 ** rng.integers(-12, 6, P) * (rng.random(P) > 0.1)
    m = rng.standard_normal(P) * 10.0 ** rng.integers(-8, 2, P)
    v = rng.random(P) * 10.0 ** rng.integers(-20, 4, P)
    a = kernels.adam_update(theta, g, m, v, t, lr, beta1, beta2, eps, backend="numba")
    b = kernels.adam_update(theta, g, m, v, t, lr, beta1, beta2, eps, backend="numpy")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    scale = float(rng.uniform(1e-3, 1.0))                                          # a global-norm clip's scale
    a = kernels.adam_update(theta, g, m, v, t, lr, beta1, beta2, eps, backend="numba", scale=scale)
    b = kernels.adam_update(theta, g * scale, m, v, t, lr, beta1, beta2, eps, backend="numpy")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@given(st.integers(0, 12), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_inverse_cdf_numba_equals_numpy_reference(N, A, seed):
    """The same running sums and comparisons, so the same actions, for probabilities with exact zeros,
    rounded totals (p from a softmax) and uniforms at 0 and at the CDF steps themselves."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, A)) * 10.0 ** rng.integers(-1, 3, (N, 1))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)                                            # (N, A), total ~ 1
    p[rng.random((N, A)) < 0.2] = 0.0
    u = rng.random(N)
    u[rng.random(N) < 0.2] = 0.0
    at_step = rng.random(N) < 0.3                                                 # u on a CDF value
    cols = rng.integers(0, A, N)
    c = np.cumsum(p, axis=1)
    u = np.where(at_step & (c[:, -1] > 0), c[np.arange(N), cols] / np.where(c[:, -1] > 0, c[:, -1], 1.0), u)
    a = kernels.inverse_cdf(p, u, backend="numba")
    b = kernels.inverse_cdf(p, u, backend="numpy")
    assert a.dtype == b.dtype == np.int64 and a.shape == (N,)
    np.testing.assert_array_equal(a, b)
    assert np.all((0 <= a) & (a < A))


def test_inverse_cdf_by_hand():
    p = np.array([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    for backend in ("numba", "numpy"):
        np.testing.assert_array_equal(kernels.inverse_cdf(p, np.array([0.0, 0.0, 0.999]), backend=backend), [0, 1, 1])
        np.testing.assert_array_equal(kernels.inverse_cdf(p, np.array([0.25, 0.5, 0.5]), backend=backend), [1, 1, 1])
        np.testing.assert_array_equal(kernels.inverse_cdf(p, np.array([0.5, 0.99, 0.49]), backend=backend), [2, 1, 0])


def _kernels():
    """Every compiled kernel of the package: ``(module, name, dispatcher)``."""
    return [(m, name, k) for m in MODULES for name, k in vars(m).items() if isinstance(k, CPUDispatcher)]


def test_kernels_are_compiled_with_cache_without_fastmath_and_without_the_gil_each_beside_its_reference():
    names = [name for _, name, _ in _kernels()]
    assert len(names) == len(set(names)) == 32
    for m, name, k in _kernels():
        assert k._cache.__class__.__name__ == "FunctionCache", name                 # cache=True
        assert not k.targetoptions.get("fastmath", False), name
        assert k.targetoptions.get("nogil") is True, name                       # a second thread runs alongside
        ref = {"_dphi_mul_colsum_numba": "_dphi_mul_numpy", "_outer_accumulate_numba": "fisher_accumulate",
               "_log_softmax_row": "_log_softmax_numpy", "_inverse_cdf_row": "_inverse_cdf_numpy",
               "_matmul": "_matmul_numpy", "_matmul_tn": "_matmul_tn_numpy",
               "_add_rows": "_add_rows_numpy", "_pairwise_block": "_pairwise_sum_numpy",
               "_pairwise_sum": "_pairwise_sum_numpy", "_sample_row": "_sample_row_numpy"}.get(
            name, name.replace("_numba", "_numpy"))
        assert callable(getattr(m, ref)) and not isinstance(getattr(m, ref), CPUDispatcher), name


def test_every_kernel_lives_in_the_kernels_package_and_its_table():
    root = pathlib.Path(kernels.__file__).parent
    outside = [p for p in root.parent.rglob("*.py") if root not in p.parents and "@njit" in p.read_text()]
    assert outside == []
    for name in (n for n in kernels.__all__ if n != "STREAM_BYTES"):
        assert f"``{name}``" in kernels.__doc__, name                              # the table lists it
        assert inspect.getmodule(getattr(kernels, name)).__name__.startswith("purepg.kernels.")


def test_kernel_python_source_equals_compiled():
    # the undecorated Python body of the kernel is a third reference for the fill
    sizes = np.array([3, 4, 2], dtype=np.int64)
    rng = np.random.default_rng(0)
    H, DZ = rng.standard_normal((5, 7)), rng.standard_normal((5, 6))
    P = _num_params(sizes)
    a = nn._persample_fill_numba(sizes, H, DZ, np.empty((5, P)), False)
    b = nn._persample_fill_numba.py_func(sizes, H, DZ, np.empty((5, P)), False)
    np.testing.assert_array_equal(a, b)


@given(st_fill_case(), st.integers(0, 3))
def test_streaming_stores_write_the_same_values(case, pad):
    # non-temporal stores are a cache hint: bit-for-bit the plain stores, also into a column view
    sizes, H, DZ = case
    P = _num_params(sizes)
    plain = nn._persample_fill_numba(sizes, H, DZ, np.empty((H.shape[0], P)), False)
    wide = np.full((H.shape[0], P + pad), -1.0)
    nn._persample_fill_numba(sizes, H, DZ, wide[:, :P], True)
    np.testing.assert_array_equal(wide[:, :P], plain)
    np.testing.assert_array_equal(wide[:, P:], -1.0)


def test_large_fill_takes_the_streaming_path_and_matches_reference():
    sizes = np.array([4, 64, 64, 2], dtype=np.int64)                              # the CartPole 64-64 net
    rng = np.random.default_rng(3)
    H, DZ = rng.standard_normal((300, 132)), rng.standard_normal((300, 130))
    out = np.empty((300, _num_params(sizes)))
    assert out.nbytes >= nn.STREAM_BYTES
    kernels.persample_fill(sizes, H, DZ, backend="numba", out=out)
    np.testing.assert_array_equal(out, kernels.persample_fill(sizes, H, DZ, backend="numpy"))


# ------------------------------------------------------------------ categorical distribution ----
@given(st.data())
def test_categorical_kernels_within_8_eps_of_numpy_references(data):
    """The C library's exp/log against NumPy's own (and a pairwise row sum): a few ulp apart, never
    more than ``8 eps (1 + |value|)``, on logits up to +-1e4 (probabilities underflowing to 0)."""
    n, A = data.draw(S.batch_sizes()), data.draw(st.integers(2, S.MAX_DIM))
    z = data.draw(S.logits(n, A, extreme=True))
    a = np.asarray(data.draw(S.discrete_actions(n, A)), dtype=np.int64)
    tol = lambda x: 8 * EPS * (1.0 + np.abs(x))  # noqa: E731
    ls, ls_ref = kernels.log_softmax(z), kernels.log_softmax(z, backend="numpy")
    assert np.all(np.abs(ls - ls_ref) <= tol(ls_ref))
    (lp, g), (lp_ref, g_ref) = (kernels.categorical_log_prob_and_grad(z, a, backend=b) for b in ("numba", "numpy"))
    assert np.all(np.abs(lp - lp_ref) <= tol(lp_ref)) and np.all(np.abs(g - g_ref) <= tol(g_ref))
    np.testing.assert_array_equal(lp, ls[np.arange(n), a])                  # one log-softmax inside and out


# ------------------------------------------------------------------------ discounted sums ----
@given(st.integers(1, 8), st.integers(1, 3), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1))
def test_segment_discounts_by_definition(T, E, c, seed):
    """The references' matrix, entry by entry: ``c^(k-t)`` unless a boundary lies in ``t .. k-1``."""
    breaks = np.random.default_rng(seed).random((T, E)) < 0.3
    M = returns.segment_discounts(c, breaks)
    for e, t, k in np.ndindex(E, T, T):
        want = c ** (k - t) if t <= k and not breaks[t:k, e].any() else 0.0
        assert abs(M[e, t, k] - want) <= 2 * EPS * want                           # pow: at most an ulp


def _sum_bound(c, done, size):
    """``4 (T + 1) eps sum_k M_tk size_k`` (T, E) for ``|x_k| <= size_k``, plus the subnormal spacing."""
    M = returns.segment_discounts(c, done)                                       # (E, T, T)
    return 4 * (done.shape[0] + 1) * EPS * np.einsum("etk,ke->te", M, size) + 1e-300


@given(hnp.arrays(np.float64, st.integers(0, 40), elements=st.floats(-10.0, 10.0)), st.floats(0.0, 1.0))
def test_discount_cumsum_kernel_within_bound_of_the_matrix_sum(x, gamma):
    y, y_ref = kernels.discount_cumsum(x, gamma), kernels.discount_cumsum(x, gamma, backend="numpy")
    assert y.shape == y_ref.shape == x.shape
    assert np.all(np.abs(y - y_ref) <= _sum_bound(gamma, np.zeros((x.size, 1), bool), np.abs(x)[:, None])[:, 0])


@st.composite
def st_segments(draw):
    """(rew, v, v_next) (T, E) in [-10, 10], ``term`` and ``done = term | trunc`` (T, E), gamma, lam."""
    T, E = draw(st.integers(1, 20)), draw(st.integers(1, 4))
    rew, v, v_next = (draw(S.st_matrix(T, E, 10.0)) for _ in range(3))
    term, trunc = (draw(hnp.arrays(np.bool_, (T, E))) for _ in range(2))
    return rew, v, v_next, term, term | trunc, draw(st.floats(0.0, 1.0)), draw(st.floats(0.0, 1.0))


@given(st_segments())
def test_returns_and_gae_kernels_within_bound_of_the_segment_sums(case):
    """Eqs. (4) and (6) of purepg.pg.returns by recursion against eqs. (4) unrolled and (5) as matrix
    products; ``|x_k| <= |r_k| + |v_next_k|`` (returns) and ``|delta_k| <= |r_k| + |v_next_k| + |v_k|``."""
    rew, v, v_next, term, done, gamma, lam = case
    G = [kernels.discounted_returns(rew, v_next, term, done, gamma, backend=b) for b in ("numba", "numpy")]
    assert np.all(np.abs(G[0] - G[1]) <= _sum_bound(gamma, done, np.abs(rew) + np.abs(v_next)))
    A = [kernels.gae_advantages(rew, v, v_next, term, done, gamma, lam, backend=b) for b in ("numba", "numpy")]
    assert np.all(np.abs(A[0] - A[1]) <= _sum_bound(gamma * lam, done, np.abs(rew) + np.abs(v_next) + np.abs(v)))


# ---------------------------------------------------------------------------- rollout step ----
@given(st.integers(1, 9), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_step_flags_kernel_equals_numpy_reference(E, d, seed):
    """The per-step finiteness / episode-end test, with NaN and +-inf planted in observations or rewards
    and every combination of done flags: the same two booleans."""
    rng = np.random.default_rng(seed)
    x, r = rng.standard_normal((E, d)), rng.standard_normal(E)
    for arr in (x.reshape(-1), r):
        if rng.random() < 0.4:
            arr[rng.integers(arr.size)] = rng.choice([np.nan, np.inf, -np.inf])
    term, trunc = rng.random(E) < 0.2, rng.random(E) < 0.2
    got, want = kernels.step_flags(x, r, term, trunc), kernels.step_flags(x, r, term, trunc, backend="numpy")
    assert got == want == (bool(np.isfinite(x).all() and np.isfinite(r).all()), bool(np.any(term | trunc)))


# -------------------------------------------------------------------------- PPO clip terms ----
@given(st.integers(0, 300), st.floats(0.01, 1.0), st.integers(0, 2**32 - 1))
def test_clip_terms_kernel_equals_numpy_reference_bit_for_bit(n, eps, seed):
    """The same bits for L, w and the clip fraction, with ratios on and next to the clip boundaries,
    exact ties (A = 0, r = 1) and signed zeros."""
    rng = np.random.default_rng(seed)
    r = rng.choice([1.0 - eps, 1.0 + eps, 1.0, np.nextafter(1.0 + eps, 2.0), np.nextafter(1.0 - eps, 0.0)], n)
    r = np.where(rng.random(n) < 0.5, r, np.exp(rng.normal(0.0, 0.5, n)))
    A = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 8, n)
    A = np.where(rng.random(n) < 0.2, rng.choice([0.0, -0.0], n), A)
    got, want = kernels.clip_terms(r, A, eps), kernels.clip_terms(r, A, eps, backend="numpy")
    if n == 0:
        assert all(np.isnan(x) for x in (got[0], want[0], got[2], want[2])) and got[1].shape == (0,)
        return
    assert got[0] == want[0] and np.signbit(got[0]) == np.signbit(want[0]) and got[2] == want[2]
    np.testing.assert_array_equal(got[1], want[1])
    assert np.array_equal(np.signbit(got[1]), np.signbit(want[1]))


Z2, B1 = np.zeros((1, 2)), np.zeros((1, 1), dtype=bool)
NOT_A_BACKEND = r"backend: expected 'numba' or 'numpy', got 'c'\. Fix"


@pytest.mark.parametrize("call, match", [
    (lambda: kernels.persample_fill(np.array([2, 2]), np.zeros((1, 2)), np.zeros((1, 2)), backend="torch"),
     r"backend: expected 'numba' or 'numpy', got 'torch'\. Fix"),
    (lambda: kernels.fisher_accumulate(np.zeros((1, 2)), np.zeros((2, 2)), backend="blas"),
     r"backend: expected 'numba', 'numpy' or 'loops', got 'blas'\. Fix"),
    (lambda: elementwise.bias_tanh(np.zeros((1, 2)), np.zeros(2), backend="c"), "backend: expected"),
    (lambda: kernels.dphi_mul(np.zeros((1, 2)), np.zeros((1, 2)), "tanh", backend="c"),
     r"backend: expected 'numba' or 'numpy', got 'c'\. Fix"),
    (lambda: kernels.adam_update(*[np.zeros(1)] * 4, 1, 1e-3, 0.9, 0.999, 1e-8, backend="c"),
     r"backend: expected 'numba' or 'numpy', got 'c'\. Fix"),
    (lambda: kernels.inverse_cdf(np.ones((1, 2)) / 2, np.zeros(1), backend="c"), NOT_A_BACKEND),
    (lambda: kernels.log_softmax(Z2, backend="c"), NOT_A_BACKEND),
    (lambda: kernels.categorical_log_prob_and_grad(Z2, np.zeros(1, np.int64), backend="c"), NOT_A_BACKEND),
    (lambda: kernels.discount_cumsum(np.zeros(1), 0.9, backend="c"), NOT_A_BACKEND),
    (lambda: kernels.discounted_returns(Z2[:, :1], Z2[:, :1], B1, B1, 0.9, backend="c"), NOT_A_BACKEND),
    (lambda: kernels.gae_advantages(*[Z2[:, :1]] * 3, B1, B1, 0.9, 0.9, backend="c"), NOT_A_BACKEND),
    (lambda: kernels.step_flags(Z2, np.zeros(1), B1[0], B1[0], backend="c"), NOT_A_BACKEND),
    (lambda: kernels.clip_terms(np.ones(1), np.ones(1), 0.2, backend="c"), NOT_A_BACKEND),
    (lambda: kernels.mlp_forward(np.zeros(1), None, (), backend="c"), NOT_A_BACKEND),
    (lambda: kernels.mlp_backward(np.zeros(1), None, Z2, (), (), np.zeros(1), backend="c"), NOT_A_BACKEND),
    (lambda: kernels.mlp_jvp(np.zeros(1), np.zeros(1), None, (), (), (), backend="c"), NOT_A_BACKEND),
    (lambda: kernels.minibatch_rows(np.zeros(1, np.int64), (Z2,) * 6, None, backend="c"), NOT_A_BACKEND),
    (lambda: kernels.categorical_act(np.zeros(1), np.zeros((1, 4), np.int64), False, Z2, np.zeros(1), backend="c"),
     NOT_A_BACKEND),
    (lambda: acting.categorical_act_blas(np.zeros(1), None, (Z2,), np.zeros(1), backend="c"), NOT_A_BACKEND),
    (lambda: adam.clip_adam_update(*[np.zeros(1)] * 4, 1, 1e-3, 0.9, 0.999, 1e-8, 0.5, backend="c"), NOT_A_BACKEND),
])
def test_bad_backend_messages(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@given(S.layer_sizes(), st.integers(2, 5), st.sampled_from([False, True]), st.integers(1, 8),
       st.floats(0.1, 3.0), st.integers(0, 2**32 - 1))
def test_categorical_act_numba_equals_numpy_reference(sizes, A, relu, E, scale, seed):
    """The acting pass: the same actions as the reference pass (BLAS products, np.tanh, NumPy's exp) for
    random weights, observations and uniforms. They may differ only if a uniform falls within rounding
    (~1e-15) of a step of the CDF, which random uniforms do not (acting.py's docstring); the uniforms come
    from a seeded generator, not from Hypothesis, which would aim at the steps themselves."""
    rng = np.random.default_rng(seed)
    dims = [*sizes[:-1], A]                                        # a categorical head of A logits
    layers = [(rng.standard_normal((o, i)) * scale / np.sqrt(i), rng.standard_normal(o) * scale)
              for i, o in zip(dims[:-1], dims[1:])]
    theta_t, layout = acting.transposed_weights(layers)
    x, u = rng.standard_normal((E, dims[0])) * 2.0, rng.random(E)
    a = kernels.categorical_act(theta_t, layout, relu, x, u)
    np.testing.assert_array_equal(a, kernels.categorical_act(theta_t, layout, relu, x, u, backend="numpy"))
    assert a.dtype == np.int64 and a.shape == (E,) and ((0 <= a) & (a < A)).all()


@settings(deadline=None)
@given(S.layer_sizes(), st.integers(2, 5), st.integers(2, 16), st.floats(0.1, 3.0), st.integers(0, 2**32 - 1))
def test_categorical_act_blas_equals_numpy_reference(sizes, A, E, scale, seed):
    """The acting pass with BLAS products: its logits are the one-call forward pass's (bit for bit with
    NumPy's, tests/test_passes.py), so the actions are the reference's; only the exponential (the C
    library's against NumPy's) differs, as for ``categorical_act``, and random uniforms do not fall
    within its rounding of a step of the CDF."""
    if min(sizes[1:-1], default=0) < 2:
        return                                                       # outside passes.fits: no one-call pass
    rng = np.random.default_rng(seed)
    net = MLP((*sizes[:-1], A))
    theta = net.init(rng) * scale + 0.1 * rng.standard_normal(net.num_params)
    x, u = rng.standard_normal((E, sizes[0])) * 2.0, rng.random(E)
    layout = passes.layout_of(net.sizes)
    hs = (x, *(np.empty((E, d)) for d in net.sizes[1:]))
    a = acting.categorical_act_blas(theta, layout, hs, u)
    np.testing.assert_array_equal(a, acting.categorical_act_blas(theta, layout, hs, u, backend="numpy"))
    assert a.dtype == np.int64 and a.shape == (E,) and ((0 <= a) & (a < A)).all()


def test_transposed_weights_holds_each_layer_transposed_then_its_bias():
    layers = [(np.arange(6.0).reshape(3, 2), np.array([10.0, 11.0, 12.0])), (np.array([[1.0, 2.0, 3.0]]), np.array([9.0]))]
    theta_t, layout = acting.transposed_weights(layers)
    np.testing.assert_array_equal(theta_t, [0, 2, 4, 1, 3, 5, 10, 11, 12, 1, 2, 3, 9])
    np.testing.assert_array_equal(layout, [[0, 6, 2, 3], [9, 12, 3, 1]])
