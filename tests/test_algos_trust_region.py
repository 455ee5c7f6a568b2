"""Tests of purepg.algos.trust_region, the policy step NPG and TRPO share: the natural step on a real batch
against a hand solve, CG against Cholesky, the line search's guarantees, a skipped step on a zero gradient,
the surrogate's overflow guard, the logged columns and the shared config fields."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purepg.algos import critic, npg, trpo, trust_region

from helpers.algo_runs import SMALL, make_ctx


# ----------------------------------------------------------------------------- the step
@settings(max_examples=8)
@given(seed=st.integers(0, 2**31 - 1), delta=st.floats(1e-4, 0.05), damping=st.floats(0.0, 0.1))
def test_natural_policy_step_equals_hand_solution(seed, delta, damping):
    """On a real CartPole batch: g = S^T A / N from the score matrix, d from np.linalg.solve, and the
    accepted parameters satisfy the KL bound and raise the surrogate."""
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL), seed=seed % 1000)
    flat, adv = critic.advantages(ctx, state, batch)
    pol, theta = ctx.pol, state["theta"]
    F = pol.fisher(theta, flat.obs)                                              # (P, P)
    damping = max(damping, 1e-6)   # the categorical F is singular (softmax shift): Cholesky needs c > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                           # no skipped step here
        ps = trust_region.natural_policy_step(pol, theta, flat.obs, flat.act, flat.logp_old, adv, F, delta=delta,
                                     damping=damping, solver="cholesky", cg_iters=1, cg_tol=0.0, ls_ratio=0.5,
                                     ls_max_steps=15)
    g = pol.score(theta, flat.obs, flat.act).T @ adv / adv.size                  # (P,)
    A = F + damping * np.eye(g.size)
    x = np.linalg.solve(A, g)
    d = np.sqrt(2 * delta / (x @ A @ x)) * x
    # 1e-8 relative: LAPACK's LU against purepg's Cholesky on F + cI with condition up to ~1e8 (c >= 1e-6).
    np.testing.assert_allclose(ps.step, d, atol=1e-8 * np.linalg.norm(d))
    assert not ps.skipped and ps.cg_iterations == 0
    if ps.accepted:
        np.testing.assert_array_equal(ps.theta, theta + ps.step_fraction * ps.step)
        assert 0 < ps.kl <= delta and ps.surrogate_gain > 0
        assert ps.kl == pol.kl(theta, ps.theta, flat.obs)
    else:
        np.testing.assert_array_equal(ps.theta, theta)
        assert ps.kl == 0.0 and ps.surrogate_gain == 0.0 and ps.ls_steps == 15


def test_cg_solver_agrees_with_cholesky():
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL))
    flat, adv = critic.advantages(ctx, state, batch)
    F = ctx.pol.fisher(state["theta"], flat.obs)
    kw = dict(delta=0.01, damping=1e-3, cg_tol=1e-14, ls_ratio=0.8, ls_max_steps=10)
    args = (ctx.pol, state["theta"], flat.obs, flat.act, flat.logp_old, adv, F)
    chol = trust_region.natural_policy_step(*args, solver="cholesky", cg_iters=1, **kw)
    cg = trust_region.natural_policy_step(*args, solver="cg", cg_iters=10 * F.shape[0], **kw)
    # 1e-8: CG to a 1e-14 relative residual on a system of condition <= ||F|| / c ~ 1e3.
    np.testing.assert_allclose(cg.step, chol.step, atol=1e-8 * np.linalg.norm(chol.step))
    assert cg.cg_iterations > 1 and cg.accepted == chol.accepted


def test_zero_gradient_skips_the_update():
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL))
    flat, _ = critic.advantages(ctx, state, batch)
    F = ctx.pol.fisher(state["theta"], flat.obs)
    with pytest.warns(RuntimeWarning, match=r"g is zero: there is no ascent direction"):
        ps = trust_region.natural_policy_step(ctx.pol, state["theta"], flat.obs, flat.act, flat.logp_old,
                                     np.zeros(flat.adv.size), F, delta=0.01, damping=1e-3, solver="cholesky",
                                     cg_iters=10, cg_tol=0.0, ls_ratio=0.8, ls_max_steps=10)
    assert ps.skipped and not ps.accepted and np.array_equal(ps.theta, state["theta"])


# ----------------------------------------------------------------------------- surrogate, logs, config
def test_surrogate_value_is_eq_1_and_nan_on_overflow():
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL))
    flat, adv = critic.advantages(ctx, state, batch)
    pol, theta = ctx.pol, state["theta"]
    assert trust_region.surrogate_value(pol, theta, flat.obs, flat.act, flat.logp_old, adv) == \
        pytest.approx(np.mean(adv), rel=1e-12, abs=1e-15)                      # r = 1 at theta_old
    logp_old = flat.logp_old - 800.0                                          # every ratio e^800: overflows
    assert np.isnan(trust_region.surrogate_value(pol, theta, flat.obs, flat.act, logp_old, adv))


def test_step_logs_are_the_progress_columns():
    ps = trust_region.PolicyStep(np.zeros(2), np.ones(2), False, True, "accepted", 0.5, 2, 0.1, 0.004, 0.2, 7, 1e-9)
    assert trust_region.step_logs(ps) == {
        "surrogate_gain": 0.1, "kl": 0.004, "accepted": 1.0, "skipped": 0.0, "step_fraction": 0.5, "ls_steps": 2,
        "expected_improve": 0.2, "cg_iterations": 7, "cg_residual": 1e-9}


@pytest.mark.parametrize("field, value, match", [
    ("cg_iters", 0, r"cg_iters: expected an integer >= 1, got 0"),
    ("ls_ratio", 1.0, r"ls_ratio: expected a finite number in \(0, 1\), got 1\.0"),
    ("ls_max_steps", 0, r"ls_max_steps: expected an integer >= 1, got 0"),
    ("damping", -1.0, r"damping: expected a finite number >= 0, got -1\.0"),
])
def test_shared_step_fields_are_checked_for_npg_and_trpo(field, value, match):
    """StepConfig's fields, declared once, checked the same way by both algorithms' configs."""
    assert issubclass(npg.Config, trust_region.StepConfig) and issubclass(trpo.Config, trust_region.StepConfig)
    for Config in (npg.Config, trpo.Config):
        with pytest.raises(ValueError, match=match):
            Config(**{field: value})
