"""The benchmark report: every purepg algorithm on four environments, the speed benchmarks, bench/README.md.

Run from the repository root::

    python bench/run_all.py                         # everything (restartable), then the README section
    python bench/run_all.py --only ppo/CartPole-v1  # one (algorithm, environment); also ppo, Acrobot-v1, speed
    python bench/run_all.py --hopper --only Hopper-v5   # the optional MuJoCo section (gymnasium[mujoco])
    python bench/run_all.py --report-only           # rebuild the README section from the results on disk
    python bench/run_all.py --quick --out /tmp/q    # tiny budgets (smoke test); README and figures under --out

Learning. Each algorithm (``reinforce``, ``ppo``, ``ppo-kl``, ``npg``, ``trpo``, ``trpo-lagrangian``,
``offpolicy``) trains on CartPole-v1, Acrobot-v1, Pendulum-v1 and MountainCarContinuous-v0 with the
presets and rl-zoo step budgets of ``bench/presets.py``, for ``--seeds`` seeds through
:func:`purepg.run.seeds.run_seeds` (``--jobs`` processes, one thread each), into
``OUT/learn/<env>/<algo>/seed-<s>``. Each seed's saved policy is then evaluated on 20 episodes of the
deterministic (mode) policy with frozen observation statistics (:func:`purepg.cli.commands.evaluate`, reset
seeds 10000..10019, never used in training). ``OUT/learn/<env>/<algo>/result.json`` holds the
summary, the evaluations and the machine load; it marks the pair finished.

Restarting. A pair with ``result.json`` is skipped; one with ``summary.json`` (trained, not yet
evaluated) is only evaluated; any other pair is trained from scratch (its partial seeds are
overwritten). So a killed run_all continues where it stopped. ``--max-steps N`` caps every budget
(the report then lists what was shortened).

Speed. ``bench/kernels.py`` (one-thread kernel timings, with PyTorch columns when torch is there) and
``bench/vs_sb3.py`` for PPO and TRPO (purepg and Stable-Baselines3 / sb3-contrib side by side in one
process) run as subprocesses with the interpreter of ``--sb3-python`` (default: a ``venv-sb3`` next to
or inside the repository) if it exists, else the kernel benchmark alone with this interpreter and
the side-by-side rows skipped with a note. Their outputs go to ``OUT/speed``; a finished output is
not rerun.

Report. The section of ``--readme`` between ``<!-- run_all:begin -->`` and ``<!-- run_all:end -->``
is replaced (appended if absent); the rest of the file is left as it is. It has a summary table, a
table and a PNG of learning curves per environment (``--figures``, via :func:`purepg.run.plot.plot_runs`),
the speed figures, the machine and these commands. Pairs without a result are listed as "not run".
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy / numba are imported

import argparse  # noqa: E402
import fnmatch  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)
sys.path.insert(0, BENCH)
import machine as bench_machine  # noqa: E402  (bench/machine.py)
import presets  # noqa: E402

from purepg import __version__  # noqa: E402
from purepg.cli import commands as cli  # noqa: E402

from purepg.run import checkpoint, plot, seeds

EVAL_EPISODES, EVAL_SEED = 20, 10_000          # as bench/learn.py
QUICK_STEPS, QUICK_EPISODES = 2048, 2          # --quick: about 2048 steps per seed, 2 evaluation episodes
SPEED = {  # name: (script and arguments, needs SB3)
    "kernels": (["bench/kernels.py", "--json", "{out}/kernels.json"], False),
    "vs_sb3-ppo": (["bench/vs_sb3.py", "--algo", "ppo", "--seeds", "0-2", "--profile"], True),
    "vs_sb3-trpo": (["bench/vs_sb3.py", "--algo", "trpo", "--seeds", "0-2"], True),
}


# ----- what to run ------------------------------------------------------------------------------
def learning_pairs(hopper=False):
    """``[(algo, env_id)]`` in report order: environment by environment, then the optional Hopper pairs."""
    pairs = [(a, e) for e in presets.ENVS for a in presets.ALGOS]
    return pairs + ([(a, e) for e, algos in presets.OPTIONAL.items() for a in algos] if hopper else [])


def selected(name, only):
    """Whether the task ``name`` (``algo/env`` or ``speed/<bench>``) matches one of the ``only`` patterns.

    A pattern with a ``/`` is matched against the whole name (``ppo/*``, ``*/Acrobot-v1``); one without
    against either part (``ppo``, ``Acrobot-v1``, ``speed``). No patterns select everything.
    """
    if not only:
        return True
    parts = name.split("/")
    return any(fnmatch.fnmatchcase(name, p) if "/" in p else any(fnmatch.fnmatchcase(x, p) for x in parts)
               for p in only)


def check_only(only, names):
    """ValueError naming the first ``--only`` pattern that selects nothing."""
    for p in only or ():
        if not any(selected(n, [p]) for n in names):
            raise ValueError(f"--only: pattern {p!r} matches no task; expected ALGO/ENV, ALGO, ENV or speed "
                             f"(tasks: {', '.join(names[:3])}, ...). Fix: check the spelling (add --hopper for "
                             f"Hopper-v5)")


def pair_dir(out, algo, env_id):
    return os.path.join(out, "learn", env_id, algo)


# ----- learning ---------------------------------------------------------------------------------
def run_pair(algo, env_id, args):
    """Train (unless trained), evaluate and write ``result.json`` of one pair; return the result dict."""
    d = pair_dir(args.out, algo, env_id)
    path = os.path.join(d, "result.json")
    if os.path.exists(path):
        print(f"[skip] {algo} on {env_id}: finished ({path})", flush=True)
        return _read_json(path)
    config, steps, full = presets.config(algo, env_id), *budget(algo, env_id, args)
    load = [os.getloadavg()[0]]
    if not os.path.exists(os.path.join(d, "summary.json")):
        print(f"[run] {algo} on {env_id}: {steps} steps x seeds {args.seeds}, {args.jobs} jobs", flush=True)
        seeds.run_seeds(algo, env_id, config, args.seeds, out_root=d, total_steps=steps, jobs=args.jobs,
                        force=True, verbose=True)
    summary = _read_json(os.path.join(d, "summary.json"))
    load.append(os.getloadavg()[0])
    episodes = QUICK_EPISODES if args.quick else EVAL_EPISODES
    evals = [evaluation(r["out_dir"], r["seed"], episodes) for r in summary["runs"]]
    result = {"algo": algo, "env_id": env_id, "steps": steps, "rl_zoo_steps": full, "quick": args.quick,
              "source": presets.source(algo, env_id), "overrides": presets.overrides(algo, env_id),
              "summary": summary, "eval": evals, "eval_episodes": episodes, "eval_seed": EVAL_SEED,
              "load_avg_1min": load, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    checkpoint.atomic_write_bytes(path, (json.dumps(result, indent=2, default=_plain) + "\n").encode())
    if os.path.exists(os.path.join(d, "failed.txt")):
        os.unlink(os.path.join(d, "failed.txt"))               # an earlier attempt's
    print(f"[done] {algo} on {env_id}: eval {np.mean([e['mean'] for e in evals]):.2f} (mean over seeds)", flush=True)
    return result


def try_pair(algo, env_id, args):
    """:func:`run_pair`, but a failed training is written to ``failed.txt`` and the next pair goes on."""
    try:
        return run_pair(algo, env_id, args)
    except (seeds.SeedRunError, ArithmeticError, ValueError) as e:
        d = pair_dir(args.out, algo, env_id)
        os.makedirs(d, exist_ok=True)
        checkpoint.atomic_write_bytes(os.path.join(d, "failed.txt"), f"{type(e).__name__}: {e}\n".encode())
        print(f"[fail] {algo} on {env_id}: {type(e).__name__}: {e}", flush=True)
        return None


def budget(algo, env_id, args):
    """(steps to run, rl-zoo steps): the budget, cut by --max-steps, or about QUICK_STEPS with --quick."""
    full = presets.budget(algo, env_id)
    c = presets.config(algo, env_id)
    if args.quick:
        per_iter = c.num_envs * c.num_steps
        return per_iter * max(1, math.ceil(QUICK_STEPS / per_iter)), full
    return (min(full, args.max_steps) if args.max_steps else full), full


def evaluation(run_dir, seed, episodes):
    R = cli.evaluate(run_dir, episodes, EVAL_SEED, stochastic=False)           # (episodes,)
    return {"seed": seed, "mean": float(R.mean()), "std": float(R.std()), "min": float(R.min()),
            "max": float(R.max())}


def _plain(x):
    return x.tolist() if isinstance(x, (np.ndarray, np.generic)) else list(x) if isinstance(x, tuple) else str(x)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


# ----- speed ------------------------------------------------------------------------------------
def sb3_python(given=None):
    """The interpreter with torch + stable-baselines3 + sb3-contrib, or None."""
    candidates = [given] if given else [os.path.join(ROOT, "venv-sb3", "bin", "python"),
                                        os.path.join(os.path.dirname(ROOT), "venv-sb3", "bin", "python")]
    for py in candidates:
        if py and os.path.exists(py) and subprocess.run(
                [py, "-c", "import torch, stable_baselines3, sb3_contrib"], capture_output=True).returncode == 0:
            return py
    return None


def run_speed(name, args):
    """Run one speed benchmark as a subprocess into ``OUT/speed/<name>.txt`` unless done; a status line."""
    out = os.path.join(args.out, "speed")
    os.makedirs(out, exist_ok=True)
    txt = os.path.join(out, f"{name}.txt")
    script, needs_sb3 = SPEED[name]
    if os.path.exists(txt):
        return f"[skip] speed/{name}: finished ({txt})"
    py = sb3_python(args.sb3_python)
    if py is None and needs_sb3:
        return f"[skip] speed/{name}: no interpreter with stable-baselines3 and sb3-contrib (--sb3-python)"
    cmd = [py or sys.executable] + [a.format(out=out) for a in script]
    print(f"[run] speed/{name}: {' '.join(cmd)}", flush=True)
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        return f"[fail] speed/{name}: exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}"
    checkpoint.atomic_write_bytes(txt, (f"$ {' '.join(cmd)}\n" + p.stdout).encode())
    return f"[done] speed/{name}: {txt}"


# ----- the machine ------------------------------------------------------------------------------
def machine_info():
    """CPU model, cores, platform, BLAS kernel and versions of this interpreter's libraries."""
    import gymnasium
    import numba

    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    try:
        import mujoco
        mujoco_version = mujoco.__version__
    except ImportError:
        mujoco_version = None
    return {**bench_machine.info(), "numba": numba.__version__, "gymnasium": gymnasium.__version__,
            "mujoco": mujoco_version, "purepg": __version__, "git_commit": git.stdout.strip() or None}


