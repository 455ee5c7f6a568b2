"""Learning curves: grouping of run directories, the mean/min/max over seeds, the PNG, the errors."""
import json
import re
import struct
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cli_process
from purepg.run import plot, runner

CONFIG = {"num_envs": 2, "num_steps": 16, "hidden": [8], "lr": 0.01}


def fake_run(path, steps, values, *, algo="ppo", env_id="CartPole-v1", seed=0, config=CONFIG):
    """A run directory as purepg.run.runner writes it: config.json and progress.csv (NaN where no episode ended)."""
    path.mkdir(parents=True)
    meta = {"algo": algo, "env_id": env_id, "seed": seed, "total_steps": int(max(steps)),
            "purepg_version": "0.1.0", "config": config, "run_format": runner.RUN_FORMAT}
    (path / "config.json").write_text(json.dumps(meta))
    rows = ["iteration,step,ep_return_mean,time_s"]
    rows += [f"{i + 1},{int(s)},{float(v)!r},{0.1 * i!r}" for i, (s, v) in enumerate(zip(steps, values))]
    (path / "progress.csv").write_text("\n".join(rows) + "\n")
    return str(path)


# ----- aggregation ---------------------------------------------------------------------------------
def test_seeds_at_the_same_steps_are_averaged_pointwise(tmp_path):
    a = fake_run(tmp_path / "a", [32, 64, 96], [10.0, 20.0, 30.0], seed=0)
    b = fake_run(tmp_path / "b", [32, 64, 96], [14.0, 12.0, 60.0], seed=1)
    (c,) = plot.curves([a, b])
    np.testing.assert_array_equal(c.x, [32, 64, 96])
    np.testing.assert_array_equal(c.mean, [12.0, 16.0, 45.0])
    np.testing.assert_array_equal(c.lo, [10.0, 12.0, 30.0])
    np.testing.assert_array_equal(c.hi, [14.0, 20.0, 60.0])
    assert c.label == "ppo, seeds 0, 1" and c.run_dirs == (a, b)


def test_nan_rows_are_dropped_and_longer_runs_cut(tmp_path):
    a = fake_run(tmp_path / "a", [32, 64, 96, 128], [float("nan"), 2.0, 4.0, 8.0], seed=0)
    b = fake_run(tmp_path / "b", [32, 64, 96], [float("nan"), float("nan"), 6.0], seed=1)
    (c,) = plot.curves([a, b])
    np.testing.assert_array_equal(c.x, [96])          # the only step both runs have data for
    np.testing.assert_array_equal(c.mean, [5.0])


@settings(max_examples=25)
@given(st.lists(st.tuples(st.lists(st.integers(0, 1000), min_size=2, max_size=8, unique=True),
                          st.floats(-3, 3), st.floats(-5, 5)), min_size=1, max_size=4))
