"""bench/run_all.py and bench/presets.py: the --quick path end to end (train, evaluate, report, restart),
the README writer on fabricated results, task selection, bad input, and the presets' anchors."""
import json
import os
import pathlib
import re
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

BENCH = pathlib.Path(__file__).parents[1] / "bench"
_env = dict(os.environ)
sys.path.insert(0, str(BENCH))
import learn  # noqa: E402
import learn_trust_region  # noqa: E402
import presets  # noqa: E402
import run_all  # noqa: E402

from purepg.algos import get_algo  # noqa: E402

os.environ.clear()
os.environ.update(_env)          # run_all pins the thread variables at import; leave the session's as they were

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _quick(tmp_path, *extra):
    return ["--quick", "--seeds", "0-1", "--jobs", "1", "--out", str(tmp_path / "out"),
            "--readme", str(tmp_path / "README.md"), "--figures", str(tmp_path / "fig"), *extra]


def _not_run_rows(text):
    """Rows of the per-environment tables whose pair has no result (the summary matrix not counted)."""
    return len(re.findall(r"^\| [\w-]+ \| [\d,]+ \| not run \|", text, flags=re.M))


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _mtimes(d):
    return {p: p.stat().st_mtime_ns for p in sorted(pathlib.Path(d).rglob("*")) if p.is_file()}


