"""purepg.testing: every check passes on purepg itself, fails with a readable minimal example on a planted
bug, reports bad output (shape, dtype, NaN, an exception) without a Hypothesis traceback, and its
strategies produce what they claim."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import purepg.testing as T
import purepg.testing.strategies as S
from purepg.optim import backtracking_line_search, conjugate_gradient, natural_step
from purepg.pg.returns import discounted_returns, gae
from purepg.pg.surrogates import ppo_clip, ppo_kl_penalty
from purepg.testing.update_checks import ppo_update_reference, value_loss_reference

N_EX = 10     # examples per check here: each check's own strategies are tested below


def _purepg():
    """purepg's own functions behind the checks' signatures."""
    pol = lambda spec: spec.policy()                                         # noqa: E731

    def clip(spec, theta, obs, act, logp_old, adv, clip_range):
        o = ppo_clip(pol(spec), theta, obs, act, logp_old, adv, eps=clip_range)
        return -o.value, -o.grad

    def penalty(spec, theta, obs, act, logp_old, adv, theta_old, beta):
        o = ppo_kl_penalty(pol(spec), theta, obs, act, logp_old, adv, theta_old=theta_old, beta=beta)
        return -o.value, -o.grad

    def update(spec, theta, m, v, t, obs, act, logp_old, adv, clip_range, lr, max_grad_norm):
        c = dict(spec=spec, theta=theta, obs=obs, act=act, logp_old=logp_old, adv=adv, m=m, v=v, t=t,
                 hp=dict(clip_range=clip_range, lr=lr, max_grad_norm=max_grad_norm))
        return ppo_update_reference(c)

    return dict(
        log_prob=lambda spec, theta, obs, act: pol(spec).log_prob(theta, obs, act),
        entropy=lambda spec, theta, obs: pol(spec).entropy(theta, obs),
        kl=lambda spec, theta_old, theta_new, obs: pol(spec).kl(theta_old, theta_new, obs),
        score=lambda spec, theta, obs, act: pol(spec).score(theta, obs, act),
        fvp=lambda spec, theta, obs, v: pol(spec).fvp(theta, obs, v),
        gae=lambda rew, v, v_next, terminated, truncated, gamma, gae_lambda:
            gae(rew, v, v_next, terminated, truncated, gamma, gae_lambda).adv,
        returns=lambda rew, v_next, terminated, truncated, gamma:
            discounted_returns(rew, terminated, truncated, v_next, gamma),
        ppo_clip=clip, ppo_kl_penalty=penalty, value_loss=value_loss_reference, ppo_update=update,
        cg=lambda matvec, b, iters: conjugate_gradient(matvec, b, iters=iters, tol=0.0).x,
        natural_step=lambda g, F, delta: natural_step(g, F, delta).step,
        line_search=lambda f, kl, theta, step, delta, ratio, max_steps: backtracking_line_search(
            f, theta, step, constraint=kl, delta=delta, ratio=ratio, max_steps=max_steps).theta)


TestPurepgAgainstItself = T.suite(max_examples=N_EX, **_purepg())


def test_every_quantity_of_the_issue_has_a_check():
    assert set(_purepg()) == set(T.CHECKS)


# ----------------------------------------------------------------------------- planted bugs, NumPy
def _mismatch(check, fn, **kw):
    with pytest.raises(T.Mismatch) as e:
        check(fn, **kw)
    return str(e.value)


def test_kl_in_the_wrong_direction_is_caught_with_a_one_state_example():
    msg = _mismatch(T.check_kl, lambda spec, theta_old, theta_new, obs: spec.policy().kl(theta_new, theta_old, obs),
                    max_examples=50)
    assert msg.startswith("kl (old_new): the output differs")
    assert "obs = np.array([[" in msg and "hidden=()" in msg           # shrunk to a linear policy
    assert "Traceback" not in msg and "Falsifying" not in msg


def test_gae_without_truncation_bootstrap_is_caught_at_a_truncated_step():
    def bug(rew, v, v_next, terminated, truncated, gamma, gae_lambda):
        return gae(rew, v, v_next, terminated | truncated, truncated, gamma, gae_lambda).adv
    msg = _mismatch(T.check_gae, bug, max_examples=100)
    assert "truncated = np.array([[ True]]" in msg and "terminated = np.array([[False]]" in msg


def test_the_report_is_code_that_rebuilds_the_inputs():
    msg = _mismatch(T.check_entropy, lambda spec, theta, obs: -spec.policy().entropy(theta, obs), max_examples=20)
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip().startswith(("theta =", "obs ="))]
    ns = {"np": np}
    exec("\n".join(lines), ns)                                            # noqa: S102 -- our own report
    assert ns["theta"].dtype == np.float64 and ns["obs"].ndim == 2


def test_profiles_differ_where_the_libraries_do():
    """SB3 leaves a one-sample minibatch's advantage as it is; purepg centres it to 0: one update apart."""
    ref = _purepg()["ppo_update"]
    msg = _mismatch(T.check_ppo_update, ref, profile="sb3", max_examples=30)
    assert msg.startswith("ppo_update: theta differs") and "adv = np.array([" in msg