def test_interpolation_of_linear_runs_is_exact(runs):
    # y_k = a_k x + b_k is reproduced exactly by linear interpolation, so the mean on the grid is
    # (mean a) u + (mean b), and min / max are those of the K lines at u.
    series = [(np.sort(np.array(xs, dtype=float)), a, b) for xs, a, b in runs]
    start, stop = max(x[0] for x, _, _ in series), min(x[-1] for x, _, _ in series)
    if start > stop:
        with pytest.raises(ValueError, match="that overlap in x"):
            plot.aggregate([(x, a * x + b) for x, a, b in series])
        return
    u, mean, lo, hi = plot.aggregate([(x, a * x + b) for x, a, b in series])
    lines = np.array([a * u + b for _, a, b in series])                       # (K, G)
    assert u[0] == start and u[-1] == stop and np.all(np.diff(u) > 0)
    assert set(u) == {v for x, _, _ in series for v in x if start <= v <= stop}
    np.testing.assert_allclose(mean, lines.mean(0), rtol=1e-12, atol=1e-9)   # a x + b <= 3e3 + 5
    np.testing.assert_allclose(lo, lines.min(0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(hi, lines.max(0), rtol=1e-12, atol=1e-9)


def test_configs_and_environments_are_separate_curves(tmp_path):
    runs = [fake_run(tmp_path / "s0", [32, 64], [1.0, 2.0], seed=0),
            fake_run(tmp_path / "s1", [32, 64], [3.0, 4.0], seed=1),
            fake_run(tmp_path / "lr", [32, 64], [5.0, 6.0], config=dict(CONFIG, lr=0.1)),
            fake_run(tmp_path / "trpo", [32, 64], [7.0, 8.0], algo="trpo"),
            fake_run(tmp_path / "acro", [32, 64], [-9.0, -8.0], env_id="Acrobot-v1")]
    cs = plot.curves(runs)
    assert [c.label for c in cs] == ["ppo (lr=0.01), seeds 0, 1", "ppo (lr=0.1), seed 0", "trpo, seed 0", "ppo, seed 0"]
    assert [c.env_id for c in cs] == ["CartPole-v1"] * 3 + ["Acrobot-v1"]
    np.testing.assert_array_equal(cs[0].mean, [2.0, 3.0])
    np.testing.assert_array_equal(cs[1].lo, cs[1].hi)


def test_a_parent_directory_stands_for_its_runs(tmp_path):
    a = fake_run(tmp_path / "root" / "seed-0", [32, 64], [1.0, 2.0], seed=0)
    b = fake_run(tmp_path / "root" / "seed-1", [32, 64], [3.0, 6.0], seed=1)
    (tmp_path / "root" / "summary.json").write_text("{}")
    (tmp_path / "root" / "notes").mkdir()
    assert plot.expand_run_dirs([tmp_path / "root", a, str(tmp_path / "root" / "." / "seed-1")]) == [a, b]
    assert plot.expand_run_dirs([b, a, b]) == [b, a]
    (c,) = plot.curves([tmp_path / "root"])
    assert c.run_dirs == (a, b) and list(c.mean) == [2.0, 4.0]


def test_other_columns(tmp_path):
    a = fake_run(tmp_path / "a", [32, 64, 96], [1.0, 2.0, 3.0])
    (c,) = plot.curves([a], x="iteration", y="time_s")
    np.testing.assert_array_equal(c.x, [1, 2, 3])
    np.testing.assert_allclose(c.mean, [0.0, 0.1, 0.2])


# ----- the PNG -------------------------------------------------------------------------------------
def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])                 # IHDR width, height


