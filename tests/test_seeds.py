"""Several seeds in parallel processes: same runs as sequential training, a correct summary, clear errors."""
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
from purepg.run import plot, runner, seeds
from purepg.algos import get_algo
from helpers.algo_runs import progress_rows

REINFORCE = get_algo("reinforce")
TINY = REINFORCE.Config(num_envs=2, num_steps=32, hidden=(8,), vf_hidden=(8,))
STEPS = 256                                   # 4 iterations of 64 steps: CartPole episodes do finish




# ----- seeds text ----------------------------------------------------------------------------------
@given(st.lists(st.one_of(st.integers(0, 50).map(lambda a: (a, a)),
                          st.tuples(st.integers(0, 50), st.integers(0, 5)).map(lambda t: (t[0], t[0] + t[1]))),
                min_size=1, max_size=5))
def test_parse_seeds_reads_lists_and_ranges(items):
    flat = [s for a, b in items for s in range(a, b + 1)]
    text = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in items)
    if len(set(flat)) < len(flat):
        with pytest.raises(ValueError, match=r"seeds: expected each seed once, got \d+ more than once"):
            seeds.parse_seeds(text)
    else:
        assert seeds.parse_seeds(text) == flat


def test_parse_seeds_examples_and_errors():
    assert seeds.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert seeds.parse_seeds("0,2,5") == [0, 2, 5]
    assert seeds.parse_seeds(" 3 - 4 , 9") == [3, 4, 9]
    for bad, item in (("", ""), ("a", "a"), ("4-1", "4-1"), ("-1", "-1"), ("1.5", "1.5"), ("0,,1", "")):
        with pytest.raises(ValueError, match=rf"seeds: expected integers >= 0 and ranges A-B .*got '{bad}' "
                                             rf"\(item '{item}'\)\. Fix"):
            seeds.parse_seeds(bad)
    with pytest.raises(TypeError, match=r"seeds: expected a string such as '0-4' .* got int 3\. Fix"):
        seeds.parse_seeds(3)


# ----- running -------------------------------------------------------------------------------------
def test_parallel_seeds_equal_sequential_runs(tmp_path):
    out = tmp_path / "par"
    summary = seeds.run_seeds("reinforce", "CartPole-v1", TINY, "0-1", out_root=out, total_steps=STEPS, jobs=2,
                              verbose=False)
    finals = []
    for s in (0, 1):
        ref = runner.train(REINFORCE, "CartPole-v1", TINY, seed=s, out_dir=str(tmp_path / f"seq-{s}"),
                           total_steps=STEPS, verbose=False)
        assert progress_rows(out / f"seed-{s}" / "progress.csv") == progress_rows(tmp_path / f"seq-{s}" / "progress.csv")
        assert (json.loads((out / f"seed-{s}" / "config.json").read_text())
                == json.loads((tmp_path / f"seq-{s}" / "config.json").read_text()))
        finals.append(ref["last_row"]["ep_return_mean"])
    assert finals[0] != finals[1]                     # the seeds differ, so the comparison means something
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["seeds"] == [0, 1] and summary["algo"] == "reinforce" and summary["config"]["num_steps"] == 32
    assert [r["ep_return_mean"] for r in summary["runs"]] == finals
    assert summary["ep_return_mean"] == pytest.approx({"mean": np.mean(finals), "std": np.std(finals),
                                                       "min": min(finals), "max": max(finals)}, rel=1e-15)
    assert summary["wall_s"] > 0 and all(r["steps"] == STEPS for r in summary["runs"])
    (c,) = plot.curves([out / "seed-0", out / "seed-1"])   # the runs plot as one configuration
    assert c.label == "reinforce, seeds 0, 1" and c.mean[-1] == pytest.approx(np.mean(finals))


def test_in_process_run_without_episodes(tmp_path, capsys):
    # one iteration of 32 steps per copy: the near-uniform initial policy keeps CartPole up that long
    summary = seeds.run_seeds(REINFORCE, "CartPole-v1", TINY, [3], out_root=tmp_path, total_steps=64, jobs=1)
    captured = capsys.readouterr()
    assert "seed 3: ep_return_mean nan after 64 steps" in captured.err
    assert captured.out.startswith("reinforce on CartPole-v1, 1 seed: final ep_return_mean n/a (a run finished "
                                   "no episode); 64 steps each, wall ")
    assert captured.out.rstrip().endswith(f"with 1 jobs. Summary: {tmp_path / 'summary.json'}")
    assert summary["ep_return_mean"] == {"mean": None, "std": None, "min": None, "max": None}
    assert json.loads((tmp_path / "summary.json").read_text())["runs"][0]["ep_return_mean"] is None
    assert os.path.isfile(tmp_path / "seed-3" / "checkpoint.npz")