# ----------------------------------------------------------------------------- bad output
@pytest.mark.parametrize("bad, says", [
    (lambda spec, theta, obs, act: np.zeros(7), "returned shape (7,)"),
    (lambda spec, theta, obs, act: np.zeros(obs.shape[0], np.float32), "returned dtype float32"),
    (lambda spec, theta, obs, act: np.full(obs.shape[0], np.nan), "returned nan at index (0,)"),
    (lambda spec, theta, obs, act: 1 / 0, "your function raised ZeroDivisionError"),
    (lambda spec, theta, obs, act: "abc", "returned dtype <U3"),
])
def test_bad_output_is_reported_with_the_quantity_and_input(bad, says):
    msg = _mismatch(T.check_log_prob, bad, max_examples=5)
    assert msg.startswith("log_prob: ") and says in msg and "Fix:" in msg and "theta = np.array(" in msg


def test_unknown_profile_quantity_and_direction_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"profile: expected one of \['cleanrl', 'purepg', 'sb3', 'tianshou'\]"):
        T.conventions("sb2")
    with pytest.raises(ValueError, match="suite: expected quantities among .*, got unknown \\['logprob'\\]"):
        T.suite(logprob=print)
    with pytest.raises(ValueError, match="direction: expected 'old_new' or 'new_old'"):
        T.check_kl(print, direction="forward")


def test_suite_makes_one_test_per_quantity():
    cls = T.suite(profile="sb3", log_prob=print, gae=print)
    assert sorted(n for n in vars(cls) if n.startswith("test_")) == ["test_gae", "test_log_prob"]


# ----------------------------------------------------------------------------- the strategies
@settings(max_examples=60)
@given(S.episode_batches())
def test_episode_batches_continue_values_inside_episodes(b):
    T_, E = b.rew.shape
    assert b.v.shape == b.v_next.shape == b.terminated.shape == b.truncated.shape == (T_, E)
    inside = ~(b.terminated | b.truncated)[:-1]
    np.testing.assert_array_equal(b.v_next[:-1][inside], b.v[1:][inside])


def test_episode_batches_reach_the_edge_cases():
    """Both flags at once, an episode ending at the last step, and none ending at all, all occur."""
    seen = set()

    @settings(max_examples=200, derandomize=True)
    @given(S.episode_batches())
    def collect(b):
        seen.add("both" if (b.terminated & b.truncated).any() else "")
        seen.add("last" if (b.terminated | b.truncated)[-1].any() else "")
        seen.add("none" if not (b.terminated | b.truncated).any() else "")
    collect()
    assert {"both", "last", "none"} <= seen


@settings(max_examples=40)
@given(S.spd_systems())
def test_spd_systems_are_symmetric_positive_definite_and_conditioned(sys):
    np.testing.assert_array_equal(sys.A, sys.A.T)
    lam = np.linalg.eigvalsh(sys.A)
    assert lam.min() > 0.99 and lam.max() / lam.min() < 1.01e3


@settings(max_examples=40)
@given(S.policy_specs(), st.data())
def test_policy_specs_build_the_policy_they_describe(spec, data):
    pol = spec.policy()
    assert pol.net.sizes == spec.sizes and pol.discrete == (spec.kind == "categorical")
    assert spec.kind != "categorical" or spec.act_dim >= 2


def test_advantages_include_a_constant_batch():
    seen = []

    @settings(max_examples=60, derandomize=True)
    @given(S.advantages(4))
    def collect(a):
        assert a.shape == (4,) and np.all(np.abs(a) <= 10)
        seen.append(np.ptp(a) == 0)
    collect()
    assert any(seen) and not all(seen)


@settings(max_examples=40)
@given(S.hyperparameters())
def test_hyperparameters_are_in_their_valid_ranges(hp):
    assert 0 <= hp["gamma"] <= 1 and 0 <= hp["gae_lambda"] <= 1 and 0 < hp["clip_range"] <= 0.5
    assert 0 < hp["delta"] and 0 < hp["ls_ratio"] < 1 and hp["ls_max_steps"] >= 1 and hp["lr"] > 0
