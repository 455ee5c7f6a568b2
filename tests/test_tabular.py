"""Tests of purepg.verify.tabular: the exact oracle (DP, enumeration, exact moments) and the gymnasium env.

Tolerances
----------
* DP against enumeration, and exact moments against each other: both are finite sums of at most
  ~2e4 products of float64 numbers of size O(10), so they agree to ~1e-13; we assert 1e-10 (the
  oracle's contract, docs/math/reinforce.md).
* Exact grad J against central differences of exact J: ``tests/helpers/finite_diff.py`` explains the 1e-6
  relative+absolute tolerance. Here J is a polynomial in the probabilities pi(a|s), which are smooth in
  theta in [-2, 2] with third derivatives O(1) per unit of reward; |J| <= T max|r| <= 8, so the
  truncation error ~ h^2 * 8 ~ 1e-11 and rounding ~ 1e-16 * 8 / 1e-6 ~ 1e-9: 1e-6 leaves a wide margin,
  and a wrong gradient (missing gamma^t, wrong d_t, transposed Q) is off by O(0.1) or more.
"""
import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given

import purepg
from purepg.verify import tabular as tb
from helpers.finite_diff import gradient
from helpers.tabular import st_case

def _discounted_returns(enum, gamma):
    return (enum.rewards * gamma ** np.arange(enum.rewards.shape[1])).sum(axis=1)   # (K,)


# ----------------------------------------------------------------------------- DP and enumeration


@given(st_case())
def test_exact_gradient_matches_finite_differences(case):
    mdp, pol, theta = case
    g = tb.exact_gradient(mdp, pol, theta)
    fd = gradient(lambda th: tb.exact_return(mdp, pol, th), theta)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


@given(st_case(hidden=(3,), max_T=3))
def test_exact_gradient_with_a_hidden_layer(case):
    mdp, pol, theta = case
    fd = gradient(lambda th: tb.exact_return(mdp, pol, th), theta)
    np.testing.assert_allclose(tb.exact_gradient(mdp, pol, theta), fd, rtol=1e-6, atol=1e-6)


@given(st_case())
def test_enumeration_agrees_with_dynamic_programming(case):
    mdp, pol, theta = case
    pi = tb.policy_table(pol, theta, mdp)
    enum = tb.enumerate_trajectories(mdp, pi)
    assert len(enum.prob) == tb.trajectory_count(mdp)
    assert abs(enum.prob.sum() - 1.0) < 1e-12
    # J = E[sum_t gamma^t r_t] (T1) by both routes
    assert abs(enum.prob @ _discounted_returns(enum, mdp.gamma) - tb.exact_return(mdp, pol, theta)) < 1e-10
    # d_t(s) of (T2) is the marginal of s_t under the enumeration
    d = tb.state_distributions(mdp, pi)
    for t in range(mdp.T):
        np.testing.assert_allclose(np.bincount(enum.states[:, t], enum.prob, minlength=mdp.S), d[t], atol=1e-12)
    # the REINFORCE identity E[(sum_t grad log pi) R] = grad J (docs/math/reinforce.md, eq. (1.3))
    obs, act, _ = tb.as_batch(enum)
    G = pol.score(theta, obs.reshape(-1, mdp.S), act.ravel()).reshape(*act.shape, -1).sum(axis=1)  # (K, P)
    np.testing.assert_allclose(enum.prob @ (G * _discounted_returns(enum, mdp.gamma)[:, None]),
                               tb.exact_gradient(mdp, pol, theta), atol=1e-10)


def test_enumeration_order_and_probability_by_hand():
    # S = 2, A = 2, T = 2, deterministic "go to state a" transitions, uniform policy
    P = np.zeros((2, 2, 2))
    P[:, 0, 0] = P[:, 1, 1] = 1.0
    mdp = tb.TabularMDP(P, np.array([[0.0, 1.0], [10.0, 11.0]]), np.array([0.25, 0.75]), 2)
    enum = tb.enumerate_trajectories(mdp, np.full((2, 2), 0.5))
    k = np.flatnonzero((enum.states == [1, 0]).all(1) & (enum.actions == [0, 1]).all(1))
    assert len(k) == 1
    assert enum.prob[k[0]] == 0.75 * 0.5 * 1.0 * 0.5                   # mu0(1) pi(0|1) P(0|1,0) pi(1|0)
    np.testing.assert_array_equal(enum.rewards[k[0]], [10.0, 1.0])
    assert enum.prob[(enum.states == [1, 1]).all(1) & (enum.actions[:, 0] == 0)].sum() == 0.0