def test_refuses_existing_runs_before_starting_any(tmp_path):
    (tmp_path / "seed-1").mkdir()
    (tmp_path / "seed-1" / "progress.csv").write_text("x\n")
    with pytest.raises(FileExistsError, match=r"out_root: .*seed-1 exist and are not empty; refusing .*Fix: .*--force"):
        seeds.run_seeds("reinforce", "CartPole-v1", TINY, "0-2", out_root=tmp_path, total_steps=64, jobs=2)
    assert sorted(os.listdir(tmp_path)) == ["seed-1"]


def test_bad_arguments(tmp_path):
    kw = dict(out_root=tmp_path, total_steps=64)
    with pytest.raises(ValueError, match=r"jobs: expected an integer >= 1, got 0\. Fix"):
        seeds.run_seeds("reinforce", "CartPole-v1", TINY, "0", jobs=0, **kw)
    with pytest.raises(ValueError, match=r"total_steps: expected an integer >= num_envs \* num_steps = 64 \(one iteration\), got 10"):
        seeds.run_seeds("reinforce", "CartPole-v1", TINY, "0", out_root=tmp_path, total_steps=10)
    with pytest.raises(TypeError, match=r"config: expected a purepg.algos.reinforce.Config, got dict\. Fix"):
        seeds.run_seeds("reinforce", "CartPole-v1", {}, "0", **kw)
    with pytest.raises(ValueError, match=r"algo: expected one of .*got 'reinforc'\. Fix: did you mean reinforce"):
        seeds.run_seeds("reinforc", "CartPole-v1", TINY, "0", **kw)
    with pytest.raises(ValueError, match=r"seeds: expected integers >= 0, got -2 in \[-2\]\. Fix: use seeds 0, 1, 2, \.\.\."):
        seeds.run_seeds("reinforce", "CartPole-v1", TINY, [-2], **kw)
    with pytest.raises(ValueError, match=r"seeds: expected at least one seed, got \[\]"):
        seeds.run_seeds("reinforce", "CartPole-v1", TINY, [], **kw)
    assert os.listdir(tmp_path) == []


def test_failed_seeds_are_named(tmp_path, monkeypatch):
    def fake(module, env_id, config, seed, out_dir, *rest):
        if seed == 1:
            raise ValueError("boom")
        return {"seed": seed, "out_dir": out_dir, "ep_return_mean": 1.0, "steps": 64, "episodes": 1, "time_s": 0.1}

    monkeypatch.setattr(seeds, "_train_one", fake)
    with pytest.raises(seeds.SeedRunError, match=r"^seed 1 failed: ValueError: boom\. The other seeds' runs are in"):
        seeds.run_seeds("reinforce", "CartPole-v1", TINY, "0-2", out_root=tmp_path, total_steps=64, verbose=False)
    assert not (tmp_path / "summary.json").exists()


def test_ctrl_c_stops_the_remaining_seeds(tmp_path, monkeypatch):
    started = []

    def fake(module, env_id, config, seed, out_dir, *rest):
        started.append(seed)
        raise runner.Interrupted("interrupted at iteration 2; checkpoint saved")

    monkeypatch.setattr(seeds, "_train_one", fake)
    with pytest.raises(runner.Interrupted, match=r"interrupted; .* Resume each with: purepg resume .*seed-0$"):
        seeds.run_seeds("reinforce", "CartPole-v1", TINY, "0-2", out_root=tmp_path, total_steps=64, verbose=False)
    assert started == [0]