# ----- the --quick path -------------------------------------------------------------------------
def test_quick_run_trains_evaluates_reports_and_is_skipped_when_rerun(tmp_path, capsys):
    readme = tmp_path / "README.md"
    before, after = "# purepg benchmarks\n\nwritten by hand\n\n", "\n\n## a later section\n\nkept\n"
    readme.write_text(before + run_all.BEGIN + "\nstale\n" + run_all.END + after)
    assert run_all.main(_quick(tmp_path, "--only", "ppo/CartPole-v1")) == 0
    pair = tmp_path / "out" / "learn" / "CartPole-v1" / "ppo"
    result = json.loads((pair / "result.json").read_text())
    assert result["steps"] == 2048 and result["rl_zoo_steps"] == 100_000        # 8 x 32 per iteration, 8 iterations
    assert [e["seed"] for e in result["eval"]] == [0, 1] and result["eval_episodes"] == run_all.QUICK_EPISODES
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after) and "stale" not in text
    ev = np.array([e["mean"] for e in result["eval"]])
    assert f"| ppo | 2,048 (rl-zoo 100,000) | **{ev.mean():.1f} ± {ev.std():.1f}** | " in text
    assert _not_run_rows(text) == 27 and "Quick smoke-test budgets" in text
    if _has_matplotlib():                                       # the optional plotting extra
        png = (tmp_path / "fig" / "CartPole-v1.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) < 200_000
        assert "![learning curves on CartPole-v1](fig/CartPole-v1.png)" in text
    else:
        assert "not drawn: plot_runs: matplotlib is not installed" in capsys.readouterr().out
        assert "![learning curves" not in text
    first = _mtimes(pair)
    capsys.readouterr()
    run_all.main(_quick(tmp_path, "--only", "ppo/CartPole-v1"))              # finished: skipped, nothing rewritten
    assert "[skip] ppo on CartPole-v1" in capsys.readouterr().out and _mtimes(pair) == first


def test_a_trained_pair_without_result_is_evaluated_again_not_retrained(tmp_path):
    run_all.main(_quick(tmp_path, "--only", "reinforce/CartPole-v1"))
    pair = tmp_path / "out" / "learn" / "CartPole-v1" / "reinforce"
    old = json.loads((pair / "result.json").read_text())
    progress = {p: p.stat().st_mtime_ns for p in pair.glob("seed-*/progress.csv")}
    (pair / "result.json").unlink()                                             # as if killed while evaluating
    run_all.main(_quick(tmp_path, "--only", "reinforce/CartPole-v1"))
    new = json.loads((pair / "result.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in pair.glob("seed-*/progress.csv")} == progress and len(progress) == 2
    assert new["eval"] == old["eval"]                                           # the evaluation is deterministic


# ----- the README writer on fabricated results --------------------------------------------------
def _fabricate(out, algo, env_id, evals, train, time_s, steps, rl_zoo_steps):
    runs = [{"seed": k, "out_dir": f"{out}/x/seed-{k}", "ep_return_mean": t, "steps": steps, "episodes": 10,
             "time_s": w} for k, (t, w) in enumerate(zip(train, time_s))]
    result = {"algo": algo, "env_id": env_id, "steps": steps, "rl_zoo_steps": rl_zoo_steps, "quick": False,
              "source": presets.source(algo, env_id), "overrides": {}, "eval_episodes": 20, "eval_seed": 10_000,
              "summary": {"runs": runs, "jobs": 2}, "load_avg_1min": [1.5, 2.5], "finished_at": "2026-01-02 03:04:05",
              "eval": [{"seed": k, "mean": m, "std": 0.0, "min": m, "max": m} for k, m in enumerate(evals)]}
    d = pathlib.Path(run_all.pair_dir(str(out), algo, env_id))
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps(result))


def test_report_tables_from_fabricated_results(tmp_path):
    out = tmp_path / "out"
    # eval -80, -90, -120: mean -96.67, population std sqrt(866.67 / 3) = 17.0; the Acrobot target is -100.
    # training returns -85, (none), -95: -90 +- 5 over the seeds that have one; steps/s mean of 1e4, 5e3, 3333.3.
    _fabricate(out, "trpo", "Acrobot-v1", [-80.0, -90.0, -120.0], [-85.0, None, -95.0], [10.0, 20.0, 30.0],
               100_000, 100_000)
    _fabricate(out, "ppo", "CartPole-v1", [500.0, 400.0], [480.0, 470.0], [5.0, 5.0], 50_000, 100_000)
    (out / "learn" / "Pendulum-v1" / "npg").mkdir(parents=True)
    (out / "learn" / "Pendulum-v1" / "npg" / "failed.txt").write_text("SeedRunError: seed 1 failed: NaN. Fix: x; "
                                                                        "seed 2 failed: NaN\n")
    known = out / "learn" / "MountainCarContinuous-v0" / "ppo-kl"
    known.mkdir(parents=True)
    (known / "failed.txt").write_text("SeedRunError: seed 0 failed: ValueError: beta: expected > 0, got 0.0\n")
    readme = tmp_path / "README.md"
    run_all.write_report(str(out), run_all.learning_pairs(), str(readme), str(tmp_path / "fig"))
    text = readme.read_text()
    assert "| trpo | 100,000 | **-96.7 ± 17.0** | 2/3 | -80.0, -90.0, -120.0 | -90.0 ± 5.0 | 20.0 s | 6,111 |" in text
    assert "| ppo | 50,000 (rl-zoo 100,000) | **450.0 ± 50.0** | 1/2 | 500.0, 400.0 | 475.0 ± 5.0 | 5.0 s | 10,000 |" in text
    assert "Shortened budgets: ppo on CartPole-v1: 50,000 of rl-zoo's 100,000 steps." in text
    assert "| trpo | not run | -96.7 (2/3) | not run | not run |" in text                 # the summary matrix
    assert "| npg | not run | not run | failed | not run |" in text
    assert "| npg | 100,000 | failed: SeedRunError: seed 1 failed: NaN |" in text          # the first seed's error
    assert "| ppo-kl | 20,000 | failed: SeedRunError: seed 0 failed: ValueError: beta: expected > 0, got 0.0 (the KL " \
           "of an update stays below d_targ / 1.5" in text                                 # with its known cause
    assert "| ppo-kl | not run | not run | not run | failed |" in text
    assert _not_run_rows(text) == 28 - 4 and "load average 1.5 to 2.5" in text
    assert not (tmp_path / "fig" / "Acrobot-v1.png").exists()                  # no run directories to plot
    assert "Kernels: not run." in text and "TRPO vs sb3-contrib TRPO (`bench/vs_sb3.py`): not run" in text


def test_speed_section_from_fabricated_outputs(tmp_path):
    speed = tmp_path / "speed"
    speed.mkdir()
    rows = [{"name": "score", "purepg": 1e-3, "reference": 4e-3, "torch": 6e-3, "note": "",
             "speedup": {"reference": 4.0, "torch": 6.0}},
            {"name": "fisher", "purepg": 2e-3, "reference": None, "torch": None, "note": "no torch", "speedup": {}}]
    (speed / "kernels.json").write_text(json.dumps({"workload": {"N": 8, "obs_dim": 4, "n_actions": 2,
                                                                 "hidden": [64, 64], "activation": "tanh"},
                                                    "rows": rows}))
    (speed / "vs_sb3-ppo.txt").write_text("$ py bench/vs_sb3.py\n   0  1.0  2.0\n\ntotal: SB3 3.0 s, purepg 2.0 s, "
                                          "ratio purepg / SB3 = 0.667 (median per seed 0.650)\n")
    text = run_all.speed_section(str(tmp_path))
    assert "| score | 1.000 | 4.000 | 6.000 | 4.0x | 6.0x |  |" in text
    assert "| fisher | 2.000 | - | - | - | - | no torch |" in text
    assert "**SB3 3.0 s, purepg 2.0 s, ratio purepg / SB3 = 0.667 (median per seed 0.650)**" in text
    assert "TRPO vs sb3-contrib TRPO (`bench/vs_sb3.py`): not run" in text


_no_marker = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200).filter(
    lambda s: run_all.BEGIN not in s and run_all.END not in s and "<!--" not in s)


@given(before=_no_marker, after=_no_marker, old=_no_marker, new=_no_marker)
def test_replace_section_keeps_the_rest_byte_for_byte(tmp_path_factory, before, after, old, new):
    readme = tmp_path_factory.mktemp("r") / "README.md"
    readme.write_bytes((before + run_all.BEGIN + old + run_all.END + after).encode())
    section = run_all.BEGIN + new + run_all.END
    run_all.replace_section(str(readme), section)
    assert readme.read_bytes() == (before + section + after).encode()
    run_all.replace_section(str(readme), section)                             # idempotent
    assert readme.read_bytes() == (before + section + after).encode()


def test_replace_section_appends_without_markers_and_refuses_half_a_pair(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nbody\n")
    run_all.replace_section(str(readme), run_all.BEGIN + "x" + run_all.END)
    assert readme.read_text() == "# title\n\nbody\n\n" + run_all.BEGIN + "x" + run_all.END + "\n"
    readme.write_text("# title\n" + run_all.BEGIN + "\nno end\n")
    with pytest.raises(ValueError, match=r"readme: .* one run_all marker without the other.*Fix: repair"):
        run_all.replace_section(str(readme), "y")
    assert readme.read_text() == "# title\n" + run_all.BEGIN + "\nno end\n"   # untouched


# ----- selection and bad input ------------------------------------------------------------------
@pytest.mark.parametrize("name, only, hit", [
    ("ppo/CartPole-v1", None, True), ("ppo/CartPole-v1", ["ppo"], True), ("ppo-kl/CartPole-v1", ["ppo"], False),
    ("ppo/CartPole-v1", ["CartPole-v1"], True), ("ppo/CartPole-v1", ["*/Acrobot-v1"], False),
    ("npg/Acrobot-v1", ["*/Acrobot-v1"], True), ("speed/kernels", ["speed"], True),
    ("speed/kernels", ["ppo", "trpo/*"], False), ("trpo/Pendulum-v1", ["ppo", "trpo/*"], True)])
def test_only_patterns(name, only, hit):
    assert run_all.selected(name, only) is hit


def test_bad_arguments_are_named():
    names = [f"{a}/{e}" for a, e in run_all.learning_pairs()]
    with pytest.raises(ValueError, match=r"--only: pattern 'pppo' matches no task.*Fix: check the spelling"):
        run_all.check_only(["ppo", "pppo"], names)
    with pytest.raises(ValueError, match=r"--only: pattern 'Hopper-v5'.*--hopper"):
        run_all.check_only(["Hopper-v5"], names)
    run_all.check_only(["Hopper-v5"], [f"{a}/{e}" for a, e in run_all.learning_pairs(hopper=True)])
    with pytest.raises(ValueError, match=r"seeds: expected integers >= 0 and ranges A-B with A <= B.*'2-1'"):
        run_all.parse_args(["--seeds", "2-1"])
    with pytest.raises(ValueError, match=r"--jobs: expected an integer >= 1, got 0\. Fix"):
        run_all.parse_args(["--jobs", "0"])
    with pytest.raises(ValueError, match=r"--max-steps: expected an integer >= 1, got -5\. Fix"):
        run_all.parse_args(["--max-steps", "-5"])


def test_budgets_quick_and_capped():
    args = run_all.parse_args(["--quick"])
    assert args.readme.startswith(args.out) and args.out.endswith("run_all_quick")   # never the real README
    for a, e in run_all.learning_pairs():
        c = presets.config(a, e)
        steps, full = run_all.budget(a, e, args)
        per_iter = c.num_envs * c.num_steps
        assert steps % per_iter == 0 and run_all.QUICK_STEPS <= steps < run_all.QUICK_STEPS + per_iter
        assert full == presets.budget(a, e)
    capped = run_all.parse_args(["--max-steps", "50000"])
    assert run_all.budget("ppo", "Acrobot-v1", capped) == (50_000, 1_000_000)
    assert run_all.budget("trpo", "MountainCarContinuous-v0", capped) == (50_000, 50_000)


# ----- presets ----------------------------------------------------------------------------------
def test_every_pair_has_a_valid_config_holding_its_overrides():
    for a, e in run_all.learning_pairs(hopper=True):
        c, o = presets.config(a, e), presets.overrides(a, e)
        assert set(o) <= set(type(c).__dataclass_fields__)
        assert all(getattr(c, k) == v for k, v in o.items())
        assert (e == "CartPole-v1") == (o == {})               # CartPole-v1: every algorithm's defaults (rl-zoo's)


def test_presets_reuse_the_other_benchmarks_and_follow_rl_zoo():
    assert presets.overrides("ppo", "Pendulum-v1") == learn.PENDULUM
    assert presets.overrides("trpo", "Acrobot-v1") == learn_trust_region.PRESETS[("trpo", "Acrobot-v1")]
    assert presets.overrides("trpo", "Pendulum-v1") == learn_trust_region.PRESETS[("trpo", "Pendulum-v1")]
    ppo_kl = presets.overrides("ppo-kl", "Acrobot-v1")
    assert ppo_kl == {k: v for k, v in presets.PPO_ACROBOT.items() if k not in ("clip", "clip_final")}
    assert set(presets.overrides("reinforce", "Pendulum-v1")) == {"gamma"}              # 0.9 of the PPO entry
    assert presets.config("npg", "Acrobot-v1").hidden == get_algo("npg").Config().hidden   # its 32-32 stays
    assert presets.config("npg", "Acrobot-v1").num_steps == 1024                        # rl-zoo TRPO Acrobot
    budgets = {(a, e): presets.budget(a, e) for a, e in run_all.learning_pairs()}
    assert budgets[("ppo", "Acrobot-v1")] == budgets[("reinforce", "Acrobot-v1")] == 1_000_000
    assert budgets[("offpolicy", "MountainCarContinuous-v0")] == 50_000
    assert budgets[("ppo-kl", "MountainCarContinuous-v0")] == 20_000
    c = presets.config("ppo", "MountainCarContinuous-v0")
    assert c.num_envs * c.num_steps % c.minibatch_size == 0 and c.log_std_init == -3.29


def test_presets_refuse_unknown_pairs():
    with pytest.raises(ValueError, match=r"algo: expected one of reinforce, ppo.*got 'a2c'"):
        presets.config("a2c", "CartPole-v1")
    with pytest.raises(ValueError, match=r"env_id: expected one of CartPole-v1.*got 'LunarLander-v3'.*Fix"):
        presets.budget("ppo", "LunarLander-v3")
    with pytest.raises(ValueError, match=r"algo: Hopper-v5 has presets for ppo, trpo only, got 'npg'"):
        presets.overrides("npg", "Hopper-v5")
