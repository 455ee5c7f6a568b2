"""purepg.algos.trpo_lagrangian: config errors, the multiplier's projected dual ascent (it rises while
the KL exceeds delta, falls and stays >= 0 below it) and the primal Adam steps on the Lagrangian."""
import numpy as np
import pytest

from purepg.algos import trpo_lagrangian

from helpers.algo_runs import SMALL, make_ctx


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("kwargs, match", [
    (dict(delta=0.0), r"delta: expected a finite number > 0, got 0\.0"),
    (dict(nu_init=-1.0), r"nu_init: expected a finite number >= 0, got -1\.0"),
    (dict(nu_lr=0.0), r"nu_lr: expected a finite number > 0, got 0\.0"),
    (dict(lr=-1e-3), r"lr: expected a finite number > 0, got -0\.001"),
    (dict(epochs=0), r"epochs: expected an integer >= 1, got 0"),
    (dict(gamma=2.0), r"gamma: expected a finite number in \[0, 1\], got 2\.0"),
])
def test_lagrangian_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        trpo_lagrangian.Config(**kwargs)


# ----------------------------------------------------------------------------- Lagrangian
def _lagrangian_update(**kw):
    ctx, state, batch, rng = make_ctx(trpo_lagrangian, trpo_lagrangian.Config(**{**SMALL, **kw}))
    new, logs = trpo_lagrangian.update(ctx, state, batch, rng, 0.0)
    return ctx, state, new, logs


def test_lambda_rises_when_kl_exceeds_delta():
    ctx, state, new, logs = _lagrangian_update(delta=1e-8, nu_init=0.5, nu_lr=10.0)
    assert logs["kl"] > 1e-8 and logs["nu"] == 0.5
    assert new["nu"] == 0.5 + 10.0 * (logs["kl"] - 1e-8) > 0.5


@pytest.mark.parametrize("nu_lr", [0.5, 50.0])
def test_lambda_falls_when_kl_is_below_delta_and_stays_non_negative(nu_lr):
    ctx, state, new, logs = _lagrangian_update(delta=1.0, nu_init=1.0, nu_lr=nu_lr)
    assert logs["kl"] < 1.0
    assert new["nu"] == max(0.0, 1.0 + nu_lr * (logs["kl"] - 1.0)) < 1.0
    assert (new["nu"] == 0.0) == (nu_lr == 50.0)      # 1 + 50 (kl - 1) < 0: projected to 0


def test_lagrangian_primal_ascends_and_penalises_kl():
    """The Adam steps raise L(theta', nu) above its value at theta, nu delta (there r = 1 and the
    standardised A have mean 0, up to 1e-16, and D = 0); a larger nu gives a smaller KL on the same batch."""
    kls = []
    for nu in (0.0, 10.0):     # (with nu = 100 Adam's fixed step overshoots the stiff penalty: no ascent)
        ctx, state, new, logs = _lagrangian_update(nu_init=nu)
        kls.append(logs["kl"])
        assert logs["lagrangian"] > nu * 0.01 + 1e-12 and np.all(np.isfinite(new["theta"]))
    assert kls[1] < kls[0]
