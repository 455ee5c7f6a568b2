"""The shared training loop: run directory, determinism, resume, NaN handling, refusal to overwrite."""
import csv
import dataclasses
import json
import os
import re
import signal
import sys
import time
import types

import numpy as np
import pytest

from purepg.run import checkpoint, rundir, runner
from purepg.algos import ALGOS
from purepg.algos.common import BaseConfig
from purepg.optim import adam_init, adam_step
from purepg.env.rollout import NonFiniteError


@dataclasses.dataclass(frozen=True)
class NoopConfig(BaseConfig):
    """Both normalisers on, so that checkpoints and resumes carry their statistics."""
    num_envs: int = 2
    num_steps: int = 16
    hidden: tuple = (8,)
    normalize_obs: bool = True
    normalize_reward: bool = True
    vf_hidden: tuple = (8,)
    lr: float = 1e-2
    poison_at: int = -1
    interrupt_at: int = -1


def _init(ctx, rng):
    theta = ctx.pol.init(rng)
    return {"theta": theta, "opt": adam_init(theta.size)}


def _update(ctx, state, batch, rng, progress):
    """A REINFORCE-like step on the batch: enough to change theta deterministically."""
    T, E, d = batch.obs.shape
    obs, act = batch.obs.reshape(T * E, d), batch.act.reshape(T * E)
    w = batch.rew.reshape(-1) - batch.rew.mean() + rng.standard_normal(T * E) * 0.1
    g = ctx.pol.log_prob_grad(state["theta"], obs, act, w) / (T * E)
    theta, opt = adam_step(state["theta"], -g, state["opt"], lr=ctx.config.lr)
    if progress * ctx.total_steps == ctx.config.interrupt_at:
        signal.raise_signal(signal.SIGINT)       # as if the user pressed Ctrl-C during this iteration
    if ctx.config.poison_at >= 0 and progress * ctx.total_steps >= ctx.config.poison_at:
        theta = theta.copy()
        theta[0] = np.nan
    return {"theta": theta, "opt": opt}, {"grad_norm": float(np.linalg.norm(g)), "progress": progress}


NOOP = types.SimpleNamespace(NAME="noop", Config=NoopConfig, init=_init, update=_update)


@pytest.fixture
def noop_registered(monkeypatch):
    mod = types.ModuleType("purepg_test_noop")
    mod.__dict__.update(NAME="noop", Config=NoopConfig, init=_init, update=_update)
    monkeypatch.setitem(sys.modules, "purepg_test_noop", mod)
    monkeypatch.setitem(ALGOS, "noop", "purepg_test_noop")
    return mod


def _rows(path, drop=runner.WALL_COLUMNS):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, h in enumerate(rows[0]) if h not in drop]
    return [[r[i] for i in keep] for r in rows]


def test_run_directory_contents(tmp_path):
    out = tmp_path / "run"
    summary = runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=3, out_dir=str(out), total_steps=160,
                           checkpoint_every=2, verbose=False)
    assert summary["iterations"] == 5 and summary["steps"] == 160
    meta = json.loads((out / "config.json").read_text())
    assert meta["algo"] == "noop" and meta["env_id"] == "CartPole-v1" and meta["seed"] == 3
    assert meta["config"]["lr"] == 0.01 and meta["config"]["hidden"] == [8]
    rows = _rows(out / "progress.csv", drop=())
    assert rows[0][:3] == ["iteration", "step", "episodes"] and len(rows) == 6
    assert [r[1] for r in rows[1:]] == ["32", "64", "96", "128", "160"]
    tree, ck = checkpoint.load(str(out / "checkpoint.npz"))
    assert ck["iteration"] == 5 and tree["algo"]["theta"].shape == (summary["last_row"] and tree["algo"]["theta"].size,)
    assert isinstance(tree["algo"]["opt"], type(adam_init(1)))


def test_same_seed_same_progress(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=1, out_dir=str(out), total_steps=96, verbose=False)
    assert _rows(a / "progress.csv") == _rows(b / "progress.csv")
    c = tmp_path / "c"
    runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=2, out_dir=str(c), total_steps=96, verbose=False)
    assert _rows(a / "progress.csv") != _rows(c / "progress.csv")