def test_action_values_by_hand():
    # one state, two actions, rewards (1, 3), T = 2, gamma = 0.5, pi = (1/4, 3/4):
    # V_1 = 1/4 + 9/4 = 2.5, Q_0 = r + 0.5 * 2.5 = (2.25, 4.25), J = 1/4 * 2.25 + 3/4 * 4.25 = 3.75
    mdp = tb.TabularMDP(np.ones((1, 2, 1)), np.array([[1.0, 3.0]]), np.ones(1), 2, 0.5)
    Q = tb.action_values(mdp, np.array([[0.25, 0.75]]))
    np.testing.assert_allclose(Q, [[[2.25, 4.25]], [[1.0, 3.0]]])   # Q[t, s, a]
    pol = purepg.CategoricalPolicy(1, 2, hidden=())
    theta = np.array([0.0, 0.0, 0.0, np.log(3.0)])                      # logits (0, log 3)
    assert abs(tb.exact_return(mdp, pol, theta) - 3.75) < 1e-14


def test_next_state_rewards_enumerate_the_final_state():
    rng = np.random.default_rng(0)
    mdp = tb.random_mdp(rng, 2, 2, 2, next_state_reward=True)
    enum = tb.enumerate_trajectories(mdp, np.full((2, 2), 0.5))
    assert len(enum.prob) == 2 ** 3 * 2 ** 2
    # E[r_{T-1}] uses r(s, a, s') weighted by the last transition: compare with DP's rbar
    pol = purepg.CategoricalPolicy(2, 2, hidden=())
    theta = np.zeros(pol.num_params)
    assert abs(enum.prob @ enum.rewards.sum(1) - tb.exact_return(mdp, pol, theta)) < 1e-12


# ----------------------------------------------------------------------------- exact moments


def test_moments_by_hand():
    m = tb.moments(np.array([[1.0, 0.0], [3.0, 2.0]]), np.array([0.25, 0.75]))
    np.testing.assert_allclose(m.mean, [2.5, 1.5])
    np.testing.assert_allclose(m.cov, 0.1875 * np.array([[4.0, 4.0], [4.0, 4.0]]))
    assert abs(m.total_variance - 1.5) < 1e-15


def test_exact_moments_of_a_batch_mean_scale_as_one_over_n():
    rng = np.random.default_rng(1)
    mdp = tb.random_mdp(rng, 2, 2, 2)
    pol = purepg.CategoricalPolicy(2, 2, hidden=())
    theta = rng.standard_normal(pol.num_params)
    enum = tb.enumerate_trajectories(mdp, tb.policy_table(pol, theta, mdp))

    def est(obs, act, rew):                                   # batch mean of (sum_t g_t) R
        G = [pol.score(theta, o, a).sum(0) * r.sum() for o, a, r in zip(obs, act, rew)]
        return np.mean(G, axis=0)

    m1, m2 = (tb.exact_moments(est, enum, batch_size=n) for n in (1, 2))
    np.testing.assert_allclose(m1.mean, tb.exact_gradient(mdp, pol, theta), atol=1e-12)
    np.testing.assert_allclose(m2.mean, m1.mean, atol=1e-12)
    np.testing.assert_allclose(m2.cov, m1.cov / 2, atol=1e-12)   # independent draws: Cov / N


# ----------------------------------------------------------------------------- the gymnasium env


def test_env_passes_gymnasium_checker_and_follows_the_mdp():
    mdp = tb.random_mdp(np.random.default_rng(2), 3, 2, 4, next_state_reward=True)
    env = tb.TabularMDPEnv(mdp)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=5)
    assert obs.dtype == np.float64 and obs.sum() == 1.0 and obs[info["s"]] == 1.0
    s = info["s"]
    for t in range(mdp.T):
        obs, r, terminated, truncated, info = env.step(1)
        assert r == mdp.R[s, 1, info["s"]] and info["t"] == t + 1 and not truncated
        assert terminated == (t == mdp.T - 1)
        assert mdp.P[s, 1, info["s"]] > 0
        s = info["s"]
    with pytest.raises(gymnasium.error.ResetNeeded, match="call reset"):
        env.step(0)


