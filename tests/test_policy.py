"""purepg.model.policy: score, entropy, KL, Fisher and FVP against finite differences; identities; backends;
sampling; bad input.

Tolerances
----------
First derivatives (h = 1e-6): as in tests/test_nn.py, rounding eps |f| / h ~ 2.2e-10 |f| and truncation
h^2/6 |f'''| are below 1e-6 for the strategy bounds; ``rtol=1e-6``, ``atol=1e-8 (1 + max|f|)``.
Hessian (``finite_diff.hessian``, h = 1e-4): truncation h^2/12 |f''''|. The KL's fourth derivative
grows like |d out / d theta|^4 while the Fisher grows like |d out / d theta|^2, so the relative error is
~ (h |d out / d theta|)^2 / 12; with theta in [-1, 1], widths <= 3 and |obs| <= 3, |d out / d theta| <= 40
and that is <= 1.4e-5. Rounding is ~ eps |log p| / h^2 ~ 1e-6 |log p|. We use ``1e-4 (1 + max|F|)``.
Exact identities (no finite differences) compare at 1e-12 relative to the magnitudes summed.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import purepg
from helpers import strategies as S
from helpers.finite_diff import assert_fd_close, directional, gradient, hessian


def smooth_states(pol, theta, obs, margin=1e-3):
    """States whose finite differences cross no relu kink: every hidden |z| > margin (all, for tanh).

    With |theta| <= 2, |obs| <= 3, widths <= 6 and |v_k| <= 1 a step h = 1e-6 moves a hidden
    pre-activation by at most ~3.2e-4 (see tests/test_nn.py), below the default margin 1e-3.
    """
    ok = np.ones(obs.shape[0], dtype=bool)
    if pol.net.activation == "tanh":
        return ok
    h, off = obs, 0
    for d_in, d_out in zip(pol.net.sizes[:-2], pol.net.sizes[1:-1]):
        W = theta[off:off + d_out * d_in].reshape(d_out, d_in)
        z = h @ W.T + theta[off + d_out * d_in:off + d_out * (d_in + 1)]
        off += d_out * (d_in + 1)
        ok &= np.all(np.abs(z) > margin, axis=1)
        h = np.maximum(z, 0.0)
    return ok


def smooth_case(case, margin=1e-3):
    """The case restricted to its smooth states (at least one, else the example is rejected)."""
    ok = smooth_states(case.pol, case.theta, case.obs, margin)
    assume(ok.any())
    return case._replace(obs=case.obs[ok], act=case.act[ok])


def with_backend(pol, backend):
    return purepg.Policy(pol.net, pol.dist, pol.log_std_init, backend)


st_dir = st.data()   # directions v are drawn inside the test, with |v_k| <= 1


# -------------------------------------------------------------------- derivatives vs FD ------
@given(S.policy_cases(), st_dir)
def test_score_rows_are_fd_gradients_of_log_prob(case, data):
    pol, theta, obs, act = smooth_case(case)
    S_ = pol.score(theta, obs, act)                                              # (N, P)
    f = lambda t: pol.log_prob(t, obs, act)                                      # (N,)
    f_scale = np.abs(f(theta)).max()
    assert_fd_close(S_, gradient(f, theta), f_scale)                             # per coordinate
    v = data.draw(S.thetas(pol.num_params, 1.0))
    assert_fd_close(S_ @ v, directional(f, theta, v), f_scale)                   # directional


@given(S.policy_cases(), st_dir)
def test_log_prob_grad_is_weighted_score(case, data):
    pol, theta, obs, act = case
    w = data.draw(S.st_vector(obs.shape[0], 2.0))
    S_ = pol.score(theta, obs, act)
    g = pol.log_prob_grad(theta, obs, act, w)
    np.testing.assert_allclose(g, w @ S_, rtol=1e-12, atol=1e-12 * (1 + np.abs(w) @ np.abs(S_)).max())
    pol, theta, obs, act = smooth_case(case)
    w = w[:obs.shape[0]]
    f = lambda t: w @ pol.log_prob(t, obs, act)
    assert_fd_close(pol.log_prob_grad(theta, obs, act, w), gradient(f, theta), np.abs(pol.log_prob(theta, obs, act)).sum())


@given(S.policy_cases(), st_dir)
def test_fused_evaluations_equal_the_separate_ones(case, data):
    """log_prob_with_vjp and kl_and_grad share a forward pass; they must return the very same numbers."""
    pol, theta, obs, act = case
    w = data.draw(S.st_vector(obs.shape[0], 2.0))
    logp, vjp = pol.log_prob_with_vjp(theta, obs, act)
    np.testing.assert_array_equal(logp, pol.log_prob(theta, obs, act))
    np.testing.assert_array_equal(vjp(w), pol.log_prob_grad(theta, obs, act, w))
    theta_new = theta + data.draw(S.thetas(pol.num_params, 0.3))
    D, g = pol.kl_and_grad(theta, theta_new, obs)
    assert D == pol.kl(theta, theta_new, obs)
    np.testing.assert_array_equal(g, pol.kl_grad(theta, theta_new, obs))
    with pytest.raises(ValueError, match=r"w: expected shape \(%d,\)" % obs.shape[0]):
        vjp(np.zeros(obs.shape[0] + 1))
    logp_u, vjp_u = pol.log_prob_with_vjp(theta, obs, act, check=False)    # validation skipped, same bits
    np.testing.assert_array_equal(logp_u, logp)
    np.testing.assert_array_equal(vjp_u(w), vjp(w))


@given(S.policy_cases(), st.integers(0, 2**32 - 1))
def test_unchecked_sampling_draws_the_same_actions(case, seed):
    pol, theta, obs, _ = case
    a = pol.sample(theta, obs, np.random.default_rng(seed))
    np.testing.assert_array_equal(pol.sample(theta, obs, np.random.default_rng(seed), check=False), a)


@given(S.policy_cases(), st_dir)
def test_fisher_operator_is_the_fisher_and_reusable(case, data):
    """One forward pass, then products: F v against the explicit Fisher (tolerance as in
    test_fvp_equals_fisher_times_v); a product repeated after another is the same to the last bit
    (the cached activations are only read, never overwritten by the next product)."""
    pol, theta, obs, _ = case
    F, F_v = pol.fisher(theta, obs), pol.fisher_operator(theta, obs)
    v1, v2 = (data.draw(S.thetas(pol.num_params, 1.0)) for _ in range(2))
    first = F_v(v1)
    np.testing.assert_allclose(first, F @ v1, rtol=1e-10, atol=1e-12 * (1 + np.abs(F) @ np.abs(v1)).max())
    np.testing.assert_allclose(F_v(v2), F @ v2, rtol=1e-10, atol=1e-12 * (1 + np.abs(F) @ np.abs(v2)).max())
    np.testing.assert_array_equal(F_v(v1), first)
    with pytest.raises(ValueError, match=r"v: expected shape \(%d,\)" % pol.num_params):
        F_v(np.zeros(pol.num_params + 1))


@given(S.policy_cases())
def test_entropy_grad_matches_fd(case):
    pol, theta, obs, _ = smooth_case(case)
    f = lambda t: pol.entropy(t, obs).mean()
    assert_fd_close(pol.entropy_grad(theta, obs), gradient(f, theta), abs(f(theta)))


@given(S.policy_cases(), st_dir)
def test_kl_grad_matches_fd(case, data):
    pol, theta_old, obs, _ = smooth_case(case)
    theta_new = theta_old + data.draw(S.thetas(pol.num_params, 0.3))             # log_std stays in [-1.8, 1.3]
    assume(smooth_states(pol, theta_new[:pol.net.num_params], obs).all())
    f = lambda t: pol.kl(theta_old, t, obs)
    f_scale = np.abs(pol.net.forward(theta_new[:pol.net.num_params], obs)[0]).max() + abs(f(theta_new))
    assert_fd_close(pol.kl_grad(theta_old, theta_new, obs), gradient(f, theta_new), f_scale)


@given(S.policy_cases())
def test_kl_to_itself_is_zero_with_zero_gradient(case):
    pol, theta, obs, _ = case
    assert abs(pol.kl(theta, theta, obs)) <= 1e-15
    g = pol.kl_grad(theta, theta, obs)
    np.testing.assert_allclose(g, 0.0, atol=1e-14 * (1 + np.abs(pol.score(theta, obs, case.act)).max()))


@given(S.policy_cases(theta_bound=1.0, max_width=3))
def test_fisher_is_fd_hessian_of_kl(case):
    pol, theta, obs, _ = smooth_case(case, margin=1e-2)   # h = 1e-4 moves z by <= 2e-4 * 20 = 4e-3 < 1e-2
    F = pol.fisher(theta, obs)                                                   # (P, P)
    H = hessian(lambda t: pol.kl(theta, t, obs), theta)
    np.testing.assert_allclose(F, H, rtol=0, atol=1e-4 * (1 + np.abs(F).max()))
    np.testing.assert_array_equal(F, F.T)
    assert np.linalg.eigvalsh(F).min() >= -1e-12 * (1 + np.abs(F).max())        # positive semi-definite


@given(S.policy_cases(), st_dir)
def test_fvp_equals_fisher_times_v(case, data):
    pol, theta, obs, _ = case
    v = data.draw(S.thetas(pol.num_params, 1.0))
    F = pol.fisher(theta, obs)
    np.testing.assert_allclose(pol.fvp(theta, obs, v), F @ v, rtol=1e-10, atol=1e-12 * (1 + np.abs(F) @ np.abs(v)).max())


@given(S.policy_cases(), st_dir)
def test_fvp_is_the_fd_hessian_of_kl_times_v(case, data):
    """F v = d/dh grad_theta' D(theta, theta + h v) at h = 0 (F is the Hessian of the mean KL at
    theta' = theta): a route that never forms F nor runs the JVP/VJP of fvp. Central difference of the
    analytic KL gradient (itself checked against finite differences of the KL above), h = 1e-6: the
    tolerance of tests/helpers/finite_diff.py, with the per-state gradients (score magnitudes) the
    KL gradient sums as the scale of its rounding."""
    pol, theta, obs, act = smooth_case(case)
    v = data.draw(S.thetas(pol.num_params, 1.0))
    Fv = directional(lambda t: pol.kl_grad(theta, t, obs), theta, v)
    assert_fd_close(pol.fvp(theta, obs, v), Fv, np.abs(pol.score(theta, obs, act)).max())


@given(S.policy_cases())
def test_empirical_fisher_is_mean_score_outer_product(case):
    pol, theta, obs, act = case
    S_ = pol.score(theta, obs, act)
    E = sum(np.outer(s, s) for s in S_) / obs.shape[0]
    np.testing.assert_allclose(pol.empirical_fisher(theta, obs, act), E, rtol=1e-12, atol=1e-12 * (1 + np.abs(E).max()))


# ----------------------------------------------------------------- identities of the score ---
@given(S.policy_cases(kind="categorical"))
def test_categorical_score_mean_zero_and_fisher_exact(case):
    # E_{a~pi}[score] = 0 and mean_s E_{a~pi}[score score^T] = fisher, summing over the A actions exactly
    pol, theta, obs, _ = case
    N, A = obs.shape[0], pol.act_dim
    obs_rep = np.repeat(obs, A, axis=0)                                          # (N A, d): state i, action a
    act_all = np.tile(np.arange(A), N)                                           # (N A,)
    p = np.exp(pol.log_prob(theta, obs_rep, act_all))                            # (N A,)
    S_ = pol.score(theta, obs_rep, act_all)                                      # (N A, P)
    scale = 1 + np.abs(S_).max() ** 2
    np.testing.assert_allclose((p[:, None] * S_).reshape(N, A, -1).sum(axis=1), 0.0, atol=1e-12 * scale)
    F_exact = (p[:, None] * S_).T @ S_ / N
    np.testing.assert_allclose(pol.fisher(theta, obs), F_exact, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("hidden, activation", [((4,), "tanh"), ((3, 3), "relu")])
def test_gaussian_score_mean_zero_and_fisher_by_monte_carlo(hidden, activation):
    # fixed seeds; M = 40000 actions per state; every entry within 5 standard errors
    pol = purepg.GaussianPolicy(3, 2, hidden, activation, log_std_init=-0.3)
    rng = np.random.default_rng(12345)
    theta = pol.init(rng) + 0.3 * rng.standard_normal(pol.num_params)
    obs = rng.uniform(-2, 2, (3, 3))
    M = 40_000
    obs_rep = np.repeat(obs, M, axis=0)                                          # (3 M, 3)
    act = pol.sample(theta, obs_rep, rng)                                        # (3 M, 2)
    S_ = pol.score(theta, obs_rep, act)                                          # (3 M, P)
    se_mean = S_.std(axis=0, ddof=1) / np.sqrt(S_.shape[0])
    assert np.all(np.abs(S_.mean(axis=0)) <= 5 * se_mean)
    # E_s E_a[S S^T]: with M draws per state, the mean of all 3M outer products estimates fisher; the
    # variance of entry (a, b) is E[S_a^2 S_b^2] - E[S_a S_b]^2 (formed as matrix products, not 3M outers)
    n = S_.shape[0]
    mean = S_.T @ S_ / n                                                         # (P, P)
    se = np.sqrt(np.maximum((S_ ** 2).T @ S_ ** 2 / n - mean ** 2, 0.0) * n / (n - 1) / n)
    assert np.all(np.abs(mean - pol.fisher(theta, obs)) <= 5 * se + 1e-14)


# ------------------------------------------------------------------------ backends ----------
@given(S.policy_cases(), st_dir)
def test_numpy_backend_equals_numba_backend(case, data):
    pol, theta, obs, act = case
    ref = with_backend(pol, "numpy")
    v = data.draw(S.thetas(pol.num_params, 1.0))
    for name, args in (("score", (theta, obs, act)), ("fisher", (theta, obs)), ("fvp", (theta, obs, v)),
                       ("empirical_fisher", (theta, obs, act))):
        a, b = getattr(pol, name)(*args), getattr(ref, name)(*args)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * (1 + np.abs(b).max()), err_msg=name)


# ------------------------------------------------------------------------ sampling ----------
def test_categorical_policy_sampling_frequencies():
    # fixed seed; 1e5 draws per state; every frequency within 5 s.e. of pi(a|s) from log_prob
    pol = purepg.CategoricalPolicy(2, 3, (4,))
    rng = np.random.default_rng(5)
    theta = pol.init(rng) * 100                                                  # logits of order 1
    obs = np.array([[0.5, -1.0], [2.0, 1.0]])
    M = 100_000
    for s in obs:
        a = pol.sample(theta, np.repeat(s[None], M, axis=0), rng)
        p = np.exp(pol.log_prob(theta, np.repeat(s[None], 3, axis=0), np.arange(3)))
        freq = np.bincount(a, minlength=3) / M
        assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / M)), (freq, p)


def test_gaussian_policy_sampling_and_mode():
    pol = purepg.GaussianPolicy(2, 2, (4,), log_std_init=-0.5)
    rng = np.random.default_rng(9)
    theta = pol.init(rng)
    theta[:pol.net.num_params] *= 50                                             # means of order 1; log_std = -0.5
    obs = np.repeat(np.array([[0.3, -0.7]]), 100_000, axis=0)
    a = pol.sample(theta, obs, rng)
    mu = pol.mode(theta, obs[:1])[0]
    M, s2 = obs.shape[0], np.exp(-1.0)
    assert np.all(np.abs(a.mean(axis=0) - mu) <= 5 * np.sqrt(s2 / M))
    assert np.all(np.abs(a.var(axis=0, ddof=1) - s2) <= 5 * s2 * np.sqrt(2 / (M - 1)))
    assert np.array_equal(pol.sample(theta, obs[:5], np.random.default_rng(1)),
                          pol.sample(theta, obs[:5], np.random.default_rng(1)))


def test_init_layout_and_log_std():
    pol = purepg.GaussianPolicy(3, 2, (5,), log_std_init=-0.7)
    theta = pol.init(np.random.default_rng(0))
    assert theta.shape == (pol.num_params,) == (3 * 5 + 5 + 5 * 2 + 2 + 2,)
    np.testing.assert_array_equal(theta[-2:], -0.7)
    Wh = pol.net.unflatten(theta[:-2])[-1][0]
    np.testing.assert_allclose(Wh @ Wh.T, 1e-4 * np.eye(2), atol=1e-16)       # head gain 0.01


# ------------------------------------------------------------------------ bad input ---------
CAT = purepg.CategoricalPolicy(2, 3, (4,))
GAU = purepg.GaussianPolicy(2, 2, (4,))
TC, TG = np.zeros(CAT.num_params), np.zeros(GAU.num_params)
O = np.zeros((3, 2))


@pytest.mark.parametrize("call, match", [
    (lambda: CAT.log_prob(TC, np.zeros((3, 5)), [0, 1, 2]), r"obs: expected shape \(N, 2\), got \(3, 5\)"),
    (lambda: CAT.log_prob(TC, np.zeros(2), [0]), r"obs: expected shape \(N, 2\), got \(2,\)\. Fix: .*obs\[None\]"),
    (lambda: CAT.log_prob(TC, [["a", "b"]], [0]), r"obs: expected a numeric array, got dtype <U1"),
    (lambda: CAT.log_prob(TC, O + 1j, [0, 1, 2]), r"obs: expected real numbers, got complex dtype complex128"),
    (lambda: CAT.log_prob(TC, [[0, np.nan]] * 3, [0, 1, 2]), r"obs: expected finite values, got nan at index \(0, 1\)"),
    (lambda: CAT.log_prob(np.zeros(5), O, [0, 1, 2]), r"theta: expected shape \(27,\), got \(5,\)\. Fix: .*num_params = 27"),
    (lambda: CAT.log_prob(TC.astype(complex), O, [0, 1, 2]), r"theta: expected real numbers, got complex"),
    (lambda: CAT.log_prob(TC, O, [0, 1, 3]), r"act: expected actions in \[0, 3\), got 3"),
    (lambda: CAT.log_prob(TC, O, [0, -1, 2]), r"act: expected actions in \[0, 3\), got -1"),
    (lambda: CAT.log_prob(TC, O, [0, 1]), r"act: expected shape \(3,\), got \(2,\)"),
    (lambda: CAT.log_prob(TC, O, [0.5, 1, 2]), r"act: expected integer actions, got dtype float64"),
    (lambda: CAT.log_prob(TC, O, ["a", "b", "c"]), r"act: expected integer actions, got dtype <U1"),
    (lambda: GAU.log_prob(TG, O, np.zeros((3, 3))), r"act: expected shape \(3, 2\), got \(3, 3\)"),
    (lambda: GAU.log_prob(TG, O, np.full((3, 2), np.inf)), r"act: expected finite values, got inf"),
    (lambda: CAT.log_prob_grad(TC, O, [0, 1, 2], np.ones(2)), r"w: expected shape \(3,\), got \(2,\)"),
    (lambda: CAT.fvp(TC, O, np.ones(3)), r"v: expected shape \(27,\), got \(3,\)"),
    (lambda: CAT.kl(TC, np.ones(4), O), r"theta: expected shape \(27,\), got \(4,\)"),
    (lambda: CAT.kl(TC, TC, np.zeros((0, 2))), r"obs: expected at least one state \(N >= 1\).*got shape \(0, 2\)"),
    (lambda: CAT.fisher(TC, np.zeros((0, 2))), r"obs: expected at least one state"),
    (lambda: CAT.fvp(TC, np.zeros((0, 2)), TC), r"obs: expected at least one state"),
    (lambda: CAT.sample(TC, O, 0), r"rng: expected a numpy.random.Generator, got int"),
    (lambda: purepg.CategoricalPolicy(2, 1), r"n_actions: expected an integer >= 2, got 1"),
    (lambda: purepg.CategoricalPolicy(0, 2), r"obs_dim: expected an integer >= 1, got 0"),
    (lambda: purepg.CategoricalPolicy(2, 2, (2.5,)), r"sizes: expected integer layer sizes.*got \(2, 2.5, 2\)"),
    (lambda: purepg.GaussianPolicy(2, 2, log_std_init=np.nan), r"log_std_init: expected a finite number, got nan"),
    (lambda: purepg.CategoricalPolicy(2, 2, backend="torch"), r"backend: expected one of \('numba', 'numpy'\), got 'torch'"),
])
def test_bad_input_messages(call, match):
    with pytest.raises((ValueError, TypeError), match=match) as err:
        call()
    assert ". Fix: " in str(err.value)


@given(S.policy_cases())
def test_score_into_a_given_buffer(case):
    """score(out=buf) writes the same numbers into buf and returns it; a wrong buffer is refused."""
    pol, theta, obs, act = case
    buf = np.full((obs.shape[0], pol.num_params), np.nan)
    res = pol.score(theta, obs, act, out=buf)
    assert res is buf
    np.testing.assert_array_equal(buf, pol.score(theta, obs, act))
    for bad in (np.empty((obs.shape[0], pol.num_params + 1)), np.empty((obs.shape[0], pol.num_params), np.float32),
                np.empty((obs.shape[0], 2 * pol.num_params))[:, ::2], [[0.0] * pol.num_params] * obs.shape[0]):
        with pytest.raises(ValueError, match=r"out: expected a writeable C-contiguous float64 array of shape"):
            pol.score(theta, obs, act, out=bad)


@pytest.mark.parametrize("make", [
    lambda: purepg.CategoricalPolicy(4, 3, hidden=(16, 16)),
    lambda: purepg.CategoricalPolicy(4, 2, hidden=(64, 64)),
    lambda: purepg.CategoricalPolicy(4, 2, hidden=(8,), activation="relu"),
    lambda: purepg.CategoricalPolicy(4, 2, hidden=(8,), backend="numpy"),
    lambda: purepg.GaussianPolicy(4, 2, hidden=(8,))])
def test_sampler_draws_what_sample_draws(make):
    """A rollout's sampler (one compiled pass for a categorical policy) takes the same uniforms from the
    generator and gives the same actions as ``sample``, call after call (the generators stay in step)."""
    pol = make()
    rng = np.random.default_rng(0)
    theta = pol.init(rng) + 0.5 * rng.standard_normal(pol.num_params)
    sample = pol.sampler(theta)
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    for E in (1, 2, 8, 8, 3):
        obs = rng.standard_normal((E, 4))
        np.testing.assert_array_equal(sample(obs, r1), pol.sample(theta, obs, r2))
    assert r1.random() == r2.random()


def test_sampler_takes_the_one_call_pass_exactly_where_passes_fits(monkeypatch):
    """The sampler decides once per theta what depends on the network and theta, and per call on the rows:
    the compiled BLAS pass for two or more C-contiguous float64 rows, the loop kernel otherwise (one row,
    a strided view); the actions are ``sample``'s either way."""
    from purepg import kernels
    pol = purepg.CategoricalPolicy(4, 3, hidden=(16, 16))
    rng = np.random.default_rng(0)
    theta = pol.init(rng) + 0.5 * rng.standard_normal(pol.num_params)
    took, blas = [], kernels.acting.categorical_act_blas
    monkeypatch.setattr(kernels.acting, "categorical_act_blas", lambda *a, **k: took.append(a[3].size) or blas(*a, **k))
    sample = pol.sampler(theta)
    wide = rng.standard_normal((5, 8))
    for obs, fused in ((rng.standard_normal((4, 4)), True), (rng.standard_normal((1, 4)), False),
                       (wide[:, ::2], False), (np.ascontiguousarray(wide[:, ::2]), True)):
        took.clear()
        r1, r2 = np.random.default_rng(3), np.random.default_rng(3)
        np.testing.assert_array_equal(sample(obs, r1), pol.sample(theta, obs, r2))
        assert took == ([obs.shape[0]] if fused else [])