def record_session(out, argv):
    """Append this invocation (time, command, machine, load) to ``OUT/sessions.json``."""
    path = os.path.join(out, "sessions.json")
    sessions = _read_json(path) if os.path.exists(path) else []
    sessions.append({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": list(argv), "machine": machine_info(),
                     "load_avg": list(os.getloadavg())})
    checkpoint.atomic_write_bytes(path, (json.dumps(sessions, indent=2) + "\n").encode())


# ----- the report -------------------------------------------------------------------------------
BEGIN, END = "<!-- run_all:begin -->", "<!-- run_all:end -->"
TARGETS = {"Hopper-v5": 2400.0}   # rl-zoo's published PPO score; the other envs use gymnasium's reward_threshold


def target(env_id):
    import gymnasium

    if env_id in TARGETS:
        return TARGETS[env_id]
    try:
        return gymnasium.spec(env_id).reward_threshold
    except gymnasium.error.Error:
        return None


def load_results(out, pairs):
    """``{(algo, env): result dict or None}`` for every planned pair."""
    res = {}
    for a, e in pairs:
        path = os.path.join(pair_dir(out, a, e), "result.json")
        res[(a, e)] = _read_json(path) if os.path.exists(path) else None
    return res


def pair_stats(r):
    """Figures of one finished pair over its seeds (population std, as purepg.run.seeds)."""
    ev = np.array([x["mean"] for x in r["eval"]])                                  # (K,)
    runs = r["summary"]["runs"]
    tr = np.array([np.nan if x["ep_return_mean"] is None else x["ep_return_mean"] for x in runs])   # (K,)
    wall = np.array([x["time_s"] for x in runs])                                   # (K,)
    sps = np.array([x["steps"] / x["time_s"] for x in runs])                       # (K,)
    t = target(r["env_id"])
    return {"eval_mean": ev.mean(), "eval_std": ev.std(), "eval": ev, "train_mean": np.nanmean(tr) if
            np.isfinite(tr).any() else np.nan, "train_std": np.nanstd(tr) if np.isfinite(tr).any() else np.nan,
            "wall": wall.mean(), "sps": sps.mean(), "hits": None if t is None else int((ev >= t).sum()), "K": ev.size}


