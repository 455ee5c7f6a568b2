"""Sweeps: the plan a spec makes, its checks, resumable runs equal to plain ones, the summary, both backends."""
import csv
import json
import os
import re
import signal
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import cli_process
from purepg.algos import get_algo
from purepg.cli.sweep import toml_values
from purepg.run import runner, spec as specs, stats, sweep, sweep_report
from purepg.run.spec import SpecError
from helpers.algo_runs import progress_rows

REINFORCE = get_algo("reinforce")
TINY = {"num_envs": 2, "num_steps": 32, "hidden": [8], "vf_hidden": [8]}
STEPS = 256                                   # 4 iterations of 64 steps: CartPole episodes do finish




def tiny_spec(**kw):
    return {"algo": "reinforce", "env": "CartPole-v1", "seeds": "0-1", "steps": STEPS, "config": dict(TINY), **kw}


# ----- statistics ----------------------------------------------------------------------------------
def test_bootstrap_ci_of_one_value_or_constant_samples_is_that_value():
    rng = np.random.default_rng(0)
    assert stats.bootstrap_ci([3.5], rng, 100) == (3.5, 3.5)
    assert stats.bootstrap_ci([2.0] * 7, rng, 100) == (2.0, 2.0)


@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=20), st.floats(-1e3, 1e3))
def test_bootstrap_ci_moves_with_a_shift_of_the_data(R, c):
    lo, hi = stats.bootstrap_ci(R, np.random.default_rng(1), 200)
    lo2, hi2 = stats.bootstrap_ci(np.add(R, c), np.random.default_rng(1), 200)   # the same resamples
    tol = 1e-9 * (1 + abs(c) + max(map(abs, R)))                                  # rounding of the sums
    assert lo2 == pytest.approx(lo + c, abs=tol) and hi2 == pytest.approx(hi + c, abs=tol)
    assert min(R) - tol <= lo <= np.mean(R) + tol and np.mean(R) - tol <= hi <= max(R) + tol   # mean of a
    # resample of equal values may differ from them in the last bit


def test_bootstrap_ci_width_and_coverage_of_normal_samples():
    # K = 200 normal samples: the percentile interval approaches mean +- 1.96 s / sqrt(K); its
    # Monte Carlo and sampling error at B = 4000 are a few percent, so 10% is a test that can fail.
    rng = np.random.default_rng(2)
    R = rng.normal(5.0, 2.0, 200)
    lo, hi = stats.bootstrap_ci(R, rng, 4000)
    assert (hi - lo) == pytest.approx(2 * 1.96 * R.std(ddof=1) / np.sqrt(200), rel=0.1)
    # coverage over 300 samples of K = 30: 95% nominal; the binomial sd of the rate is 1.3%, the
    # percentile interval's known undercoverage at K = 30 about 1%: accept [0.89, 0.99]
    hits = [lo <= 5.0 <= hi for lo, hi in (stats.bootstrap_ci(rng.normal(5.0, 2.0, 30), rng, 1000)
                                           for _ in range(300))]
    assert 0.89 <= np.mean(hits) <= 0.99


def test_difference_interval_and_describe():
    rng = np.random.default_rng(3)
    A, C = rng.normal(0, 1, 50), rng.normal(0, 1, 50)
    lo, hi = stats.bootstrap_diff_ci(A, C + 10.0, rng, 2000)
    assert lo < A.mean() - C.mean() - 10.0 < hi and hi < -8.0
    d = stats.describe([1.0, np.nan, 3.0], np.random.default_rng(0), 500)
    assert d["n"] == 2 and d["mean"] == 2.0 and d["std"] == pytest.approx(np.sqrt(2.0), rel=1e-15)
    assert np.isnan(stats.describe([np.nan], rng)["mean"]) and np.isnan(stats.describe([4.0], rng)["std"])


# ----- the plan ------------------------------------------------------------------------------------
def test_plan_crosses_algorithms_environments_grid_cells_and_seeds():
    spec = {"algo": ["reinforce", "ppo"], "env": ["CartPole-v1", "Acrobot-v1"], "seeds": [0, 3],
            "steps": {"CartPole-v1": 128, "Acrobot-v1": 192},
            "config": {**TINY, "ppo": {"minibatch_size": 32}}, "grid": {"gamma": [0.9, 0.99], "ppo": {"clip": [0.1]}},
            "cells": [{}, {"algo": "reinforce", "env": "CartPole-v1", "lr": 0.5, "hidden": [4, 4]}]}
    runs = specs.plan(spec)
    assert len(runs) == (2 * 2 * 2 + 2) * 2
    cells = list(dict.fromkeys(r.cell for r in runs))
    assert cells[:2] == ["reinforce-CartPole-v1-gamma=0.9", "reinforce-Acrobot-v1-gamma=0.9"]
    assert "ppo-CartPole-v1-gamma=0.99-clip=0.1" in cells and "reinforce-CartPole-v1-gamma=0.99-lr=0.5-hidden=4x4" in cells
    r = next(r for r in runs if r.cell.endswith("0.99-lr=0.5-hidden=4x4") and r.seed == 3)
    assert r.config["hidden"] == [4, 4] and r.config["lr"] == 0.5 and r.config["gamma"] == 0.99
    assert r.run_dir == f"{r.cell}/seed-3" and r.total_steps == 128
    assert {r.total_steps for r in runs if r.env_id == "Acrobot-v1"} == {192}
    assert all(r.config["num_steps"] == 32 for r in runs)


