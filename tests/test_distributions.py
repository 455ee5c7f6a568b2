"""purepg.model.distributions: stability, derivatives (C1)-(C4), (G1)-(G4), identities and sampling.

Finite-difference tolerances (h = 1e-6): rounding eps |f| / h ~ 2.2e-10 |f| and truncation h^2/6 |f'''|.
Moderate logits (|z| <= 30) and Gaussian parameters from the strategies (|mu|, |a| <= 3, sigma in
[0.22, 2.7], so |f| <= ~400 and |f'''| <= ~1e3) put both terms below ~1e-7: we use ``rtol=1e-6``,
``atol=1e-8 (1 + max|f|)``. Exact identities (sums over actions) are compared at 1e-12.
Sampling tests use fixed seeds and bounds of 5 standard errors per entry: a correct sampler fails one
entry with probability ~6e-7.
"""
from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import strategies as S
from helpers.finite_diff import assert_fd_close, gradient
from purepg.model import distributions as D


@st.composite
def st_logits(draw, extreme=True):
    n, A = draw(S.batch_sizes()), draw(st.integers(2, S.MAX_DIM))
    return draw(S.logits(n, A, extreme=extreme))


@st.composite
def st_gauss(draw):
    """(mu (N, d), log_std (d,), a (N, d)) within the strategy bounds."""
    n, d = draw(S.batch_sizes()), draw(st.integers(1, S.MAX_DIM))
    return draw(S.box_actions(n, d)), draw(S.log_stds(d)), draw(S.box_actions(n, d))


# ----------------------------------------------------------------- log-softmax stability -----
def _log_softmax_decimal(row):
    """log p_a = z_a - log sum_b exp(z_b), at 60 significant digits from the exact binary logits."""
    with localcontext() as ctx:
        ctx.prec = 60
        zs = [Decimal(float(z)) for z in row]
        m = max(zs)
        lse = m + sum((z - m).exp() for z in zs).ln()
        return [float(z - lse) for z in zs]


@given(st_logits(extreme=True))
def test_log_softmax_is_finite_and_exact_up_to_1e4(z):
    # exact: within 4 ulp of the 60-digit value (the shift z - max z rounds once, exp/log/sum a few eps)
    lp = D.log_softmax(z)                                                        # (N, A)
    ref = np.array([_log_softmax_decimal(r) for r in z])
    assert np.all(np.isfinite(lp)) and np.all(lp <= 0.0)
    assert np.all(np.abs(lp - ref) <= 4 * np.finfo(float).eps * (1.0 + np.abs(ref)))
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=0, atol=1e-15 * z.shape[1])


@given(st_logits(extreme=True), st.sampled_from(["numba", "numpy"]))
def test_reference_log_softmax_is_as_exact(z, backend):
    # the NumPy reference meets the same 4-ulp bound as the kernel above
    lp = D.log_softmax(z, backend=backend)
    ref = np.array([_log_softmax_decimal(r) for r in z])
    assert np.all(np.abs(lp - ref) <= 4 * np.finfo(float).eps * (1.0 + np.abs(ref)))


@given(st_logits(extreme=True), st.data())
def test_categorical_score_is_e_a_minus_p(z, data):
    """(C1) g = e_a - p: each row sums to 0, g_a = 1 - p_a in [0, 1], the others -p_b in [-1, 0]. Row sum:
    log p has error <= 4 eps (1 + |log p|) (test above), so sum_b |dp_b| <= 4 eps (1 + H) <= 4 eps
    (1 + log A), plus one ulp per exp and A roundings in the sum: < 8 (A + 1) eps for every A."""
    a = np.asarray(data.draw(S.discrete_actions(z.shape[0], z.shape[1])), dtype=np.int64)
    g = D.categorical_log_prob_grad(z, a)                                        # (N, A)
    A = z.shape[1]
    assert np.all(np.abs(g.sum(axis=1)) <= 8 * (A + 1) * np.finfo(float).eps)
    own = np.zeros(z.shape, dtype=bool)
    own[np.arange(z.shape[0]), a] = True
    assert np.all((g[own] >= 0) & (g[own] <= 1)) and np.all((g[~own] >= -1) & (g[~own] <= 0))