def test_env_state_frequencies_match_the_enumeration():
    # 20000 episodes: each frequency has standard error <= 0.5 / sqrt(20000) ~ 0.0035; 5 SE ~ 0.018
    mdp = tb.random_mdp(np.random.default_rng(3), 2, 2, 2)
    enum = tb.enumerate_trajectories(mdp, np.full((2, 2), 0.5))
    env, rng = tb.TabularMDPEnv(mdp), np.random.default_rng(4)
    counts = np.zeros(2)
    env.reset(seed=6)
    for _ in range(20000):
        env.reset()
        _, _, _, _, info = env.step(int(rng.integers(2)))
        counts[info["s"]] += 1
    expected = np.bincount(enum.states[:, 1], enum.prob, minlength=2)
    assert np.all(np.abs(counts / 20000 - expected) < 5 * 0.5 / np.sqrt(20000))


# ----------------------------------------------------------------------------- bad input


def _good():
    return dict(P=np.full((2, 2, 2), 0.5), R=np.zeros((2, 2)), mu0=np.array([0.5, 0.5]), T=2, gamma=1.0)


@pytest.mark.parametrize("change, match", [
    (dict(P=np.full((2, 2, 2), 0.4)), r"P: expected probabilities summing to 1 .* got a sum of 0\.8 in row \(0, 0\)\. Fix: normalise"),
    (dict(P=np.array([[[1.5, -0.5]] * 2] * 2)), r"P: expected probabilities >= 0, got -0\.5 at index \(0, 0, 1\)\. Fix"),
    (dict(P=np.full((2, 2), 0.5)), r"P: expected shape \(S, A, S\).*got \(2, 2\)\. Fix"),
    (dict(R=np.zeros((2, 3))), r"R: expected shape \(2, 2\) or \(2, 2, 2\), got \(2, 3\)\. Fix"),
    (dict(R=np.full((2, 2), np.nan)), r"R: expected finite rewards.*Fix"),
    (dict(mu0=np.array([0.5, 0.6])), r"mu0: expected probabilities summing to 1 .*got a sum of 1\.1\. Fix"),
    (dict(mu0=np.ones(3) / 3), r"mu0: expected shape \(2,\), got \(3,\)\. Fix"),
    (dict(T=0), r"T: expected an integer >= 1, got 0\. Fix: pass an integer horizon"),
    (dict(gamma=1.5), r"gamma: expected a finite number in \[0, 1\], got 1\.5\. Fix"),
    (dict(gamma=-0.1), r"gamma: expected a finite number in \[0, 1\], got -0\.1\. Fix"),
])
def test_bad_mdp(change, match):
    with pytest.raises(ValueError, match=match):
        tb.TabularMDP(**{**_good(), **change})


def test_enumeration_too_large_says_the_count():
    mdp = tb.TabularMDP(**{**_good(), "T": 10})
    with pytest.raises(ValueError, match=r"trajectories: expected at most max_count=200000 to enumerate, got 1048576\. Fix"):
        tb.enumerate_trajectories(mdp, np.full((2, 2), 0.5))
    enum = tb.enumerate_trajectories(tb.TabularMDP(**_good()), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"ordered batches .*: expected at most max_count=1000 to enumerate, got 4096\. Fix"):
        tb.exact_moments(lambda o, a, r: np.zeros(1), enum, batch_size=3, max_count=1000)
    with pytest.raises(ValueError, match=r"batch_size: expected an integer >= 1, got 0\. Fix"):
        tb.exact_moments(lambda o, a, r: np.zeros(1), enum, batch_size=0)


def test_bad_policy_table_and_policy():
    mdp = tb.TabularMDP(**_good())
    with pytest.raises(ValueError, match=r"pi: expected shape \(2, 2\), got \(2, 3\)\. Fix"):
        tb.enumerate_trajectories(mdp, np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"pi: expected probabilities summing to 1 .*got a sum of 0\.6 in row \(0,\)\. Fix"):
        tb.enumerate_trajectories(mdp, np.full((2, 2), 0.3))
    with pytest.raises(ValueError, match=r"pol: expected a categorical policy with obs_dim=2 .*got .*obs_dim=3.*Fix"):
        tb.exact_gradient(mdp, purepg.CategoricalPolicy(3, 2, hidden=()), np.zeros(8))
    with pytest.raises(ValueError, match=r"pol: expected a categorical policy.*discrete=False.*Fix"):
        tb.policy_table(purepg.GaussianPolicy(2, 2, hidden=()), np.zeros(8), mdp)
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator, got int\. Fix"):
        tb.random_mdp(0, 2, 2, 2)
    with pytest.raises(TypeError, match=r"mdp: expected a TabularMDP, got dict\. Fix"):
        tb.TabularMDPEnv(_good())
    env = tb.TabularMDPEnv(mdp)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action: expected an integer in \[0, 2\), got 2\. Fix"):
        env.step(2)
