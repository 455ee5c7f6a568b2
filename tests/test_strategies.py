"""The shared strategies deliver what tests/helpers/strategies.py promises the tests that rely on them:
the consequences their tolerances are argued from (pre-activation and probability bounds, overflow
without the max-shift) and the edge cases the strategies exist to reach (a linear and the deepest
network, one state and the largest batch, both policy kinds, the bounds of theta and of the actions)."""
import numpy as np
from hypothesis import find, given

from helpers import strategies as S


def _tanh_preactivations(net, theta, obs):
    """Every layer's z = h W^T + b, with h = tanh(z) in between: a list of (N, d_l)."""
    h, zs = obs, []
    for W, b in net.unflatten(theta):
        zs.append(h @ W.T + b)
        h = np.tanh(zs[-1])
    return zs


@given(S.policy_cases(activation="tanh"))
def test_tanh_preactivations_stay_within_the_bound_finite_differences_rely_on(case):
    """The module docstring's figure: |z| <= MAX_WIDTH THETA_BOUND max(OBS_BOUND, 1) + THETA_BOUND = 38."""
    zs = _tanh_preactivations(case.pol.net, case.theta[:case.pol.net.num_params], case.obs)
    assert max(np.abs(z).max() for z in zs) <= 38.0


@given(S.logits(S.MAX_N, S.MAX_DIM, extreme=False))
def test_moderate_logits_keep_every_probability_above_the_stated_floor(z):
    """log p_a = z_a - logsumexp(z) >= -30 - (30 + log A): p >= exp(-60) / A with A <= MAX_DIM."""
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert logp.min() >= -2 * S.LOGIT_MODERATE - np.log(S.MAX_DIM) - 1e-12


def test_extreme_logits_overflow_exp_and_underflow_probabilities():
    """What the extreme logits are for: exp(z) overflows and a shifted softmax has exact zeros."""
    z = find(S.logits(1, 3), lambda z: z.max() >= S.LOGIT_EXTREME and z.min() <= -S.LOGIT_EXTREME)
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(z)).any()
    p = np.exp(z - z.max())
    assert (p / p.sum() == 0.0).any()


def test_layer_sizes_reach_linear_and_deep():
    assert len(find(S.layer_sizes(), lambda s: len(s) == 2)) == 2          # hidden = (): a linear map
    assert len(find(S.layer_sizes(), lambda s: len(s) == 2 + S.MAX_HIDDEN_LAYERS)) == 2 + S.MAX_HIDDEN_LAYERS


def test_policy_cases_reach_one_state_the_largest_batch_and_both_kinds():
    assert find(S.policy_cases(), lambda c: c.obs.shape[0] == 1).obs.shape[0] == 1
    assert find(S.policy_cases(), lambda c: c.obs.shape[0] == S.MAX_N).obs.shape[0] == S.MAX_N
    assert find(S.policies(), lambda p: p.discrete).discrete
    assert not find(S.policies(), lambda p: not p.discrete).discrete


def test_thetas_and_actions_reach_their_bounds():
    t = find(S.thetas(3), lambda t: np.abs(t).max() == S.THETA_BOUND)
    assert t.dtype == np.float64 and t.shape == (3,)
    a = find(S.discrete_actions(S.MAX_N, 3), lambda a: a.min() == 0 and a.max() == 2)
    assert a.dtype == np.int64
    assert find(S.box_actions(2, 2), lambda a: np.abs(a).max() == S.ACT_BOUND).shape == (2, 2)


@given(S.policy_cases())
def test_policy_cases_fit_their_policy(case):
    """theta, states and actions have the policy's shapes, and every log-probability is finite."""
    pol, theta, obs, act = case
    assert theta.shape == (pol.num_params,) and obs.shape == (obs.shape[0], pol.obs_dim)
    assert act.shape == ((obs.shape[0],) if pol.discrete else (obs.shape[0], pol.act_dim))
    assert np.all(np.isfinite(pol.log_prob(theta, obs, act)))