def test_a_cell_with_many_fields_gets_a_short_stable_directory_name():
    """A name past MAX_NAME characters (a grid of many fields; file systems allow 255 bytes) is cut
    and made unique by a hash of the whole name: the same spec names it the same, another differs."""
    fields = {f"field_{i}": 0.001 * i for i in range(40)}
    long = specs.cell_dir_name("ppo", "Pendulum-v1", fields)
    assert len(long) == specs.MAX_NAME and long.startswith("ppo-Pendulum-v1-field_0=0-field_1=0.001")
    assert long == specs.cell_dir_name("ppo", "Pendulum-v1", dict(fields))
    assert long != specs.cell_dir_name("ppo", "Pendulum-v1", {**fields, "field_39": 1.0})
    assert specs.cell_dir_name("ppo", "CartPole-v1", {"clip": 0.1}) == "ppo-CartPole-v1-clip=0.1"


@pytest.mark.parametrize("change, message", [
    ({"algos": "ppo"}, r"unknown field 'algos'\. Did you mean algo\?"),
    ({"grid": {"lrr": [0.1]}}, r"config field 'lrr': expected a field of algorithm reinforce, got an unknown name\. Fix: did you mean lr\?"),
    ({"algo": ["reinforce", "ppp"]}, r"field 'algo': algo: expected one of .*, got 'ppp'\. Fix: did you mean ppo\?"),
    ({"env": "CartPol-v1"}, r"field 'env': 'CartPol-v1' cannot be built .*did you mean 'CartPole-v1'"),
    ({"grid": {"lr": [0.1, -1.0]}}, r"invalid configuration for reinforce \(.*lr=-1\): lr: expected a finite (value|number) > 0"),
    ({"grid": {"gamma": []}}, r"grid field 'gamma': expected a non-empty list of values, got \[\]"),
    ({"grid": {"gamma": 0.9}}, r"grid field 'gamma': expected a non-empty list"),
    ({"seeds": []}, r"field seeds: expected at least one seed"),
    ({"seeds": "3-1"}, r"field seeds: expected integers >= 0 and ranges A-B"),
    ({"algo": []}, r"field 'algo': expected a name or a non-empty list of names"),
    ({"cells": []}, r"field 'cells': expected a non-empty list of tables"),
    ({"steps": 0}, r"field 'steps' for CartPole-v1: expected an integer >= 1, got 0"),
    ({"steps": {"Acrobot-v1": 100}}, r"field 'steps' for CartPole-v1: expected an integer >= 1, got None"),
    ({"config": {**TINY, "ppo": {"clip": 0.1}}}, r"table \[config\.ppo\]: 'ppo' is not an algorithm of this sweep"),
    ({"grid": {"gamma": [0.9, 0.9]}}, r"cells reinforce-CartPole-v1-gamma=0.9 and reinforce-CartPole-v1-gamma=0.9 "
                                      r"have the same algorithm, environment and configuration"),
])
def test_bad_specs_fail_in_one_line_before_anything_is_written(tmp_path, change, message):
    with pytest.raises(SpecError, match=message) as e:
        sweep.run_sweep(tiny_spec(**change), out=tmp_path / "sw", src="s.toml")
    assert str(e.value).startswith("s.toml: ") and "\n" not in str(e.value)
    assert not (tmp_path / "sw").exists()


def test_command_line_values_are_toml():
    assert toml_values("3e-4,1e-3") == [3e-4, 1e-3]
    assert toml_values("[64,64],[32]") == [[64, 64], [32]]
    assert toml_values("tanh,relu") == ["tanh", "relu"] and toml_values("true") == [True]


