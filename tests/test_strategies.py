"""The shared strategies keep the bounds they promise, and reach the cases they exist for."""
import numpy as np
from hypothesis import find, given
from hypothesis import strategies as st

import purepg
from helpers import strategies as S


@given(S.layer_sizes())
def test_layer_sizes_bounds(sizes):
    assert 2 <= len(sizes) <= 2 + S.MAX_HIDDEN_LAYERS
    assert 1 <= sizes[0] <= S.MAX_DIM and 1 <= sizes[-1] <= S.MAX_DIM
    assert all(1 <= h <= S.MAX_WIDTH for h in sizes[1:-1])


def test_layer_sizes_reach_linear_and_deep():
    # hidden=() (a linear map) and the deepest allowed network are both generated
    assert len(find(S.layer_sizes(), lambda s: len(s) == 2)) == 2
    assert len(find(S.layer_sizes(), lambda s: len(s) == 2 + S.MAX_HIDDEN_LAYERS)) == 2 + S.MAX_HIDDEN_LAYERS


@given(S.mlps())
def test_mlps_are_mlps(net):
    assert isinstance(net, purepg.MLP) and net.activation in S.ACTIVATIONS


@given(st.integers(0, 40).flatmap(lambda n: st.tuples(st.just(n), S.thetas(n))))
def test_thetas_shape_dtype_bound(n_theta):
    n, theta = n_theta
    assert theta.shape == (n,) and theta.dtype == np.float64
    assert np.all(np.isfinite(theta)) and np.all(np.abs(theta) <= S.THETA_BOUND)


@given(S.observations(3, 2), S.box_actions(3, 2), S.discrete_actions(5, 3))
def test_obs_and_action_bounds(obs, act_box, act_disc):
    assert obs.shape == (3, 2) and np.all(np.abs(obs) <= S.OBS_BOUND)
    assert act_box.shape == (3, 2) and np.all(np.abs(act_box) <= S.ACT_BOUND)
    assert act_disc.dtype == np.int64 and act_disc.shape == (5,)
    assert np.all((act_disc >= 0) & (act_disc < 3))


@given(S.logits(4, 3), S.logits(4, 3, extreme=False))
def test_logits_bounds(z_ext, z_mod):
    assert np.all(np.isfinite(z_ext)) and np.all(np.abs(z_ext) <= S.LOGIT_EXTREME)
    assert np.all(np.abs(z_mod) <= S.LOGIT_MODERATE)


def test_logits_reach_the_extremes():
    # both signs of the extreme logit occur, in one row, so the softmax sees a 2e4 spread
    z = find(S.logits(1, 3), lambda z: z.max() >= S.LOGIT_EXTREME and z.min() <= -S.LOGIT_EXTREME)
    assert z.max() - z.min() == 2 * S.LOGIT_EXTREME


@given(S.log_stds(3))
def test_log_stds_safe_range(ls):
    assert ls.shape == (3,) and np.all((ls >= S.LOG_STD_MIN) & (ls <= S.LOG_STD_MAX))


@given(S.policy_cases())
def test_policy_cases_are_consistent(case):
    pol, theta, obs, act = case
    assert theta.shape == (pol.num_params,) and obs.shape[1] == pol.obs_dim
    assert 1 <= obs.shape[0] <= S.MAX_N
    assert np.all(np.abs(theta[:pol.net.num_params]) <= S.THETA_BOUND)
    if pol.discrete:
        assert pol.act_dim >= 2 and act.shape == (obs.shape[0],)
        assert np.all((act >= 0) & (act < pol.act_dim))
    else:
        assert act.shape == (obs.shape[0], pol.act_dim)
        ls = theta[pol.net.num_params:]
        assert np.all((ls >= S.LOG_STD_MIN) & (ls <= S.LOG_STD_MAX))
    assert np.all(np.isfinite(pol.log_prob(theta, obs, act)))


@given(S.policies(kind="gaussian"), S.policies(kind="categorical"))
def test_policies_kind_is_pinned(gauss, cat):
    assert not gauss.discrete and cat.discrete


def test_policies_reach_both_kinds():
    assert find(S.policies(), lambda p: p.discrete).discrete
    assert not find(S.policies(), lambda p: not p.discrete).discrete
