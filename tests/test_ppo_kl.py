"""purepg.algos.ppo_kl: the adaptive-beta rule inside the loop (halved or doubled from the exact mean KL,
kept within its bounds), beta weighing the KL penalty, bound checks, and a deterministic run."""
import csv

import pytest

from purepg.algos import ppo_kl
from purepg.pg.surrogates import update_beta
from purepg.run import runner

from helpers.algo_runs import PPO_FAST as FAST, make_ctx


def _rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, h in enumerate(rows[0]) if h not in runner.WALL_COLUMNS]
    return [[r[i] for i in keep] for r in rows]


def _batch(config):
    return make_ctx(ppo_kl, config)


@pytest.mark.parametrize("d_targ, factor", [(1e3, 0.5), (1e-12, 2.0)])
def test_beta_rule_in_the_loop(d_targ, factor):
    """After the epochs beta is halved (KL << d_targ) or doubled (KL >> d_targ), from the exact mean KL."""
    cfg = ppo_kl.Config(**FAST, beta_init=0.7, target_kl=d_targ)
    ctx, state, batch, rng = _batch(cfg)
    new, logs = ppo_kl.update(ctx, state, batch, rng, 0.0)
    T, E, d = batch.obs.shape
    kl = ctx.pol.kl(state["theta"], new["theta"], batch.obs.reshape(T * E, d))
    assert logs["kl"] == kl > 0
    assert new["beta"] == logs["beta"] == update_beta(0.7, kl, d_targ) == 0.7 * factor


def test_beta_weighs_the_kl_penalty():
    """The loop uses the state's beta: a huge beta keeps the policy much closer to pi_old."""
    kls = []
    for beta in (1e-3, 1e3):
        ctx, state, batch, rng = _batch(ppo_kl.Config(**FAST))
        kls.append(ppo_kl.update(ctx, {**state, "beta": beta}, batch, rng, 0.0)[1]["kl"])
    assert kls[1] < 0.05 * kls[0]


def test_same_seed_same_progress(tmp_path):
    cfg = ppo_kl.Config(**FAST)
    for name in ("a", "b"):
        runner.train(ppo_kl, "CartPole-v1", cfg, seed=4, out_dir=str(tmp_path / name), total_steps=320, verbose=False)
    a, b = _rows(tmp_path / "a" / "progress.csv"), _rows(tmp_path / "b" / "progress.csv")
    assert a == b and len(a) == 6 and "beta" in a[0]


@pytest.mark.parametrize("d_targ, bound", [(1e3, "beta_min"), (1e-12, "beta_max")])
def test_beta_stays_within_its_bounds(d_targ, bound):
    """A beta at its bound stays there however often the rule would halve or double it (no underflow to 0)."""
    cfg = ppo_kl.Config(**FAST, beta_init=1.0, target_kl=d_targ, beta_min=1.0 if bound == "beta_min" else 1e-8,
                        beta_max=1.0 if bound == "beta_max" else 1e8)
    ctx, state, batch, rng = _batch(cfg)
    new, logs = ppo_kl.update(ctx, state, batch, rng, 0.0)
    assert new["beta"] == logs["beta"] == 1.0


def test_beta_bounds_are_checked():
    with pytest.raises(ValueError, match=r"beta_init: expected a value in \[beta_min, beta_max\] = \[2\.0, 100000000\.0\], got 1\.0"):
        ppo_kl.Config(beta_min=2.0)
    with pytest.raises(ValueError, match=r"beta_min"):
        ppo_kl.Config(beta_min=0.0)
