"""Tests of purepg.pg.surrogates: per-sample terms, objectives through real policies, multiplier rules.

Finite-difference tolerance (see tests/helpers/finite_diff.py): with h = 1e-6 the central difference of a
function of size |f| has rounding error ~ 2.2e-16 |f| / h ~ 2e-10 |f| and truncation error
h^2 |f'''| / 6 ~ 2e-13 |f'''|. Every function here is a mean of terms r A (with |log r| <= 3, |A| <= 10,
so |f|, |f'''| <= ~200 before the 1/N) or a KL/entropy of the same scale, so ``atol = 1e-6 * scale``
with ``scale = 1 + max|f|, |g|`` leaves a margin of >= 100x; a wrong gradient is off by O(1) relative.

The clipped objective is not differentiable at r = 1 +- eps. Central differences straddle a kink if
the log-ratio is within ~h |d log r / d x| of it, so the FD tests keep every sample >= 1e-4 away
(>= 100 steps of size h) and place some samples *near* the kinks, between 1e-4 and 1e-2 away.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import purepg
from purepg.pg import surrogates as S
from helpers import finite_diff as fd
from helpers.finite_diff import assert_fd_close_scaled
from helpers.strategies import st_vec

KINK_GAP = 1e-4      # no log-ratio closer than this to log(1 +- eps) in FD tests




# ----- strategies ---------------------------------------------------------------------------------


@st.composite
def st_batch(draw, max_n=12):
    """(logp_new, logp_old, adv): log-probs in [-5, 0], log-ratios in [-2, 2], advantages in [-10, 10]."""
    n = draw(st.integers(1, max_n))
    logp_old = draw(st_vec(n, -5.0, 0.0))
    log_r = draw(st_vec(n, -2.0, 2.0))
    adv = draw(st_vec(n, -10.0, 10.0))
    return logp_old + log_r, logp_old, adv


st_eps = st.floats(0.05, 0.5)


@st.composite
def st_near_kinks(draw):
    """A batch with eps whose log-ratios sit 1e-4..1e-2 (either side) from log(1+eps) or log(1-eps)."""
    eps = draw(st_eps)
    n = draw(st.integers(1, 10))
    side = draw(hnp.arrays(np.int64, n, elements=st.sampled_from([-1, 1])))
    gap = draw(st_vec(n, KINK_GAP, 1e-2)) * draw(hnp.arrays(np.float64, n, elements=st.sampled_from([-1.0, 1.0])))
    log_r = np.log1p(side * eps) + gap                               # (n,)
    logp_old = draw(st_vec(n, -5.0, 0.0))
    adv = draw(st_vec(n, -10.0, 10.0))
    return logp_old + log_r, logp_old, adv, eps


def kink_distance(logp_new, logp_old, eps):
    log_r = logp_new - logp_old
    return float(np.min(np.minimum(np.abs(log_r - np.log1p(eps)), np.abs(log_r - np.log1p(-eps)))))


# ----- per-sample terms ---------------------------------------------------------------------------
@given(st_batch())
def test_surrogate_terms_gradient_matches_fd(b):
    l, l_old, A = b
    L, w = S.surrogate_terms(l, l_old, A)
    g_fd = fd.gradient(lambda x: S.surrogate_terms(x, l_old, A)[0], l)
    assert_fd_close_scaled(w, g_fd, L)
    assert L == pytest.approx(np.mean(np.exp(l - l_old) * A), rel=1e-12, abs=1e-12)


@given(st_batch(), st_eps)
def test_clip_terms_gradient_matches_fd_generic(b, eps):
    l, l_old, A = b
    assume(kink_distance(l, l_old, eps) > KINK_GAP)
    L, w, _ = S.clip_terms(l, l_old, A, eps)
    assert_fd_close_scaled(w, fd.gradient(lambda x: S.clip_terms(x, l_old, A, eps)[0], l), L)


@given(st_near_kinks())
def test_clip_terms_gradient_matches_fd_near_the_kinks(b):
    l, l_old, A, eps = b
    L, w, _ = S.clip_terms(l, l_old, A, eps)
    assert_fd_close_scaled(w, fd.gradient(lambda x: S.clip_terms(x, l_old, A, eps)[0], l), L)


@given(st_near_kinks())
def test_clip_gradient_is_zero_exactly_where_clipped(b):
    l, l_old, A, eps = b
    _, w, frac = S.clip_terms(l, l_old, A, eps)
    r = np.exp(l - l_old)
    clipped = ((A > 0) & (r > 1 + eps)) | ((A < 0) & (r < 1 - eps))
    np.testing.assert_array_equal(w[clipped], 0.0)
    np.testing.assert_allclose(w[~clipped], (r * A)[~clipped] / len(r), rtol=1e-14, atol=0)
    assert frac == np.count_nonzero(np.abs(r - 1) > eps) / len(r)


@given(st_batch(), st_eps)
def test_clip_equals_plain_at_ratio_one(b, eps):
    _, l_old, A = b
    L_c, w_c, frac = S.clip_terms(l_old, l_old, A, eps)
    L_p, w_p = S.surrogate_terms(l_old, l_old, A)
    assert L_c == L_p and frac == 0.0
    np.testing.assert_array_equal(w_c, w_p)


@given(st_batch(), st_eps)
def test_clip_is_a_pessimistic_bound_and_wide_clip_is_plain(b, eps):
    l, l_old, A = b
    L_p, w_p = S.surrogate_terms(l, l_old, A)
    assert S.clip_terms(l, l_old, A, eps)[0] <= L_p + 1e-12      # min(rA, cA) <= rA termwise
    L_w, w_w, frac = S.clip_terms(l, l_old, A, 10.0)             # |r - 1| <= e^2 - 1 < 10: never clipped
    assert L_w == pytest.approx(L_p, rel=1e-14, abs=1e-14) and frac == 0.0
    np.testing.assert_allclose(w_w, w_p, rtol=1e-14, atol=0)


@given(st.floats(1e-3, 0.6), st.floats(-10, 10).filter(lambda a: a != 0), st.sampled_from([1, -1]))
def test_clip_derivative_at_the_kink_is_the_unclipped_one(x, A, side):
    # r = exp(+-x) and eps = |r - 1| are exact (Sterbenz), so r lands exactly on 1 +- eps.
    r = np.exp(side * x)
    eps = abs(r - 1.0)
    assert r == (1.0 + eps if side > 0 else 1.0 - eps)
    L, w, frac = S.clip_terms([side * x], [0.0], [A], eps)
    assert w[0] == r * A and L == r * A and frac == 0.0


def test_clip_terms_worked_example():
    # eps = 0.2; r = (1.5, 1.5, 0.5, 0.5, 1.1); A = (+1, -1, +1, -1, +2)
    r = np.array([1.5, 1.5, 0.5, 0.5, 1.1])
    A = np.array([1.0, -1.0, 1.0, -1.0, 2.0])
    L, w, frac = S.clip_terms(np.log(r), np.zeros(5), A, 0.2)
    # min terms: 1.2, -1.5, 0.5, -0.8, 2.2 -> mean 0.32; active: clipped, unclipped, unclipped, clipped, inside
    assert L == pytest.approx(0.32, abs=1e-14)
    np.testing.assert_allclose(w, np.array([0.0, -1.5, 0.5, 0.0, 2.2]) / 5, rtol=1e-14)
    assert frac == pytest.approx(4 / 5)


# ----- optional cross-check against PyTorch autograd (skipped without torch) --------------------
def torch_clip(l, l_old, A, eps):
    """The PPO loss as Stable-Baselines3 / CleanRL write it, differentiated by autograd w.r.t. logp_new."""
    torch = pytest.importorskip("torch")
    lt = torch.tensor(l, dtype=torch.float64, requires_grad=True)
    At = torch.tensor(A, dtype=torch.float64)
    r = torch.exp(lt - torch.tensor(l_old, dtype=torch.float64))
    L = torch.min(r * At, torch.clamp(r, 1 - eps, 1 + eps) * At).mean()
    L.backward()
    return L.item(), lt.grad.numpy()


@given(st_batch(), st_eps, st.floats(1e-3, 0.6), st.sampled_from([1, -1]))
def test_clip_terms_match_pytorch_autograd_including_exact_kinks(b, eps, x, side):
    l, l_old, A = b
    L, w, _ = S.clip_terms(l, l_old, A, eps)
    L_t, w_t = torch_clip(l, l_old, A, eps)
    # float64 on both sides; only the order of the mean's summation may differ (~1e-16 relative)
    assert L == pytest.approx(L_t, rel=1e-13, abs=1e-13)
    np.testing.assert_allclose(w, w_t, rtol=1e-13, atol=1e-300)
    # samples exactly on the kink r = 1 +- eps' (eps' = |exp(+-x) - 1| exactly) and at r = 1. The two
    # libraries' exp may differ in the last bit, which would put the kink on different sides: skip that.
    torch = pytest.importorskip("torch")
    d = side * x
    assume(float(torch.exp(torch.tensor(d, dtype=torch.float64))) == np.exp(d))
    eps_k = abs(np.exp(d) - 1.0)
    l_k = np.concatenate([np.full_like(A, d), np.zeros_like(A)])   # (2n,) log-ratios d and 0
    A_k = np.concatenate([A, A])
    w_k = S.clip_terms(l_k, np.zeros_like(l_k), A_k, eps_k)[1]
    np.testing.assert_allclose(w_k, torch_clip(l_k, np.zeros_like(l_k), A_k, eps_k)[1], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(w_k, np.exp(l_k) * A_k / len(A_k), rtol=1e-15, atol=0)   # the unclipped derivative


# ----- errors of the per-sample terms -------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.0, -0.1, np.nan, np.inf])
def test_clip_rejects_bad_eps(eps):
    with pytest.raises(ValueError, match=r"eps: expected a finite number > 0, got .*Fix: use a clip range"):
        S.clip_terms([0.0], [0.0], [1.0], eps)


def test_terms_reject_bad_shapes_and_values():
    with pytest.raises(ValueError, match=r"adv: expected shape \(3,\).*got \(3, 1\)\. Fix: pass a flat"):
        S.surrogate_terms(np.zeros(3), np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"logp_old: expected shape \(3,\).*got \(2,\)"):
        S.clip_terms(np.zeros(3), np.zeros(2), np.zeros(3), 0.2)
    with pytest.raises(ValueError, match=r"logp_new: expected shape \(N,\) with N >= 1, got \(0,\)"):
        S.surrogate_terms([], [], [])
    with pytest.raises(ValueError, match=r"adv: expected finite values, got nan at index 1\. Fix"):
        S.surrogate_terms(np.zeros(2), np.zeros(2), [0.0, np.nan])


def test_ratio_reports_overflow_instead_of_inf():
    with pytest.raises(ValueError, match=r"logp_new - logp_old: expected <= 709.78.*got 800 at index 1.*Fix"):
        S.ratio([0.0, 0.0], [0.0, -800.0])
    assert S.ratio([0.0], [-709.0])[0] == np.exp(709.0)


# ----- multiplier rules ---------------------------------------------------------------------------
st_pos = st.floats(1e-6, 1e3)


@given(st_pos, st_pos, st.floats(0.0, 1.0))
def test_update_beta_follows_the_paper(beta, d_targ, u):
    low, high = d_targ / 1.5, d_targ * 1.5
    assert S.update_beta(beta, low * u * 0.999, d_targ) == beta / 2          # kl < d_targ/1.5
    assert S.update_beta(beta, low + (high - low) * u, d_targ) == beta       # kl in [d/1.5, 1.5 d]
    assert S.update_beta(beta, high * (1.001 + u), d_targ) == beta * 2       # kl > 1.5 d_targ


def test_update_beta_boundaries_and_errors():
    assert S.update_beta(1.0, 0.01 / 1.5, 0.01) == 1.0 and S.update_beta(1.0, 0.01 * 1.5, 0.01) == 1.0
    with pytest.raises(ValueError, match=r"beta: expected a finite number > 0, got 0.0\. Fix"):
        S.update_beta(0.0, 0.1, 0.01)
    with pytest.raises(ValueError, match=r"beta: expected a finite number > 0, got -1.0"):
        S.update_beta(-1.0, 0.1, 0.01)
    with pytest.raises(ValueError, match=r"d_targ: expected a finite number > 0, got 0.0"):
        S.update_beta(1.0, 0.1, 0.0)
    with pytest.raises(TypeError, match=r"d_targ: expected a finite number > 0, got str '0.01'\. Fix"):
        S.update_beta(1.0, 0.1, "0.01")
    with pytest.raises(ValueError, match=r"kl: expected a finite number, got nan\. Fix: a non-finite KL means"):
        S.update_beta(1.0, np.nan, 0.01)


@given(st.floats(0.0, 100.0), st.floats(0.0, 1.0), st_pos, st_pos)
def test_update_nu_rises_when_violated_and_stays_nonnegative(lam, kl, delta, alpha):
    new = S.update_nu(lam, kl, delta, alpha)
    assert new >= 0.0
    if kl > delta:
        assert new == lam + alpha * (kl - delta) and new >= lam   # rises (strictly unless it underflows)
    elif kl < delta:
        assert new <= lam
        assert new == max(0.0, lam + alpha * (kl - delta))
    else:
        assert new == lam


def test_update_nu_examples_and_errors():
    assert S.update_nu(1.0, 0.03, 0.01, 10.0) == pytest.approx(1.2)
    assert S.update_nu(0.05, 0.0, 0.01, 10.0) == 0.0                      # clipped at 0
    assert S.update_nu(0.5, 0.0, 0.01, 10.0) == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"nu: expected a finite number >= 0, got -0.1\. Fix"):
        S.update_nu(-0.1, 0.0, 0.01, 1.0)
    with pytest.raises(ValueError, match=r"delta: expected a finite number > 0, got 0.0"):
        S.update_nu(0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"alpha: expected a finite number > 0, got -1.0"):
        S.update_nu(0.0, 0.0, 0.01, -1.0)


# ----- through real policies ----------------------------------------------------------------------
@st.composite
def st_policy_batch(draw):
    """A small tanh policy (categorical or Gaussian), theta, theta_old near it, and a batch from pi_old.

    tanh only: a ReLU network has kinks of its own that central differences could straddle (the
    network's gradients are tested in the nn/policy tests).
    """
    discrete = draw(st.booleans())
    obs_dim, k = draw(st.integers(1, 3)), draw(st.integers(2, 3))
    hidden = draw(st.sampled_from([(), (4,), (3, 3)]))
    pol = (purepg.CategoricalPolicy(obs_dim, k, hidden=hidden) if discrete
           else purepg.GaussianPolicy(obs_dim, k - 1, hidden=hidden, log_std_init=-0.3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(1, 8))
    theta_old = pol.init(rng) + 0.3 * rng.standard_normal(pol.num_params)   # (P,)
    theta = theta_old + 0.1 * rng.standard_normal(pol.num_params)           # (P,)
    obs = rng.uniform(-2.0, 2.0, (n, obs_dim))                              # (n, obs_dim)
    act = pol.sample(theta_old, obs, rng)
    adv = rng.uniform(-5.0, 5.0, n)                                         # (n,)
    return pol, theta, theta_old, obs, act, pol.log_prob(theta_old, obs, act), adv


def fd_check(f, theta):
    """``f(theta) -> (value, grad, ...)``: compare grad with the central-difference gradient."""
    res = f(theta)
    assert_fd_close_scaled(res[1], fd.gradient(lambda x: f(x)[0], theta), res[0])
    return res


@given(st_policy_batch())
def test_surrogate_gradient_through_policy(b):
    pol, theta, _, obs, act, l_old, A = b
    fd_check(lambda th: S.surrogate(pol, th, obs, act, l_old, A), theta)


@given(st_policy_batch(), st_eps, st.data())
def test_ppo_clip_gradient_through_policy_near_kinks(b, eps, data):
    pol, theta, _, obs, act, l_old, A = b
    # move some ratios to within 1e-4..1e-2 of a kink by shifting their logp_old
    l = pol.log_prob(theta, obs, act)
    near = data.draw(hnp.arrays(bool, len(l)))
    gap = data.draw(st_vec(len(l), KINK_GAP, 1e-2)) * np.where(near, 1.0, 0.0)
    side = data.draw(hnp.arrays(np.int64, len(l), elements=st.sampled_from([-1, 1])))
    l_old = np.where(near, l - np.log1p(side * eps) - gap, l_old)
    assume(kink_distance(l, l_old, eps) > KINK_GAP)
    res = fd_check(lambda th: S.ppo_clip(pol, th, obs, act, l_old, A, eps=eps), theta)
    assert isinstance(res, S.ClipObjective) and 0.0 <= res.clip_fraction <= 1.0


@given(st_policy_batch(), st_eps)
def test_unchecked_ppo_clip_returns_the_same_bits(b, eps):
    """check=False (a training loop that validated its batch) skips validation, nothing else."""
    pol, theta, _, obs, act, l_old, A = b
    c, u = S.ppo_clip(pol, theta, obs, act, l_old, A, eps=eps), S.ppo_clip(pol, theta, obs, act, l_old, A, eps=eps,
                                                                          check=False)
    assert (u.value, u.clip_fraction) == (c.value, c.clip_fraction)
    np.testing.assert_array_equal(u.grad, c.grad)


def test_unchecked_ppo_clip_still_reports_an_overflowing_ratio():
    pol = purepg.CategoricalPolicy(2, 2, hidden=())
    theta, obs, act = np.zeros(pol.num_params), np.zeros((2, 2)), np.array([0, 1])
    l_old = np.array([0.0, -800.0])                               # log r = log(1/2) + 800 at index 1
    with pytest.raises(ValueError, match=r"logp_new - logp_old: expected <= 709.78.*at index 1.*Fix"):
        S.ppo_clip(pol, theta, obs, act, l_old, np.ones(2), eps=0.2, check=False)


@given(st_policy_batch(), st_eps)
def test_ppo_clip_equals_plain_surrogate_at_theta_old(b, eps):
    pol, _, theta_old, obs, act, l_old, A = b
    c = S.ppo_clip(pol, theta_old, obs, act, l_old, A, eps=eps)
    p = S.surrogate(pol, theta_old, obs, act, l_old, A)
    assert c.value == p.value and c.clip_fraction == 0.0
    np.testing.assert_array_equal(c.grad, p.grad)
    # and there the surrogate gradient is the policy-gradient estimate mean_i A_i grad log pi(a_i|s_i)
    g_pg = pol.score(theta_old, obs, act).T @ A / len(A)
    np.testing.assert_allclose(p.grad, g_pg, rtol=1e-10, atol=1e-12)


@given(st_policy_batch(), st.floats(0.0, 5.0))
def test_kl_penalty_gradient_and_identities(b, beta):
    pol, theta, theta_old, obs, act, l_old, A = b
    res = fd_check(lambda th: S.ppo_kl_penalty(pol, th, obs, act, l_old, A, theta_old=theta_old, beta=beta), theta)
    plain = S.surrogate(pol, theta, obs, act, l_old, A)
    assert res.kl == pol.kl(theta_old, theta, obs)
    assert res.value == pytest.approx(plain.value - beta * res.kl, rel=1e-13, abs=1e-13)
    at_old = S.ppo_kl_penalty(pol, theta_old, obs, act, l_old, A, theta_old=theta_old, beta=beta)
    p_old = S.surrogate(pol, theta_old, obs, act, l_old, A)
    assert abs(at_old.kl) < 1e-12            # KL and its gradient vanish at theta_old
    np.testing.assert_allclose(at_old.grad, p_old.grad, rtol=1e-9, atol=1e-9 * (1 + np.abs(p_old.grad).max()))


@given(st_policy_batch(), st.floats(0.0, 5.0), st.floats(1e-3, 0.1))
def test_lagrangian_gradient_and_identities(b, lam, delta):
    pol, theta, theta_old, obs, act, l_old, A = b
    res = fd_check(lambda th: S.lagrangian(pol, th, obs, act, l_old, A, theta_old=theta_old, nu=lam, delta=delta),
                   theta)
    plain = S.surrogate(pol, theta, obs, act, l_old, A)
    assert res.value == pytest.approx(plain.value - lam * (res.kl - delta), rel=1e-13, abs=1e-13)
    pen = S.ppo_kl_penalty(pol, theta, obs, act, l_old, A, theta_old=theta_old, beta=lam)
    np.testing.assert_array_equal(res.grad, pen.grad)           # delta shifts the value only


@given(st_policy_batch())
def test_entropy_bonus_gradient_through_policy(b):
    pol, theta, _, obs, _, _, _ = b
    res = fd_check(lambda th: S.entropy_bonus(pol, th, obs), theta)
    assert res.value == pytest.approx(np.mean(pol.entropy(theta, obs)), rel=1e-14)


def test_policy_level_errors():
    pol = purepg.CategoricalPolicy(2, 3, hidden=(4,))
    theta = pol.init(np.random.default_rng(0))
    obs, act = np.zeros((4, 2)), np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match=r"adv: expected shape \(4,\), one entry per sample like obs, got \(3,\)"):
        S.surrogate(pol, theta, obs, act, np.zeros(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"logp_old: expected shape \(4,\).*got \(4, 1\)"):
        S.ppo_clip(pol, theta, obs, act, np.zeros((4, 1)), np.zeros(4), eps=0.2)
    with pytest.raises(ValueError, match=r"eps: expected a finite number > 0, got 0.0"):
        S.ppo_clip(pol, theta, obs, act, np.zeros(4), np.zeros(4), eps=0.0)
    with pytest.raises(ValueError, match=r"beta: expected a finite number >= 0, got -0.5\. Fix"):
        S.ppo_kl_penalty(pol, theta, obs, act, np.zeros(4), np.zeros(4), theta_old=theta, beta=-0.5)
    with pytest.raises(ValueError, match=r"nu: expected a finite number >= 0, got -1.0"):
        S.lagrangian(pol, theta, obs, act, np.zeros(4), np.zeros(4), theta_old=theta, nu=-1.0, delta=0.01)
    with pytest.raises(ValueError, match=r"delta: expected a finite number > 0, got 0.0"):
        S.lagrangian(pol, theta, obs, act, np.zeros(4), np.zeros(4), theta_old=theta, nu=1.0, delta=0.0)
    with pytest.raises(ValueError, match=r"obs: expected shape \(N, obs_dim\), got \(2,\)\. Fix"):
        S.entropy_bonus(pol, theta, np.zeros(2))
