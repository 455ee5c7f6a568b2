"""Tests of purepg.algos.critic, the critic NPG, TRPO, TRPO-Lagrangian and the off-policy learner share:
GAE advantages of the current V against a plain loop (raw and standardised), the value fit's loss and
Adam steps, a fresh state, and the checks of the critic fields every sharing Config makes."""
import numpy as np
import pytest

from purepg.algos import critic, npg, offpolicy, trpo, trpo_lagrangian

from helpers.algo_runs import SMALL, make_ctx
from helpers.gae_loop import plain_gae


def _v(ctx, theta_v, obs):
    """V of every (t, e) state, one row at a time: (T, E)."""
    return np.array([[ctx.vf.predict(theta_v, o[None])[0] for o in row] for row in obs])


@pytest.mark.parametrize("normalize", [False, True])
def test_advantages_are_gae_of_the_current_critic(normalize):
    """A from a plain loop over the batch with V of the state's theta_v, targets R = A + V; standardised
    A when configured. 1e-10: the same sums in another order, on values of O(1) to O(10)."""
    ctx, state, batch, _ = make_ctx(npg, npg.Config(**SMALL, normalize_advantage=normalize), seed=5)
    c = ctx.config
    v, v_next = _v(ctx, state["theta_v"], batch.obs), _v(ctx, state["theta_v"], batch.final_obs)   # (T, E)
    A = plain_gae(batch.rew, v, v_next, batch.terminated, batch.truncated, c.gamma, c.gae_lambda)
    flat, adv = critic.advantages(ctx, state, batch)
    np.testing.assert_allclose(flat.adv, A.reshape(-1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(flat.ret, (A + v).reshape(-1), rtol=1e-10, atol=1e-10)
    want = (A - A.mean()) / A.std() if normalize else A
    np.testing.assert_allclose(adv, want.reshape(-1), rtol=1e-9, atol=1e-10)
    assert batch.terminated.any()                     # the no-bootstrap branch is exercised


def test_fit_value_lowers_the_loss_by_minibatch_adam():
    """The fitted V is closer to the targets (eq. 1 of purepg.model.value, computed here directly);
    Adam took vf_epochs * N / vf_minibatch_size steps; the logs report the loss after the fit."""
    ctx, state, batch, rng = make_ctx(npg, npg.Config(**{**SMALL, "vf_epochs": 3, "vf_minibatch_size": 32}))
    flat, _ = critic.advantages(ctx, state, batch)
    loss = lambda th: 0.5 * np.mean((ctx.vf.predict(th, flat.obs) - flat.ret) ** 2)   # noqa: E731
    theta_v, opt_v, logs = critic.fit_value(ctx, state, flat, rng)
    assert loss(theta_v) < loss(state["theta_v"])
    assert logs["value_loss"] == pytest.approx(loss(theta_v), rel=1e-10)
    assert opt_v.t == 3 * flat.ret.size // 32 and set(logs) == {"value_loss", "explained_variance"}


def test_init_gives_fresh_parameters_and_adam_state():
    ctx, _, _, _ = make_ctx(npg, npg.Config(**SMALL))
    s = critic.init(ctx, np.random.default_rng(0))
    assert s["theta"].shape == (ctx.pol.num_params,) and s["theta_v"].shape == (ctx.vf.num_params,)
    assert s["opt_v"].t == 0 and not s["opt_v"].m.any() and not s["opt_v"].v.any()
    again = critic.init(ctx, np.random.default_rng(0))
    np.testing.assert_array_equal(again["theta_v"], s["theta_v"])


@pytest.mark.parametrize("field, value, match", [
    ("vf_lr", 0.0, r"vf_lr: expected a finite number > 0, got 0\.0"),
    ("vf_epochs", 0, r"vf_epochs: expected an integer >= 1, got 0"),
    ("vf_minibatch_size", 0, r"vf_minibatch_size: expected an integer >= 1, got 0"),
    ("vf_minibatch_size", 100, r"vf_minibatch_size: expected a divisor of the batch N = num_envs \* num_steps"),
])
def test_critic_fields_are_checked_by_every_config_sharing_them(field, value, match):
    """CriticConfig's fields and its check that the critic minibatch divides the batch, in each algorithm."""
    for algo in (npg, trpo, trpo_lagrangian, offpolicy):
        with pytest.raises(ValueError, match=match):
            algo.Config(**{**SMALL, field: value})