def test_sigint_then_resume_reproduces_uninterrupted_run(tmp_path, noop_registered):
    full, part = tmp_path / "full", tmp_path / "part"
    runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=5, out_dir=str(full), total_steps=320, verbose=False)
    with pytest.raises(runner.Interrupted, match=r"interrupted by SIGINT at iteration 4; checkpoint saved with 4 "
                                                 r"iterations and 128 steps\. Resume with: purepg resume"):
        runner.train(NOOP, "CartPole-v1", NoopConfig(interrupt_at=96), seed=5, out_dir=str(part),
                     total_steps=320, checkpoint_every=3, verbose=False)
    _, ck = checkpoint.load(str(part / "checkpoint.npz"))
    assert ck["iteration"] == 4
    # the interrupted run's config differs only in interrupt_at; resume it as the plain config
    meta = json.loads((part / "config.json").read_text())
    meta["config"]["interrupt_at"] = -1
    (part / "config.json").write_text(json.dumps(meta))
    runner.resume(str(part), verbose=False)
    assert _rows(full / "progress.csv") == _rows(part / "progress.csv")
    t_full, _ = checkpoint.load(str(full / "checkpoint.npz"))
    t_part, _ = checkpoint.load(str(part / "checkpoint.npz"))
    np.testing.assert_array_equal(t_full["algo"]["theta"], t_part["algo"]["theta"])


def _interrupted_run(out, seed, at, total):
    with pytest.raises(runner.Interrupted):
        runner.train(NOOP, "CartPole-v1", NoopConfig(interrupt_at=at), seed=seed, out_dir=str(out),
                     total_steps=total, checkpoint_every=100, verbose=False)
    meta = json.loads((out / "config.json").read_text())
    meta["config"]["interrupt_at"] = -1
    (out / "config.json").write_text(json.dumps(meta))


def test_resume_after_rows_beyond_checkpoint(tmp_path, noop_registered, capsys):
    """Rows written after the last checkpoint (a crash) are dropped and recomputed identically."""
    full, part, early = tmp_path / "full", tmp_path / "part", tmp_path / "early"
    runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=7, out_dir=str(full), total_steps=224, verbose=False)
    _interrupted_run(part, 7, 128, 224)     # progress.csv: 5 rows
    _interrupted_run(early, 7, 64, 224)     # checkpoint at iteration 3
    os.replace(early / "checkpoint.npz", part / "checkpoint.npz")
    runner.resume(str(part), verbose=False)
    assert _rows(full / "progress.csv") == _rows(part / "progress.csv")
    assert re.search(r"progress\.csv: dropped the 2 row\(s\) logged after the checkpoint \(iteration 3\); they are "
                     r"computed again", capsys.readouterr().err)


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "run"
    runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(out), total_steps=32, verbose=False)
    with pytest.raises(rundir.RunDirError, match="exists and is not empty.*--force"):
        runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(out), total_steps=32, verbose=False)
    runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(out), total_steps=32, verbose=False,
                 force=True)


def test_nonfinite_update_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    cfg = NoopConfig(poison_at=96)
    with pytest.raises(NonFiniteError, match=r"iteration 3: the update produced a non-finite theta"):
        runner.train(NOOP, "CartPole-v1", cfg, seed=0, out_dir=str(out), total_steps=320, checkpoint_every=2,
                     verbose=False)
    tree, ck = checkpoint.load(str(out / "checkpoint.npz"))
    assert ck["iteration"] == 2 and np.all(np.isfinite(tree["algo"]["theta"]))


def _in_place(ctx, state, batch, rng, progress):
    """_update that writes the new theta into the old array (an algorithm reusing its buffers)."""
    new, logs = _update(ctx, state, batch, rng, progress)
    state["theta"][...] = new["theta"]
    return {"theta": state["theta"], "opt": new["opt"]}, logs


def test_background_checkpoints_are_snapshots_in_order(tmp_path, monkeypatch):
    """Checkpoints are written on a thread while training goes on: each holds its own iteration's
    state even if the algorithm then overwrites its arrays, and they are written in order."""
    written, thetas, real_save = [], [], checkpoint.save

    def slow_save(path, tree, meta):
        time.sleep(0.05)                                          # iterations run meanwhile
        written.append((meta["iteration"], tree["algo"]["theta"].copy()))
        real_save(path, tree, meta)

    def update(*args):
        new, logs = _in_place(*args)
        thetas.append(new["theta"].copy())
        return new, logs

    monkeypatch.setattr(checkpoint, "save", slow_save)
    algo = types.SimpleNamespace(NAME="noop", Config=NoopConfig, init=_init, update=update)
    runner.train(algo, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(tmp_path / "r"), total_steps=160,
                 checkpoint_every=2, verbose=False)
    assert [it for it, _ in written] == [2, 4, 5]
    for it, theta in written:
        np.testing.assert_array_equal(theta, thetas[it - 1])
    tree, ck = checkpoint.load(str(tmp_path / "r" / "checkpoint.npz"))
    assert ck["iteration"] == 5
    np.testing.assert_array_equal(tree["algo"]["theta"], thetas[-1])


