"""Issue 5 proofs of the natural step and the line search on real policies (tests/test_optim.py covers
CG, damping and the dense-matrix properties): the step solves the trust-region problem exactly, its
true KL over epsilon tends to 1, and the line search never accepts a KL-violating or non-improving step."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import purepg
from purepg.algos.trust_region import surrogate_value
from purepg.optim import backtracking_line_search, natural_step

st_seed = st.integers(0, 2**31 - 1)
st_kind = st.sampled_from(["categorical", "gaussian"])


def _problem(kind, seed, N=60, hidden=(4,), noise=0.1):
    """A small policy near its init, a batch of N states with sampled actions, and a gradient g.

    The Gaussian's Fisher is positive definite (N * act_dim = 120 output rows >= P = 28), so Cholesky
    with damping 0 applies; the categorical's is singular along the softmax shift (adding a constant to
    every logit), so it is solved by CG, which stays in range(F) because g does (E_a[d log pi/d out] = 0).
    """
    rng = np.random.default_rng(seed)
    pol = (purepg.CategoricalPolicy(3, 3, hidden=hidden) if kind == "categorical"
           else purepg.GaussianPolicy(3, 2, hidden=hidden))
    theta = pol.init(rng) + noise * rng.standard_normal(pol.num_params)        # (P,)
    obs = rng.standard_normal((N, 3))                                            # (N, 3)
    act = pol.sample(theta, obs, rng)
    adv = rng.standard_normal(N)                                                 # (N,)
    g = pol.log_prob_grad(theta, obs, act, adv / N)                              # (P,)
    return pol, theta, obs, act, adv, g, pol.fisher(theta, obs)


def _step(kind, g, F, epsilon):
    if kind == "gaussian":
        return natural_step(g, F, epsilon, damping=0.0)                         # Cholesky, F PD
    return natural_step(g, F, epsilon, damping=0.0, solver="cg", cg_iters=500, cg_tol=1e-13)


@given(kind=st_kind, seed=st_seed, epsilon=st.floats(1e-6, 1.0))
def test_natural_step_solves_the_trust_region_problem(kind, seed, epsilon):
    """d = argmax g^T d s.t. 1/2 d^T F d <= epsilon, on the exact Fisher of a policy, damping 0."""
    pol, theta, obs, act, adv, g, F = _problem(kind, seed)
    ns = _step(kind, g, F, epsilon)
    assert ns.ok, ns.reason
    d = ns.step                                                                  # (P,)
    # The constraint is active: 1/2 d^T F d = epsilon, to rounding (1e-10 relative: the scale is
    # computed from x^T F x, so only the float error of two matvecs of O(1) entries enters).
    np.testing.assert_allclose(0.5 * d @ F @ d, epsilon, rtol=1e-10)
    # Stationarity of the Lagrangian: F d is parallel to g (F d = mu g with mu > 0) -- checked without
    # inverting F, so it holds for the singular categorical Fisher too. 1e-7 relative covers CG's
    # residual (tol 1e-13) amplified by the condition number of F on its range (<= 1e5 here).
    Fd = F @ d                                                                   # (P,)
    mu = (Fd @ g) / (g @ g)
    assert mu > 0
    np.testing.assert_allclose(Fd, mu * g, atol=1e-7 * np.linalg.norm(Fd))
    # Optimality: no feasible direction beats g^T d = sqrt(2 epsilon g^T F^+ g).
    rng = np.random.default_rng(seed + 1)
    for u in rng.standard_normal((20, g.size)):
        uFu = u @ F @ u
        if uFu > 1e-12 * (u @ u):
            assert g @ (u * np.sqrt(2 * epsilon / uFu)) <= g @ d * (1 + 1e-9)


def _kl_gaps(kind, seed, epsilons, hidden):
    pol, theta, obs, act, adv, g, F = _problem(kind, seed, hidden=hidden)
    return [abs(pol.kl(theta, theta + _step(kind, g, F, e).step, obs) / e - 1.0) for e in epsilons]


@given(kind=st_kind, seed=st_seed)
def test_true_kl_of_natural_step_over_epsilon_tends_to_one(kind, seed):
    """Issue 5: mean KL(pi_theta || pi_theta+d) / epsilon -> 1 as epsilon -> 0 (damping 0), linear policies.

    KL(theta + d) = 1/2 d^T F d + O(|d|^3) and |d| = O(sqrt(epsilon)), so |KL / epsilon - 1| = O(sqrt(epsilon)):
    from epsilon = 1e-4 to 1e-8 the gap should shrink about 100x; we require 10x, unless the gap at 1e-4
    is already tiny because the cubic and quartic Taylor terms cancel there (seen once in 600 draws),
    in which case 1e-6 bounds it. epsilon >= 1e-8 keeps the rounding of KL (a second-order quantity
    computed from O(1) log-probs: ~1e-16 / epsilon relative) near 1e-8, below both thresholds.
    """
    g4, g8 = _kl_gaps(kind, seed, (1e-4, 1e-8), hidden=())
    assert g8 < 1e-3 and g8 < max(g4 / 10, 1e-6)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_true_kl_over_epsilon_with_a_hidden_layer(kind):
    """The same limit through a tanh layer. F has eigenvalues down to ~1e-6 on its range there, so the
    natural step is long and the quadratic model holds only for small epsilon: we test 1e-8 -> 1e-10
    (below 1e-10 the rounding floor above, ~1e-5, is reached)."""
    for seed in range(8):
        g8, g10 = _kl_gaps(kind, seed, (1e-8, 1e-10), hidden=(4,))
        assert g10 < g8 / 4 and g10 < 0.05


def _by_hand(pol, theta, theta_new, obs, act, logp_old, adv):
    """Surrogate (1/N) sum r A and mean KL(pi_theta || pi_theta_new), from the network's logits alone."""
    def logp(th):
        z, _ = pol.net.forward(th, obs)                                          # (N, K)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))                  # (N, K)
    lp_old, lp_new = logp(theta), logp(theta_new)
    N = obs.shape[0]
    sur = np.mean(np.exp(lp_new[np.arange(N), act] - logp_old) * adv)
    kl = np.mean(np.sum(np.exp(lp_old) * (lp_old - lp_new), axis=1))
    return sur, kl