def test_categorical_kernel_refuses_an_action_out_of_range():
    with pytest.raises(IndexError):
        D.categorical_log_prob_and_grad(np.zeros((2, 3)), np.array([0, 3]))
    for f in (D.log_softmax, D.categorical_log_prob_and_grad):
        with pytest.raises(ValueError, match=r"backend: expected 'numba' or 'numpy', got 'c'\. Fix: "):
            f(np.zeros((1, 2)), *(() if f is D.log_softmax else (np.zeros(1, np.int64),)), backend="c")


def test_log_softmax_extreme_values_written_out():
    z = np.array([[1e4, -1e4], [1e4, 1e4], [-1e4, -1e4], [0.0, 1e4]])
    lp = D.log_softmax(z)
    np.testing.assert_array_equal(lp[0], [0.0, -2e4])
    np.testing.assert_allclose(lp[1:3], -np.log(2.0), rtol=1e-16)
    np.testing.assert_array_equal(lp[3], [-1e4, 0.0])
    assert np.all(np.isfinite(D.categorical_entropy(z))) and np.all(np.isfinite(D.categorical_kl(z, z[::-1])))
    np.testing.assert_array_equal(D.categorical_log_prob_grad(z[:1], np.array([1])), [[-1.0, 1.0]])


@given(st_logits(extreme=True), st_logits(extreme=True))
def test_entropy_and_kl_are_finite_and_in_range_at_extremes(z, zq):
    zq = np.resize(zq, z.shape)
    H = D.categorical_entropy(z)
    assert np.all(np.isfinite(H)) and np.all(H >= 0) and np.all(H <= np.log(z.shape[1]) + 1e-12)
    kl = D.categorical_kl(z, zq)
    assert np.all(np.isfinite(kl)) and np.all(kl >= -1e-12 * (1 + np.abs(zq).max()))
    assert np.all(D.categorical_kl(z, z) == 0.0)


# ------------------------------------------------------------------- categorical, vs FD ------
@given(st_logits(extreme=False), st.data())
def test_categorical_score_matches_fd(z, data):                                 # (C1)
    a = data.draw(S.discrete_actions(z.shape[0], z.shape[1]))
    g = D.categorical_log_prob_grad(z, a)                                        # (N, A)
    for i in range(z.shape[0]):
        f = lambda zi: D.categorical_log_prob(zi[None], a[i:i + 1])[0]
        assert_fd_close(g[i], gradient(f, z[i]), abs(f(z[i])))


@given(st_logits(extreme=False))
def test_categorical_entropy_grad_matches_fd(z):                                # (C2)
    g = D.categorical_entropy_grad(z)
    for i in range(z.shape[0]):
        f = lambda zi: D.categorical_entropy(zi[None])[0]
        assert_fd_close(g[i], gradient(f, z[i]), abs(f(z[i])))


@given(st_logits(extreme=False), st_logits(extreme=False))
def test_categorical_kl_grad_matches_fd(zp, zq):                                # (C3)
    zq = np.resize(zq, zp.shape)
    g = D.categorical_kl_grad(zp, zq)
    for i in range(zp.shape[0]):
        f = lambda zi: D.categorical_kl(zp[i:i + 1], zi[None])[0]
        assert_fd_close(g[i], gradient(f, zq[i]), abs(f(zq[i])) + np.abs(zq[i]).max())
    np.testing.assert_array_equal(D.categorical_kl_grad(zp, zp), 0.0)          # zero gradient at q = p