def test_writes_a_png_with_one_panel_per_environment(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    steps = np.arange(1, 41) * 2048
    runs = [fake_run(tmp_path / f"s{k}", steps, 500 * (1 - np.exp(-steps / 3e4)) + rng.normal(0, 30, 40), seed=k)
            for k in range(3)]
    runs.append(fake_run(tmp_path / "trpo", steps, 400 * (1 - np.exp(-steps / 5e4)), algo="trpo"))
    runs.append(fake_run(tmp_path / "acro", steps, -500 + 400 * (1 - np.exp(-steps / 2e4)), env_id="Acrobot-v1"))
    out = tmp_path / "curves.png"
    cs = plot.plot_runs(runs, out)
    assert png_size(out) == (1200, 420) and len(cs) == 3     # 2 panels of 6 x 4.2 inches at 100 dpi
    assert plot.summary_line(cs[0]).startswith("CartPole-v1 ppo, seeds 0-2: at step 81920, mean ")


def test_missing_matplotlib_says_how_to_get_it(tmp_path, monkeypatch):
    a = fake_run(tmp_path / "a", [32, 64], [1.0, 2.0])
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # `import matplotlib` now raises ImportError
    with pytest.raises(ImportError, match=r'matplotlib is not installed.*Fix: pip install "purepg\[plot\]"'):
        plot.plot_runs([a], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ----- bad input -----------------------------------------------------------------------------------
def test_bad_run_lists(tmp_path):
    with pytest.raises(ValueError, match=r"run_dirs: expected a non-empty list of run directories, got \[\]"):
        plot.curves([])
    with pytest.raises(ValueError, match=r"run_dirs: expected a non-empty list .* got 'runs/a'\. Fix"):
        plot.curves("runs/a")
    with pytest.raises(ValueError, match=r"config.json is missing"):
        plot.curves([str(tmp_path)])
    a = fake_run(tmp_path / "a", [32], [1.0])
    (tmp_path / "a" / "progress.csv").unlink()
    with pytest.raises(ValueError, match=r"run_dirs: expected run directories written by purepg train, got .*a without progress.csv\. Fix: check the path"):
        plot.curves([a])


def test_bad_columns_and_data(tmp_path):
    a = fake_run(tmp_path / "a", [32, 64], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"y: expected a column of .*progress.csv, got 'kl'; available: "
                                         r"iteration, step, ep_return_mean, time_s\. Fix"):
        plot.curves([a], y="kl")
    with pytest.raises(ValueError, match=r"x: expected a column .* got 'steps'"):
        plot.curves([a], x="steps")
    b = fake_run(tmp_path / "b", [32, 64], [float("nan")] * 2)
    with pytest.raises(ValueError, match=r"expected rows with finite step and ep_return_mean, got 2 rows, none finite, in .*\. Fix"):
        plot.curves([b])
    c = fake_run(tmp_path / "c", [1, 2], [1.0, 2.0], seed=1)
    d = fake_run(tmp_path / "d", [3, 4], [1.0, 2.0], seed=2)
    with pytest.raises(ValueError, match=r"expected runs of one configuration that overlap in x, got one starting at 3.0, another ending at 2.0"):
        plot.curves([c, d])


def test_missing_output_directory(tmp_path):
    pytest.importorskip("matplotlib")
    a = fake_run(tmp_path / "a", [32, 64], [1.0, 2.0])
    with pytest.raises(FileNotFoundError, match=r"out_png: the directory .*nope does not exist"):
        plot.plot_runs([a], tmp_path / "nope" / "c.png")


# ----- the command ---------------------------------------------------------------------------------
NO_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None; from purepg.cli import main; sys.exit(main())"


def purepg_cli(args, cwd, code=None):
    """``python -m purepg ARGS`` (or ``python -c CODE ARGS``) in ``cwd``: (exit status, stdout, stderr)."""
    return cli_process.run(args, cwd, timeout=120, code=code)


def test_cli_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "root" / "seed-0", [32, 64], [1.0, 2.0], seed=0)
    fake_run(tmp_path / "root" / "seed-1", [32, 64], [3.0, 6.0], seed=1)
    fake_run(tmp_path / "trpo", [32, 64], [5.0, 5.0], algo="trpo")
    rc, out, err = purepg_cli(["plot", "root", "trpo", "--out", "c.png"], tmp_path)
    assert rc == 0, err
    assert out.splitlines() == ["CartPole-v1 ppo, seeds 0, 1: at step 64, mean 4.00 (min 2.00, max 6.00)",
                                "CartPole-v1 trpo, seed 0: at step 64, mean 5.00 (min 5.00, max 5.00)", "Wrote c.png"]
    assert png_size(tmp_path / "c.png") == (600, 420)
    rc, out, _ = purepg_cli(["plot", "--help"], tmp_path)
    assert rc == 0 and 'pip install "purepg[plot]"' in out and "RUN_DIR" in out


def test_cli_plot_without_matplotlib_says_how_to_get_it(tmp_path):
    fake_run(tmp_path / "a", [32, 64], [1.0, 2.0])
    rc, out, err = purepg_cli(["plot", "a", "--out", "c.png"], tmp_path, code=NO_MATPLOTLIB)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert 'purepg plot: error: plot_runs: matplotlib is not installed' in err
    assert err.strip().endswith('Fix: pip install "purepg[plot]"')
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("args, message", [
    (["plot"], r"the following arguments are required: RUN_DIR"),
    (["plot", "missing"], r"run directory missing: config.json is missing"),
    (["plot", "a", "--y", "kl"], r"y: expected a column of .*progress.csv, got 'kl'; available: iteration, step"),
    (["plot", "a", "--out", "nope/c.png"], r"out_png: the directory .*nope does not exist"),
    (["plot", "a", "--out", "c.jpg"], r"out: expected a file name ending in \.png, \.pdf, \.svg, got 'c\.jpg'\. Fix: "),
])
def test_cli_plot_bad_input(tmp_path, args, message):
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "a", [32, 64], [1.0, 2.0])
    rc, out, err = purepg_cli(args, tmp_path)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_runs_are_labelled_by_their_seeds(tmp_path):
    same = [fake_run(tmp_path / f"r{k}", [32, 64], [1.0, 2.0 + k], seed=0) for k in range(3)]
    assert [c.label for c in plot.curves(same)] == ["ppo, seed 0 (3 runs)"]
    assert plot.seed_label([4, 0, 1, 2, 3]) == "seeds 0-4"
    assert plot.seed_label([0, 2, 5]) == "seeds 0, 2, 5"
    assert plot.seed_label([1, 1, 2]) == "seeds 1, 2 (3 runs)"


@pytest.mark.parametrize("ext, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_the_output_extension_picks_the_format(tmp_path, ext, magic):
    pytest.importorskip("matplotlib")
    a = fake_run(tmp_path / "a", [32, 64], [1.0, 2.0])
    plot.plot_runs([a], tmp_path / f"c.{ext.upper()}")
    assert (tmp_path / f"c.{ext.upper()}").read_bytes().startswith(magic)
    with pytest.raises(ValueError, match=r"got '.*c\.jpg'.* Fix: name the output e\.g\. curves\.png"):
        plot.plot_runs([a], tmp_path / "c.jpg")
    assert not (tmp_path / "c.jpg").exists()