@given(seed=st_seed, scale=st.floats(1e-3, 30.0), natural=st.booleans(), delta=st.floats(1e-4, 0.1),
       ratio=st.floats(0.3, 0.9), max_steps=st.integers(1, 15))
def test_line_search_on_a_policy_never_accepts_a_bad_step(seed, scale, natural, delta, ratio, max_steps):
    """Through the real policy: an accepted step satisfies the KL bound and raises the surrogate, both
    recomputed here from the logits; a rejected search returns theta unchanged; the trace is exact."""
    pol, theta, obs, act, adv, g, F = _problem("categorical", seed)
    logp_old = pol.log_prob(theta, obs, act)                                     # (N,)
    rng = np.random.default_rng(seed + 2)
    if natural:   # a natural step several times too long, as when the quadratic model is poor
        step = scale * natural_step(g, F, delta, damping=1e-3).step
    else:         # any direction, ascent or not
        step = rng.standard_normal(g.size) * scale / np.sqrt(g.size)
    f = lambda th: surrogate_value(pol, th, obs, act, logp_old, adv)             # noqa: E731
    res = backtracking_line_search(f, theta, step, constraint=lambda th: pol.kl(theta, th, obs), delta=delta,
                                   ratio=ratio, max_steps=max_steps)
    f0, _ = _by_hand(pol, theta, theta, obs, act, logp_old, adv)
    for j, (a, fv, kv) in enumerate(res.trace):
        sur, kl = _by_hand(pol, theta, theta + a * step, obs, act, logp_old, adv)
        # 1e-12 absolute: two float64 evaluations of the same O(1) means by different operation orders.
        assert a == ratio**j and abs(fv - sur) <= 1e-12 * (1 + abs(sur)) and abs(kv - kl) <= 1e-12 * (1 + kl)
    if res.accepted:
        sur, kl = _by_hand(pol, theta, res.theta, obs, act, logp_old, adv)
        assert kl <= delta * (1 + 1e-12) and sur > f0
        np.testing.assert_array_equal(res.theta, theta + res.step_fraction * step)
    else:
        np.testing.assert_array_equal(res.theta, theta)
        assert len(res.trace) == max_steps and res.step_fraction == 0.0


def test_line_search_on_a_policy_accepts_a_short_natural_step():
    """The search is not vacuous: a natural step at the KL radius is (eventually) accepted on real data."""
    pol, theta, obs, act, adv, g, F = _problem("categorical", 0)
    logp_old = pol.log_prob(theta, obs, act)
    ns = natural_step(g, F, 0.01, damping=1e-3)
    res = backtracking_line_search(lambda th: surrogate_value(pol, th, obs, act, logp_old, adv), theta, ns.step,
                                   constraint=lambda th: pol.kl(theta, th, obs), delta=0.01, ratio=0.8)
    assert res.accepted and res.step_fraction > 0.1