# ----- running, resuming, summarising --------------------------------------------------------------
def test_sweep_runs_equal_plain_runs_resume_and_summarise(tmp_path):
    spec = tiny_spec(grid={"gamma": [0.9, 0.99]})
    out = tmp_path / "sw"
    summary = sweep.run_sweep(spec, out=out, jobs=1, plot=False, verbose=False)
    assert summary["runs_trained"] == 4 and summary["failed"] == []
    finals = {}
    for g in (0.9, 0.99):
        for s in (0, 1):
            config = REINFORCE.Config(**{**TINY, "hidden": (8,), "vf_hidden": (8,), "gamma": g})
            ref = runner.train(REINFORCE, "CartPole-v1", config, seed=s, out_dir=str(tmp_path / f"ref-{g}-{s}"),
                               total_steps=STEPS, verbose=False)
            run_dir = out / f"reinforce-CartPole-v1-gamma={g}" / f"seed-{s}"
            assert progress_rows(run_dir / "progress.csv") == progress_rows(tmp_path / f"ref-{g}-{s}" / "progress.csv")
            finals[g, s] = ref["last_row"]["ep_return_mean"]
    assert finals[0.9, 0] != finals[0.9, 1]
    cell = summary["cells"][0]
    R = [finals[0.9, 0], finals[0.9, 1]]
    want = stats.describe(R, np.random.default_rng(sweep_report.BOOTSTRAP_SEED))
    assert cell["cell"] == "reinforce-CartPole-v1-gamma=0.9" and cell["gamma"] == 0.9
    assert {k: cell[k] for k in want} == want and cell["std"] == pytest.approx(np.std(R, ddof=1), rel=1e-12)
    with open(out / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(r["final_return"]) for r in table[:2]] == R and {r["status"] for r in table} == {"done"}
    assert json.loads((out / "summary.json").read_text())["cells"][0]["mean"] == pytest.approx(np.mean(R))
    assert "| reinforce-CartPole-v1-gamma=0.9 | 2 |" in (out / "summary.md").read_text()
    again = sweep.run_sweep(spec, out=out, jobs=1, plot=False, verbose=False)     # everything done: nothing runs
    assert again["runs_trained"] == 0 and again["cells"] == summary["cells"]


def test_an_interrupted_run_is_resumed_and_a_different_one_refused(tmp_path):
    out = tmp_path / "sw"
    run_dir = out / "reinforce-CartPole-v1" / "seed-1"
    config = REINFORCE.Config(**{**TINY, "hidden": (8,), "vf_hidden": (8,)})
    runner.train(REINFORCE, "CartPole-v1", config, seed=1, out_dir=str(run_dir), total_steps=128, verbose=False)
    meta = json.loads((run_dir / "config.json").read_text())   # as if stopped after 2 of its 4 iterations
    (run_dir / "config.json").write_text(json.dumps({**meta, "total_steps": STEPS}))
    summary = sweep.run_sweep(tiny_spec(), out=out, jobs=1, plot=False, verbose=False)
    assert summary["runs_trained"] == 2
    runner.train(REINFORCE, "CartPole-v1", config, seed=1, out_dir=str(tmp_path / "ref"), total_steps=STEPS,
                 verbose=False)
    assert progress_rows(run_dir / "progress.csv") == progress_rows(tmp_path / "ref" / "progress.csv")
    with pytest.raises(SpecError, match=r"seed-0: holds a run with another config \(lr: 0\.003 there, 0\.5 here\).*Fix"):
        sweep.run_sweep(tiny_spec(config={**TINY, "lr": 0.5}), out=out, jobs=1, verbose=False)


def flaky(task):
    """run_task, except that seed 0 fails (a module-level function, so worker processes can import it)."""
    if task["seed"] == 0:
        raise FloatingPointError("boom")
    return sweep.run_task(task)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failed_run_is_recorded_and_the_others_go_on(tmp_path, jobs):
    out = tmp_path / "sw"
    summary = sweep.run_sweep(tiny_spec(seeds="0-2"), out=out, jobs=jobs, plot=False, verbose=False, fn=flaky)
    assert summary["failed"] == [{"run_dir": "reinforce-CartPole-v1/seed-0", "error": "FloatingPointError: boom"}]
    assert [r["status"] for r in summary["runs"]] == ["failed", "done", "done"]
    assert summary["cells"][0]["n"] == 2 and summary["cells"][0]["failed"] == 1
    assert json.loads((out / "summary.json").read_text())["failed"] == summary["failed"]
    retry = sweep.run_sweep(tiny_spec(seeds="0-2"), out=out, jobs=1, plot=False, verbose=False)
    assert retry["runs_trained"] == 1 and retry["failed"] == [] and retry["cells"][0]["n"] == 3


# ----- the command ---------------------------------------------------------------------------------
SPEC = f"""algo = "reinforce"
env = "CartPole-v1"
seeds = "0-1"
steps = {STEPS}
[config]
num_envs = 2
num_steps = 32
hidden = [8]
vf_hidden = [8]
[grid]
gamma = [0.9, 0.99]
"""