def test_workers_get_one_thread_and_the_parent_environment_is_restored(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    with seeds._single_threaded_children():
        assert all(os.environ[k] == "1" for k in seeds.THREAD_VARS)
    assert os.environ["OMP_NUM_THREADS"] == "7" and "NUMBA_NUM_THREADS" not in os.environ


# ----- the command ---------------------------------------------------------------------------------
CLI_TINY = ["--algo", "reinforce", "--num-envs", "2", "--num-steps", "32", "--hidden", "8", "--vf-hidden", "8"]


def purepg_cli(args, cwd):
    """``python -m purepg ARGS`` in ``cwd``: (exit status, stdout, stderr)."""
    return cli_process.run(args, cwd, timeout=300)


def test_cli_seeds_runs_and_summarises(tmp_path):
    rc, out, err = purepg_cli(["seeds", *CLI_TINY, "--seeds", "0,1", "--jobs", "2", "--steps", "128", "--out", "root"],
                              tmp_path)
    assert rc == 0, err
    assert "seed 0: ep_return_mean" in err and "seed 1: ep_return_mean" in err
    lines = out.splitlines()
    assert lines[0].startswith("reinforce on CartPole-v1, 2 seeds: final ep_return_mean ")
    assert lines[0].endswith(f"Summary: {os.path.join('root', 'summary.json')}")
    assert lines[1] == "Plot the seeds with: purepg plot root --out curves.png"
    summary = json.loads((tmp_path / "root" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["jobs"] == 2 and summary["config"]["hidden"] == [8]
    rc, _, err = purepg_cli(["train", *CLI_TINY, "--seed", "1", "--steps", "128", "--out", "seq", "--quiet"], tmp_path)
    assert rc == 0, err
    assert progress_rows(tmp_path / "root" / "seed-1" / "progress.csv") == progress_rows(tmp_path / "seq" / "progress.csv")
    rc, out, err = purepg_cli(["seeds", *CLI_TINY, "--seeds", "0,1", "--steps", "128", "--out", "root"], tmp_path)
    assert rc == 2 and out == "" and re.search(r"seed-0, .*seed-1 exist and are not empty.*--force", err), err
    rc, out, err = purepg_cli(["seeds", *CLI_TINY, "--seeds", "0", "--steps", "64", "--out", "root", "--force",
                               "--quiet"], tmp_path)
    assert rc == 0 and err == "" and out.startswith("reinforce on CartPole-v1, 1 seed: "), err


def test_cli_seeds_help_lists_the_config_fields(tmp_path):
    rc, out, _ = purepg_cli(["seeds", "--algo", "reinforce", "--help"], tmp_path)
    assert rc == 0
    for opt in ("--seeds", "--jobs", "--steps", "--out", "--force", "--baseline", "--vf-hidden"):
        assert opt in out, opt


@pytest.mark.parametrize("args, message", [
    (["--seeds", "4-1"], r"purepg seeds: error: --seeds: expected integers >= 0 and ranges A-B .*got '4-1'"),
    (["--seeds", "0,0"], r"--seeds: expected each seed once, got 0 more than once"),
    (["--jobs", "0"], r"jobs: expected an integer >= 1, got 0"),
    (["--lrr", "0.1"], r"purepg seeds: error: unknown option or config field '--lrr' for algorithm reinforce\. "
                       r"Did you mean --lr"),
    (["--lr", "-1"], r"purepg seeds: error: invalid configuration for reinforce: lr: expected a finite number > 0"),
    (["--env", "CartPol-v1"], r"env: expected an environment id .*unknown id 'CartPol-v1'.*did you mean 'CartPole-v1'"),
    (["--steps", "10"], r"total_steps: expected an integer >= num_envs \* num_steps = 64"),
])
def test_cli_seeds_bad_input(tmp_path, args, message):
    rc, out, err = purepg_cli(["seeds", *CLI_TINY, "--out", "root", *args], tmp_path)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "root").exists()


def test_cli_seeds_ctrl_c_checkpoints_every_started_seed(tmp_path):
    args = ["seeds", *CLI_TINY, "--seeds", "0-1", "--jobs", "2", "--steps", "1000000", "--out", "root",
            "--checkpoint-every", "100000"]
    p = cli_process.popen(args, tmp_path, start_new_session=True)                  # its own process group

    def n_rows(s):
        f = tmp_path / "root" / f"seed-{s}" / "progress.csv"
        return len(f.read_text().splitlines()) if f.exists() else 0

    deadline = time.monotonic() + 120
    while min(n_rows(0), n_rows(1)) < 3 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)                   # Ctrl-C in a terminal reaches the whole group
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    assert err.strip() == ("purepg: interrupted; the started seeds saved their checkpoints. Resume each with: "
                           f"purepg resume {os.path.join('root', 'seed-0')}; purepg resume {os.path.join('root', 'seed-1')}")
    for s in (0, 1):   # each checkpoint holds the iterations logged (the checkpoint interval was never reached)
        rows_before = n_rows(s) - 1
        rc, _, err = purepg_cli(["resume", os.path.join("root", f"seed-{s}"), "--steps", str(64 * (rows_before + 2)),
                                 "--quiet"], tmp_path)
        assert rc == 0, err
        assert n_rows(s) - 1 == rows_before + 2