def test_failed_background_checkpoint_stops_training(tmp_path, monkeypatch):
    real_save = checkpoint.save

    def failing_save(path, tree, meta):
        if meta["iteration"] >= 4:
            raise OSError(f"disk full at iteration {meta['iteration']}")
        real_save(path, tree, meta)

    monkeypatch.setattr(checkpoint, "save", failing_save)
    with pytest.raises(OSError, match="disk full at iteration 4"):
        runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(tmp_path / "r"), total_steps=320,
                     checkpoint_every=2, verbose=False)
    rows = _rows(tmp_path / "r" / "progress.csv")
    assert 5 <= len(rows) - 1 <= 6              # seen once the write ends, at the latest when submitting the next
    assert checkpoint.load(str(tmp_path / "r" / "checkpoint.npz"))[1]["iteration"] == 2


def test_a_run_failing_before_its_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(path, tree, meta):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(tmp_path / "r"), total_steps=320,
                     checkpoint_every=2, verbose=False)
    assert not (tmp_path / "r").exists()                          # so the same command can run again
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="disk full"):
        runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(tmp_path / "kept"), total_steps=320,
                     checkpoint_every=2, verbose=False, force=True)
    assert sorted(os.listdir(tmp_path / "kept")) == [".purepg.lock", "notes.txt"]


def test_total_steps_must_cover_one_iteration(tmp_path):
    with pytest.raises(ValueError, match=r"total_steps: expected an integer >= num_envs \* num_steps = 32"):
        runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(tmp_path / "r"), total_steps=10,
                     verbose=False)


def test_unknown_config_field_suggests():
    with pytest.raises(ValueError, match=r"config field 'lrr': expected a field of algorithm noop, got an unknown name\. Fix: did you mean lr"):
        runner.config_from_dict(NoopConfig, {"lrr": 1.0}, algo="noop")


def test_corrupt_checkpoint_is_refused(tmp_path, noop_registered):
    out = tmp_path / "run"
    runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(out), total_steps=64, verbose=False)
    data = (out / "checkpoint.npz").read_bytes()
    (out / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="truncated or corrupt"):
        runner.resume(str(out), verbose=False)


def test_env_without_capturable_state_still_checkpoints_and_resumes(tmp_path, noop_registered, monkeypatch, capsys):
    """An env whose state cannot be saved (e.g. MuJoCo) checkpoints everything else and resumes with
    fresh episodes, saying so; the policy, normaliser, RNG and step count carry over."""
    def refuse(vec):
        raise ValueError("vec_env: attribute data of type MjData cannot be captured")
    monkeypatch.setattr(runner.envs, "get_env_state", refuse)
    out = tmp_path / "run"
    _interrupted_run(out, 3, 64, 192)
    tree, ck = checkpoint.load(str(out / "checkpoint.npz"))
    assert "env" not in tree and "MjData" in ck["env_state"] and ck["iteration"] == 3
    summary = runner.resume(str(out), verbose=False)
    assert summary["iterations"] == 6 and summary["steps"] == 192
    assert "resuming without environment state" in capsys.readouterr().err
    saved = tree["rollout"]                                  # the statistics carried over, merged further
    assert saved["norm_count"] > 0 and saved["rscale_count"] > 0
    again, _ = checkpoint.load(str(out / "checkpoint.npz"))
    assert again["rollout"]["rscale_count"] > saved["rscale_count"] and again["rollout"]["norm_count"] > saved["norm_count"]


def test_run_from_another_format_is_refused(tmp_path, noop_registered):
    out = tmp_path / "run"
    runner.train(NOOP, "CartPole-v1", NoopConfig(), seed=0, out_dir=str(out), total_steps=64, verbose=False)
    meta = json.loads((out / "config.json").read_text())
    assert meta["run_format"] == runner.RUN_FORMAT
    meta["run_format"], meta["purepg_version"] = "purepg-run-0", "0.0.1"
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match=r"run_format of .*config.json: expected one of 'purepg-run-1', "
                                                         r"'purepg-run-2', got 'purepg-run-0' \(purepg 0\.0\.1\)\. "
                                                         r"Fix: .*use that version"):
        runner.resume(str(out), verbose=False)