def test_cli_sweep_runs_resumes_and_names_its_files(tmp_path):
    (tmp_path / "s.toml").write_text(SPEC)
    rc, out, err = cli_process.run(["sweep", "s.toml", "--jobs", "1", "--no-plot"], tmp_path, timeout=300)
    assert rc == 0, err
    assert out.splitlines()[2].startswith("| reinforce-CartPole-v1-gamma=0.9 | 2 | ")
    assert f"Sweep directory: {os.path.join('runs', 'sweep-s')} (results.csv" in out and "4 runs trained" in out
    assert err.count(": done in ") == 4
    rc, out2, err = cli_process.run(["sweep", os.path.join("runs", "sweep-s"), "--quiet", "--no-plot"], tmp_path)
    assert rc == 0 and err == "" and "0 runs trained" in out2 and out2.splitlines()[:4] == out.splitlines()[:4]


@pytest.mark.parametrize("args, message", [
    (["--grid", "lrr=0.1,0.2"], r"config field 'lrr': expected a field of algorithm reinforce, got an unknown name\. Fix: did you mean lr\?"),
    (["--algo", "reinfrce"], r"algo: expected one of .*, got 'reinfrce'"),
    (["--set", "lr"], r"--set: expected FIELD=VALUE \(or ALGO.FIELD=VALUE\), got 'lr'"),
    (["--jobs", "0"], r"--jobs: expected an integer >= 1, got 0"),
    (["--backend", "ray", "--address", "127.0.0.1:1"], r"(cannot reach a Ray cluster there|Ray is not installed)"),
    (["--backend", "ray", "--address", "nohost"], r"(expected HOST:PORT of a Ray head|Ray is not installed)"),
])
def test_cli_sweep_bad_input(tmp_path, args, message):
    (tmp_path / "s.toml").write_text(SPEC)
    rc, out, err = cli_process.run(["sweep", "s.toml", "--out", "sw", *args], tmp_path)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("purepg sweep: error: ") and re.search(message, err), err
    assert not (tmp_path / "sw").exists()


def test_cli_sweep_ctrl_c_leaves_resumable_runs(tmp_path):
    args = ["sweep", "--algo", "reinforce", "--seeds", "0-1", "--steps", "10000000", "--jobs", "2", "--out", "sw",
            "--set", "num_envs=2", "--set", "num_steps=32", "--set", "hidden=[8]"]
    p = cli_process.popen(args, tmp_path, start_new_session=True)
    progress = [tmp_path / "sw" / "reinforce-CartPole-v1" / f"seed-{s}" / "progress.csv" for s in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(f.exists() and len(f.read_text().splitlines()) > 2 for f in progress) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "purepg: interrupted; the started runs saved their checkpoints. Resume the " \
                                           "sweep with: purepg sweep sw"
    planned = specs.plan({"algo": "reinforce", "seeds": "0-1", "steps": 10_000_000,
                          "config": {"num_envs": 2, "num_steps": 32, "hidden": [8]}})
    assert [sweep.run_state(str(tmp_path / "sw"), r) for r in planned] == ["resume", "resume"]


# ----- Ray -----------------------------------------------------------------------------------------
def test_ray_sweep_equals_the_local_one(tmp_path):
    pytest.importorskip("ray")
    spec = tiny_spec()
    local = sweep.run_sweep(spec, out=tmp_path / "local", jobs=1, plot=False, verbose=False)
    remote = sweep.run_sweep(spec, out=tmp_path / "ray", jobs=2, backend="ray", plot=False, verbose=False)
    assert remote["failed"] == [] and remote["cells"] == local["cells"]
    for r in specs.plan(spec):
        assert progress_rows(tmp_path / "ray" / r.run_dir / "progress.csv") == progress_rows(tmp_path / "local" / r.run_dir / "progress.csv")
        assert sweep.run_state(str(tmp_path / "ray"), r) == "done"


def test_the_readme_spec_plans():
    import pathlib
    import tomllib

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    runs = specs.plan(tomllib.loads(block), "README.md")
    assert len(runs) == 2 * 2 * 2 * 10 and {r.config.get("cg_iters") for r in runs if r.algo == "trpo"} == {15}


def test_parity_decision_rule():
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "bench"))
    import parity

    rng = np.random.default_rng(4)
    A = rng.normal(480.0, 5.0, 10)
    cases = [(A + 2.0, "equivalent"), (A + 100.0, "better"), (A - 100.0, "worse"),
             (rng.normal(480.0, 200.0, 10), "inconclusive")]
    for C, want in cases:
        delta, (lo, hi), v = parity.verdict(C, A, 25.0, np.random.default_rng(0))
        assert v == want and lo < delta < hi and delta == pytest.approx(C.mean() - A.mean())