# -------------------------------------------------------- categorical, exact identities -------
@given(st_logits(extreme=True))
def test_categorical_score_mean_zero_and_fisher_exact(z):                       # (C4), summing over actions
    N, A = z.shape
    p = np.exp(D.log_softmax(z))                                                 # (N, A)
    G = np.stack([D.categorical_log_prob_grad(z, np.full(N, a)) for a in range(A)], axis=1)   # (N, A, A)
    np.testing.assert_allclose(np.einsum("na,nab->nb", p, G), 0.0, atol=1e-12)  # E_a[score] = 0
    M = np.einsum("na,nab,nac->nbc", p, G, G)                                    # E_a[score score^T]
    np.testing.assert_allclose(D.categorical_fisher(z), M, rtol=0, atol=1e-12)
    R = D.categorical_fisher_factor(z)                                           # (N, A, A)
    np.testing.assert_allclose(np.einsum("nka,nkb->nab", R, R), M, rtol=0, atol=1e-12)
    u = np.linspace(-1, 1, N * A).reshape(N, A)
    cat = D.Categorical(A)
    np.testing.assert_allclose(cat.fisher_out_vp(z, None, u), np.einsum("nab,nb->na", M, u), atol=1e-12)


# ---------------------------------------------------------------------- gaussian, vs FD ------
@given(st_gauss())
def test_gaussian_score_matches_fd(case):                                       # (G1)
    mu, ls, a = case
    g_mu, g_ls = D.gaussian_log_prob_grad(mu, ls, a)                             # (N, d) each
    for i in range(mu.shape[0]):
        f_mu = lambda m: D.gaussian_log_prob(m[None], ls, a[i:i + 1])[0]
        f_ls = lambda s: D.gaussian_log_prob(mu[i:i + 1], s, a[i:i + 1])[0]
        assert_fd_close(g_mu[i], gradient(f_mu, mu[i]), abs(f_mu(mu[i])))
        assert_fd_close(g_ls[i], gradient(f_ls, ls), abs(f_ls(ls)))


@given(st_gauss(), S.log_stds(S.MAX_DIM), st.data())
def test_gaussian_kl_grad_matches_fd_and_vanishes_at_equality(case, ls1_full, data):   # (G3)
    mu2, ls2, _ = case
    mu1 = data.draw(S.box_actions(*mu2.shape))
    ls1 = ls1_full[:ls2.shape[0]]
    g_mu, g_ls = D.gaussian_kl_grad(mu1, ls1, mu2, ls2)
    for i in range(mu2.shape[0]):
        f_mu = lambda m: D.gaussian_kl(mu1[i:i + 1], ls1, m[None], ls2)[0]
        f_ls = lambda s: D.gaussian_kl(mu1[i:i + 1], ls1, mu2[i:i + 1], s)[0]
        assert_fd_close(g_mu[i], gradient(f_mu, mu2[i]), abs(f_mu(mu2[i])))
        assert_fd_close(g_ls[i], gradient(f_ls, ls2), abs(f_ls(ls2)))
    kl = D.gaussian_kl(mu1, ls1, mu2, ls2)
    assert np.all(kl >= -1e-12)
    np.testing.assert_allclose(D.gaussian_kl(mu2, ls2, mu2, ls2), 0.0, atol=1e-14)
    z_mu, z_ls = D.gaussian_kl_grad(mu2, ls2, mu2, ls2)
    np.testing.assert_allclose(z_mu, 0.0, atol=1e-14)
    np.testing.assert_allclose(z_ls, 0.0, atol=1e-14)


@given(st_gauss())
def test_gaussian_entropy_grad_matches_fd(case):                                 # (G2)
    mu, ls, _ = case
    dist = D.DiagGaussian(ls.shape[0])
    g_mu, g_ls = dist.entropy_grad(mu, ls)
    for i in range(mu.shape[0]):
        f = lambda s: D.gaussian_entropy(mu[i:i + 1], s)[0]
        assert_fd_close(g_ls[i], gradient(f, ls), abs(f(ls)))
    assert np.all(g_mu == 0.0)


# ---------------------------------------------------- gaussian, Monte Carlo identities -------
def _mc_close(samples, expected, k=5.0):
    """Mean over axis 0 of ``samples`` within k standard errors of ``expected``, entry by entry."""
    m = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    assert np.all(np.abs(m - expected) <= k * se + 1e-15), (m, expected, se)