def _num(x):
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1f}"


def _pm(m, s):
    return "n/a" if not np.isfinite(m) else f"{m:.1f} ± {s:.1f}"


# Why a pair failed, where the cause is known (shown only while the pair has no result).
KNOWN_FAILURES = {
    ("ppo-kl", "MountainCarContinuous-v0"): "the KL of an update stays below d_targ / 1.5 (log std -3.29, step "
                                            "size 7.8e-5), so beta halves at each of the 2 500 iterations and "
                                            "underflows to 0, which purepg.pg.surrogates.update_beta refuses",
}


def missing(out, algo, env_id):
    """What the report says of a pair without a result: ``not run``, or ``failed: ...`` from failed.txt."""
    path = os.path.join(pair_dir(out, algo, env_id), "failed.txt")
    if not os.path.exists(path):
        return "not run"
    with open(path) as f:
        error = " ".join(f.read().split())
    first = error.split(". Fix:")[0].split("; seed ")[0]                  # the first seed's error, without the fix
    cause = KNOWN_FAILURES.get((algo, env_id))
    return f"failed: {first[:200]}" + (f" ({cause})" if cause else "")


def env_table(env_id, pairs, results, out):
    t = target(env_id)
    hit_head = f"seeds ≥ {t:g}" if t is not None else "seeds ≥ target"
    lines = [f"| algorithm | steps / seed | eval return (mean ± std over seeds) | {hit_head} | eval per seed | "
             f"training return, last 100 episodes | wall / run | steps/s | preset |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a, e in pairs:
        if e != env_id:
            continue
        r = results[(a, e)]
        if r is None:
            steps = presets.budget(a, e)
            lines.append(f"| {a} | {steps:,} | {missing(out, a, e)} | | | | | | {presets.source(a, e)} |")
            continue
        s = pair_stats(r)
        steps = f"{r['steps']:,}" + (f" (rl-zoo {r['rl_zoo_steps']:,})" if r["steps"] != r["rl_zoo_steps"] else "")
        hits = "-" if s["hits"] is None else f"{s['hits']}/{s['K']}"
        per_seed = ", ".join(_num(x) for x in s["eval"])
        lines.append(f"| {a} | {steps} | **{_pm(s['eval_mean'], s['eval_std'])}** | {hits} | {per_seed} | "
                     f"{_pm(s['train_mean'], s['train_std'])} | {s['wall']:.1f} s | {s['sps']:,.0f} | {r['source']} |")
    return "\n".join(lines)


def summary_table(pairs, results, out):
    envs = list(dict.fromkeys(e for _, e in pairs))
    algos = list(dict.fromkeys(a for a, _ in pairs))
    lines = ["| algorithm | " + " | ".join(envs) + " |", "|---|" + "---|" * len(envs)]
    for a in algos:
        cells = []
        for e in envs:
            r = results.get((a, e), "absent")
            if r == "absent":
                cells.append("")
            elif r is None:
                cells.append(missing(out, a, e).split(":")[0])
            else:
                s = pair_stats(r)
                hits = "" if s["hits"] is None else f" ({s['hits']}/{s['K']})"
                cells.append(f"{_num(s['eval_mean'])}{hits}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def make_figures(out, pairs, results, figures):
    """``{env: png path}``: learning curves of every finished pair of the env (purepg.run.plot)."""
    os.makedirs(figures, exist_ok=True)
    pngs = {}
    for env_id in dict.fromkeys(e for _, e in pairs):
        dirs = [pair_dir(out, a, e) for a, e in pairs if e == env_id and results[(a, e)] is not None]
        dirs = [d for d in dirs if _plottable(d)]
        if dirs:
            png = os.path.join(figures, f"{env_id}.png")
            try:
                plot.plot_runs(dirs, png)
            except ImportError as e:     # matplotlib is an optional extra: the tables are written anyway
                print(f"[figures] not drawn: {e}", flush=True)
                return {}
            pngs[env_id] = png
    return pngs


def _plottable(d):
    try:
        plot.curves([d])
        return True
    except ValueError:            # e.g. no episode finished in a run (quick budgets)
        return False


def speed_section(out):
    """Markdown of the speed outputs found in ``OUT/speed`` (a note for each one missing)."""
    d = os.path.join(out, "speed")
    parts = []
    kj = os.path.join(d, "kernels.json")
    if os.path.exists(kj):
        k = _read_json(kj)
        w = k["workload"]
        parts.append(f"Kernels (`bench/kernels.py`: N = {w['N']}, obs_dim {w['obs_dim']}, {w['n_actions']} actions, "
                     f"{'-'.join(map(str, w['hidden']))} {w['activation']}, median of repeated calls, one thread, "
                     f"float64 everywhere):\n\n| row | purepg ms | NumPy reference ms | PyTorch ms | "
                     f"purepg speed-up vs NumPy | vs PyTorch | note |\n|---|---|---|---|---|---|---|")
        for r in k["rows"]:
            ms = lambda x: "-" if x is None else f"{x * 1e3:.3f}"
            up = lambda c: f"{r['speedup'][c]:.1f}x" if c in r["speedup"] else "-"
            parts[-1] += (f"\n| {r['name']} | {ms(r['purepg'])} | {ms(r['reference'])} | {ms(r['torch'])} | "
                          f"{up('reference')} | {up('torch')} | {r['note']} |")
    else:
        parts.append("Kernels: not run.")
    for name, what in (("vs_sb3-ppo", "PPO vs Stable-Baselines3 PPO"), ("vs_sb3-trpo", "TRPO vs sb3-contrib TRPO")):
        path = os.path.join(d, f"{name}.txt")
        if not os.path.exists(path):
            parts.append(f"{what} (`bench/vs_sb3.py`): not run (needs an interpreter with torch, "
                         f"stable-baselines3 and sb3-contrib, `--sb3-python`).")
            continue
        with open(path) as f:
            text = f.read().strip()
        total = next((ln for ln in text.splitlines() if ln.startswith("total:")), "total: (not found)")
        parts.append(f"{what}, CartPole-v1, 1e5 steps per seed, one process, one thread (`bench/vs_sb3.py`): "
                     f"**{total[len('total: '):]}**\n\n```text\n{text}\n```")
    return "\n\n".join(parts)


def machine_section(out, results):
    path = os.path.join(out, "sessions.json")
    sessions = _read_json(path) if os.path.exists(path) else []
    m = sessions[-1]["machine"] if sessions else machine_info()
    commits = ", ".join(dict.fromkeys(x["machine"]["git_commit"] for x in sessions if x["machine"].get("git_commit")))
    loads = [x for r in results.values() if r for x in r.get("load_avg_1min", [])]
    load = f"{min(loads):.1f} to {max(loads):.1f}" if loads else "n/a"
    dates = sorted(r["finished_at"] for r in results.values() if r)
    when = f"{dates[0]} .. {dates[-1]}" if dates else "n/a"
    mujoco = f", MuJoCo {m['mujoco']}" if m.get("mujoco") else ""
    return (f"Machine: {m['cpu']}, {m['logical_cores']} logical cores shared with other jobs (1-minute load "
            f"average {load} while the pairs ran), {m['platform']}; Python {m['python']}, NumPy {m['numpy']}, "
            f"Numba {m['numba']}, gymnasium {m['gymnasium']}{mujoco}, purepg {m['purepg']}, "
            f"{m.get('blas', 'BLAS kernel not recorded')} (working tree at "
            f"commit {commits or 'unknown'}); results finished {when}. Every process runs on one thread "
            f"(OMP/OPENBLAS/MKL/NUMBA threads = 1).")


COMMANDS = """```bash
python bench/run_all.py                                   # everything; a rerun continues where it stopped
python bench/run_all.py --only ppo/CartPole-v1            # one pair (also: --only ppo, --only Acrobot-v1, --only speed)
python bench/run_all.py --hopper --only Hopper-v5         # the optional MuJoCo section (pip install "gymnasium[mujoco]")
python bench/run_all.py --report-only                     # rebuild this section and bench/figures/*.png
purepg eval bench/out/run_all/learn/CartPole-v1/ppo/seed-0  # one saved policy, 20 deterministic episodes
```"""


def render(out, pairs, results, pngs, readme_dir, quick=False):
    """The generated Markdown section (between the markers)."""
    main_pairs = [(a, e) for a, e in pairs if e in presets.ENVS]
    opt_pairs = [(a, e) for a, e in pairs if e not in presets.ENVS]
    cut = [f"{a} on {e}: {r['steps']:,} of rl-zoo's {r['rl_zoo_steps']:,} steps" for (a, e), r in results.items()
           if r and r["steps"] != r["rl_zoo_steps"]]
    done = sum(results[p] is not None for p in main_pairs)
    head = [BEGIN, "<!-- generated by bench/run_all.py from bench/out/run_all; edit the script, not this section -->",
            "## Benchmark report: every algorithm on four environments (`bench/run_all.py`)", ""]
    if quick:
        head.append("**Quick smoke-test budgets (`--quick`): these figures are not benchmark results.**\n")
    head.append(INTRO.format(done=done, total=len(main_pairs), seeds=_distinct(results, lambda r: len(r["eval"])),
                             episodes=_distinct(results, lambda r: r["eval_episodes"]),
                             jobs=_distinct(results, lambda r: r["summary"]["jobs"])))
    head.append("\nShortened budgets: " + ("; ".join(cut) + "." if cut else "none (every budget is rl-zoo's)."))
    body = ["### Summary: evaluation return, mean over seeds (seeds reaching the target)", "",
            summary_table(main_pairs, results, out)]
    for env_id in dict.fromkeys(e for _, e in main_pairs):
        body += _env_part(env_id, main_pairs, results, pngs, readme_dir, out)
    if opt_pairs:
        body += ["", "### Optional: MuJoCo Hopper-v5 (PPO target ≥ 2400)", "", _optional_intro(opt_pairs, results)]
        for env_id in dict.fromkeys(e for _, e in opt_pairs):
            body += _env_part(env_id, opt_pairs, results, pngs, readme_dir, out, level="####")
    body += ["", "### Speed", "", speed_section(out), "", "### Machine and commands", "",
             machine_section(out, results), "", COMMANDS, END]
    return "\n".join(head) + "\n\n" + "\n".join(body)


INTRO = """Pairs finished: {done} of {total}, {seeds} seeds each. Every algorithm runs with the presets
of `bench/presets.py`: rl-baselines3-zoo's tuned PPO or TRPO entry for the environment and that
entry's step budget; algorithms rl-zoo does not have take their family's (`reinforce` and `ppo-kl`
PPO's, `npg`, `trpo-lagrangian` and `offpolicy` TRPO's), restricted to the fields their config has.
The last column says where each preset comes from and what purepg lacks (gSDE, reward
normalisation). *Eval return*: each seed's saved policy after training, {episodes} episodes of the
deterministic (mode) policy with frozen observation statistics, reset seed 10000 + i for episode i
(never used in training; `purepg eval`); the tables give the mean ± std over seeds of those per-seed
means (ddof = 0); the target is gymnasium's `reward_threshold`. *Training return*: the mean of the
last 100 training episodes at the end (`ep_return_mean` in `progress.csv`, stochastic policy).
*Wall / run*: training time of one seed, evaluation excluded, {jobs} seeds at a time on 2 cores that
other jobs were also using (so slower than the one-process timings of the sections above);
steps/s = steps / that time. A pair whose training raised an error is listed as failed, with the
error. Curves: mean and min-max band over seeds of the training return."""


def _optional_intro(pairs, results):
    n = sum(results[p] is not None for p in pairs)
    ppo = results.get(("ppo", presets.HOPPER))
    verdict = ""
    if ppo is not None:
        s = pair_stats(ppo)
        verdict = (f" PPO's evaluation reaches the target of {TARGETS[presets.HOPPER]:g} on {s['hits']} of {s['K']} "
                   f"seeds ({'met' if s['hits'] == s['K'] else 'not met'}).")
    return (f"Pairs finished: {n} of {len(pairs)}.{verdict} Presets: rl-zoo's Hopper-v4 entries (`bench/presets.py`), "
            f"1e6 steps, gymnasium[mujoco] with MuJoCo {machine_info()['mujoco'] or '(not installed now)'}. MuJoCo "
            f"checkpoints are saved without the simulator state (a resumed run restarts its episodes, so it is not "
            f"bit-identical); run_all never resumes a pair, it retrains it.")


def _distinct(results, key):
    """The distinct values of ``key(result)`` over the finished pairs, as text (``"3"``, ``"2/3"``)."""
    return "/".join(map(str, sorted({key(r) for r in results.values() if r}))) or "-"


def _env_part(env_id, pairs, results, pngs, readme_dir, out, level="###"):
    part = ["", f"{level} {env_id}", ""]
    if env_id in pngs:
        rel = os.path.relpath(pngs[env_id], readme_dir)
        part += [f"![learning curves on {env_id}]({rel})", ""]
    return part + [env_table(env_id, pairs, results, out)]


def replace_section(readme, section):
    """Put ``section`` between the markers of ``readme`` (appended if absent); the rest is kept byte for byte."""
    text = ""
    if os.path.exists(readme):
        with open(readme, encoding="utf-8", newline="") as f:            # newline="": line ends kept as they are
            text = f.read()
    i, j = text.find(BEGIN), text.find(END)
    if (i < 0) != (j < 0) or j < i:
        raise ValueError(f"readme: {readme} has one run_all marker without the other (or in the wrong order); "
                         f"expected both {BEGIN} and {END} or neither. Fix: repair or remove the markers")
    new = text[:i] + section + text[j + len(END):] if i >= 0 else text.rstrip("\n") + "\n\n" + section + "\n"
    checkpoint.atomic_write_bytes(readme, new.encode("utf-8"))
    return readme


def write_report(out, pairs, readme, figures, quick=False):
    """Figures and the README section from the results in ``out``; returns the README path."""
    results = load_results(out, pairs)
    pngs = make_figures(out, pairs, results, figures)
    section = render(out, pairs, results, pngs, os.path.dirname(os.path.abspath(readme)), quick)
    return replace_section(readme, section)



# ----- main -------------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", metavar="PATTERN", help="ALGO/ENV, ALGO, ENV or speed (fnmatch patterns)")
    ap.add_argument("--seeds", default="0-2", help="seeds per pair, e.g. 0-2 or 0,3 [default: 0-2]")
    ap.add_argument("--jobs", type=int, default=2, help="processes per pair (purepg.run.seeds) [default: 2]")
    ap.add_argument("--out", default=None, help="results [default: bench/out/run_all; bench/out/run_all_quick]")
    ap.add_argument("--quick", action="store_true", help="about 2048 steps per seed, 2 evaluation episodes, "
                    "no speed benchmarks; README and figures under --out unless given")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the README section and figures")
    ap.add_argument("--hopper", action="store_true", help="add PPO and TRPO on Hopper-v5 (gymnasium[mujoco])")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed benchmarks")
    ap.add_argument("--max-steps", type=int, default=None, help="cap every step budget (the report says so)")
    ap.add_argument("--sb3-python", default=None, help="interpreter with torch, SB3 and sb3-contrib")
    ap.add_argument("--readme", default=None, help="README to write [default: bench/README.md]")
    ap.add_argument("--figures", default=None, help="PNG directory [default: bench/figures]")
    args = ap.parse_args(argv)
    args.seeds = ",".join(map(str, seeds.parse_seeds(args.seeds)))    # ValueError naming --seeds on bad input
    if args.jobs < 1:
        raise ValueError(f"--jobs: expected an integer >= 1, got {args.jobs}. Fix: pass e.g. --jobs 2")
    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps: expected an integer >= 1, got {args.max_steps}. Fix: pass e.g. 100000")
    default_out = os.path.join(BENCH, "out", "run_all_quick" if args.quick else "run_all")
    args.out = args.out or default_out
    args.readme = args.readme or (os.path.join(args.out, "README.md") if args.quick else os.path.join(BENCH, "README.md"))
    args.figures = args.figures or (os.path.join(args.out, "figures") if args.quick else os.path.join(BENCH, "figures"))
    return args


def main(argv=None):
    args = parse_args(argv)
    pairs = learning_pairs(args.hopper)
    names = [f"{a}/{e}" for a, e in pairs] + [f"speed/{s}" for s in SPEED]
    check_only(args.only, names)
    if not args.report_only:
        os.makedirs(args.out, exist_ok=True)
        record_session(args.out, sys.argv if argv is None else ["bench/run_all.py", *argv])
        for a, e in sorted(pairs, key=lambda p: presets.budget(*p)):   # the long runs last
            if selected(f"{a}/{e}", args.only):
                try_pair(a, e, args)
        if not (args.quick or args.no_speed):
            for s in SPEED:
                if selected(f"speed/{s}", args.only):
                    print(run_speed(s, args), flush=True)
    pairs = learning_pairs(args.hopper or _has_results(args.out, presets.OPTIONAL))
    path = write_report(args.out, pairs, args.readme, args.figures, quick=args.quick)
    print(f"[report] {path} (figures in {args.figures})", flush=True)
    return 0


def _has_results(out, optional):
    return any(os.path.exists(pair_dir(out, a, e)) for e, algos in optional.items() for a in algos)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileExistsError, seeds.SeedRunError) as e:
        sys.exit(f"bench/run_all.py: error: {e}")