@pytest.mark.parametrize("mu, ls", [([0.3, -1.0], [0.2, -0.7]), ([2.0], [-1.5]), ([0.0, 0.0, 0.0], [1.0, 0.0, -1.0])])
def test_gaussian_score_mean_zero_and_fisher_by_monte_carlo(mu, ls):            # (G4)
    # fixed seed; M = 2e5 samples; each entry of E[score] and E[score score^T] within 5 standard errors
    mu, ls = np.array([mu]), np.array(ls)
    d, M = ls.shape[0], 200_000
    a = D.gaussian_sample(np.repeat(mu, M, axis=0), ls, np.random.default_rng(20240601))   # (M, d)
    g_mu, g_ls = D.gaussian_log_prob_grad(mu, ls, a)
    g = np.concatenate([g_mu, g_ls], axis=1)                                     # (M, 2d)
    _mc_close(g, 0.0)
    F = np.zeros((2 * d, 2 * d))
    F[:d, :d] = np.diag(np.exp(-2 * ls))
    F[d:, d:] = 2 * np.eye(d)
    _mc_close((g[:, :, None] * g[:, None, :]).reshape(M, -1), F.ravel())
    R, F_extra = D.DiagGaussian(d).fisher_factor(mu, ls)                          # the exact blocks
    np.testing.assert_allclose(R[0].T @ R[0], F[:d, :d], rtol=1e-15)
    np.testing.assert_array_equal(F_extra, F[d:, d:])
    # entropy = -E[log pi] and KL(p||q) = E_p[log p - log q], also by Monte Carlo
    _mc_close(-D.gaussian_log_prob(mu, ls, a), D.gaussian_entropy(mu, ls)[0])
    mu_q, ls_q = mu + 0.3, ls - 0.2
    _mc_close(D.gaussian_log_prob(mu, ls, a) - D.gaussian_log_prob(mu_q, ls_q, a), D.gaussian_kl(mu, ls, mu_q, ls_q)[0])


# ---------------------------------------------------------------------------- sampling ------
@pytest.mark.parametrize("z", [[0.0, 1.0, -2.0, 0.5], [3.0, 0.0], [-1e4, 0.0, 1.0, -1e4, 2.0]])
def test_categorical_sampling_frequencies(z):
    # fixed seed, M = 1e5 draws; every action's frequency within 5 standard errors sqrt(p(1-p)/M)
    z = np.array([z])
    M = 100_000
    p = np.exp(D.log_softmax(z))[0]
    a = D.categorical_sample(np.repeat(z, M, axis=0), np.random.default_rng(7))
    assert a.dtype == np.int64 and a.min() >= 0 and a.max() < z.shape[1]
    freq = np.bincount(a, minlength=z.shape[1]) / M
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / M))
    assert np.all(freq[p == 0.0] == 0.0)                                         # impossible actions never drawn


def test_categorical_sampling_deterministic_given_rng():
    z = np.zeros((50, 3))
    a1 = D.categorical_sample(z, np.random.default_rng(3))
    assert np.array_equal(a1, D.categorical_sample(z, np.random.default_rng(3)))
    assert not np.array_equal(a1, D.categorical_sample(z, np.random.default_rng(4)))
    assert np.all(D.categorical_sample(np.array([[1e4, -1e4, 0.0]] * 20), np.random.default_rng(0)) == 0)


def test_gaussian_sampling_mean_and_variance():
    # fixed seed, M = 1e5; mean within 5 sigma / sqrt(M), variance within 5 sigma^2 sqrt(2 / (M - 1))
    mu, ls, M = np.array([[1.0, -2.0, 0.0]]), np.array([0.5, -1.0, 0.0]), 100_000
    a = D.gaussian_sample(np.repeat(mu, M, axis=0), ls, np.random.default_rng(11))
    s2 = np.exp(2 * ls)
    assert np.all(np.abs(a.mean(axis=0) - mu[0]) <= 5 * np.sqrt(s2 / M))
    assert np.all(np.abs(a.var(axis=0, ddof=1) - s2) <= 5 * s2 * np.sqrt(2 / (M - 1)))
