"""Statistical parity of purepg with Stable-Baselines3 PPO and sb3-contrib TRPO, cell by cell.

Run from the repository root, next to stable-baselines3, sb3-contrib and torch (see bench/vs_sb3.py)::

    python bench/parity.py --out runs/parity                      # the full report (hours on 2 cores)
    python bench/parity.py --out /tmp/p --seeds 0-1 --steps 4096 --envs CartPole-v1 --algos ppo   # smoke test

Cells: algorithm (``ppo`` against SB3 PPO, ``trpo`` against sb3-contrib TRPO) x environment
(CartPole-v1, Acrobot-v1, Pendulum-v1) x purepg profile (``default``: purepg's own conventions;
``sb3``: the ``sb3`` profile of :mod:`purepg.algos.conventions`, where this checkout has it). Both
libraries get ``bench/presets.py``'s rl-zoo hyperparameters and budget for the pair (``--steps``
replaces the budget) and at least 10 seeds (``--seeds``, default 0-9).

A seed's *final return* is the mean of 20 deterministic evaluation episodes of the trained policy
(reset seeds 10000..10019, never used in training), for both libraries (:data:`vs_sb3.EVAL_SEED`).
purepg's runs are a sweep (:mod:`purepg.run.sweep`) in ``OUT/purepg``, so an interrupted report
resumes; SB3's results are cached per seed in ``OUT/sb3``.

Decision rule (fixed before any figure was seen)
-------------------------------------------------
For a cell with purepg returns ``A`` (K_A seeds) and reference returns ``C`` (K_C seeds):

    Delta = mean(A) - mean(C),   CI = 95% percentile bootstrap interval of Delta
    (B = 10 000 resamples of A and of C independently, numpy.random.default_rng(0); purepg.run.stats)

and with the equivalence margin ``delta_env`` of :data:`MARGIN` (about 5% of the distance between a
random and a solved policy's return on that environment: CartPole 25 of 500, Acrobot 25 of ~420,
Pendulum 50 of ~1000; for the optional Hopper-v5 cell, which needs ``gymnasium[mujoco]`` and is not
in the default ``--envs``, 120 of the ~2400 of rl-zoo's PPO target, fixed before its first run):

* **equivalent** if ``-delta_env < CI_lo`` and ``CI_hi < delta_env`` (the whole interval inside the margin);
* otherwise **better** if ``CI_lo > 0``; **worse** if ``CI_hi < 0``;
* otherwise **inconclusive** (the interval straddles 0 and reaches past a margin: more seeds needed).

"purepg is worse than the reference by this rule" means the verdict **worse**.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy / numba / torch are imported

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as machine_info  # noqa: E402  (bench/machine.py)
import presets  # noqa: E402  (bench/presets.py)

from purepg.algos import get_algo  # noqa: E402
from purepg.cli.commands import evaluate  # noqa: E402
from purepg.run import stats, sweep  # noqa: E402
from purepg.run.spec import parse_seeds  # noqa: E402

ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1")
ALGOS = ("ppo", "trpo")
MARGIN = {"CartPole-v1": 25.0, "Acrobot-v1": 25.0, "Pendulum-v1": 50.0, "Hopper-v5": 120.0}   # Hopper: optional (MuJoCo)
N_RESAMPLES, CI_SEED = 10_000, 0
EVAL_EPISODES, EVAL_SEED = 20, 10_000


def verdict(A, C, margin, rng):
    """``(Delta, (lo, hi), verdict)`` by the decision rule of the module docstring."""
    delta = float(np.mean(A) - np.mean(C))
    lo, hi = stats.bootstrap_diff_ci(A, C, rng, N_RESAMPLES)
    if -margin < lo and hi < margin:
        return delta, (lo, hi), "equivalent"
    if lo > 0:
        return delta, (lo, hi), "better"
    if hi < 0:
        return delta, (lo, hi), "worse"
    return delta, (lo, hi), "inconclusive"


def profile_fields(algo, profile):
    """Config fields of ``profile`` (``default``: none), or None if this checkout has no such profile."""
    if profile == "default":
        return {}
    try:
        from purepg.algos import conventions
        return dict(conventions.profile_values(get_algo(algo).Config, profile))
    except (ImportError, AttributeError, ValueError, KeyError):
        return None


def purepg_returns(algo, env_id, profile, seeds, steps, out, jobs):
    """Final return per seed of purepg (a resumable sweep into ``out/purepg``, then evaluation)."""
    fields = {**presets.overrides(algo, env_id), **profile_fields(algo, profile)}
    spec = {"algo": algo, "env": env_id, "seeds": list(seeds), "steps": steps,
            "cells": [{**{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}, "env": env_id}]}
    d = os.path.join(out, "purepg", f"{profile}-{algo}-{env_id}")
    summary = sweep.run_sweep(spec, out=d, jobs=jobs, plot=False, verbose=False)
    return [float(evaluate(os.path.join(d, r["run_dir"]), EVAL_EPISODES, EVAL_SEED).mean())
            if r["status"] == "done" else np.nan for r in summary["runs"]]


def sb3_returns(algo, env_id, seeds, steps, out):
    """Final return per seed of the reference library, cached in ``out/sb3``."""
    import vs_sb3                                            # needs stable-baselines3 (and sb3-contrib)

    config = presets.config(algo, env_id)
    out_dir = os.path.join(out, "sb3")
    os.makedirs(out_dir, exist_ok=True)
    R = []
    for s in seeds:
        path = os.path.join(out_dir, f"{algo}-{env_id}-s{s}-{steps}.json")
        if not os.path.exists(path):
            _, model = vs_sb3.ALGOS[algo][1](config, env_id, s, steps)
            with open(path, "w") as f:
                json.dump({"return": float(vs_sb3.sb3_eval(model, env_id).mean())}, f)
        with open(path) as f:
            R.append(json.load(f)["return"])
    return R


def cell(algo, env_id, profile, args):
    """One row of the report, or None when the profile is missing from this checkout."""
    if profile_fields(algo, profile) is None:
        print(f"{algo} {env_id} profile {profile}: not in this checkout (purepg.algos.conventions); skipped")
        return None
    steps = args.steps or presets.budget(algo, env_id)
    A = np.array(purepg_returns(algo, env_id, profile, args.seeds, steps, args.out, args.jobs))
    C = np.array(sb3_returns(algo, env_id, args.seeds, steps, args.out))
    A, C = A[np.isfinite(A)], C[np.isfinite(C)]
    if A.size == 0 or C.size == 0:                               # every run of a side failed: say so, go on
        print(f"{algo} {env_id} profile {profile}: no finished run on one side (purepg {A.size}, reference "
              f"{C.size}); see {os.path.join(args.out, 'purepg')}/*/results.csv for the errors", flush=True)
        return None
    delta, (lo, hi), v = verdict(A, C, MARGIN[env_id], np.random.default_rng(CI_SEED))
    return {"algo": algo, "env_id": env_id, "profile": profile, "steps": steps, "n_purepg": int(A.size),
            "n_ref": int(C.size), "purepg_mean": float(A.mean()), "ref_mean": float(C.mean()), "delta": delta,
            "ci_lo": lo, "ci_hi": hi, "margin": MARGIN[env_id], "verdict": v,
            "purepg": A.tolist(), "ref": C.tolist()}


def table(rows):
    head = ("| algorithm | env | purepg profile | steps | seeds | purepg mean | reference mean | "
            "Delta [95% CI] | margin | verdict |\n|---|---|---|---|---|---|---|---|---|---|")
    ref = {"ppo": "SB3 PPO", "trpo": "sb3-contrib TRPO"}
    return "\n".join([head] + [
        f"| {r['algo']} vs {ref[r['algo']]} | {r['env_id']} | {r['profile']} | {r['steps']} | "
        f"{r['n_purepg']} / {r['n_ref']} | {r['purepg_mean']:.1f} | {r['ref_mean']:.1f} | "
        f"{r['delta']:+.1f} [{r['ci_lo']:+.1f}, {r['ci_hi']:+.1f}] | {r['margin']:g} | **{r['verdict']}** |"
        for r in rows])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("runs", "parity"))
    p.add_argument("--seeds", default="0-9", type=parse_seeds)
    p.add_argument("--steps", type=int, default=None, help="replace every rl-zoo budget (smoke tests)")
    p.add_argument("--envs", default=",".join(ENVS))
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--profiles", default="default,sb3")
    p.add_argument("--jobs", type=int, default=None, help="purepg worker processes [default: CPUs]")
    args = p.parse_args()
    print(f"machine: {machine_info.summary()}\ncommand: {machine_info.command()}", flush=True)
    rows = [r for a in args.algos.split(",") for e in args.envs.split(",") for pr in args.profiles.split(",")
            if (r := cell(a, e, pr, args)) is not None]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump({"rows": rows, "margin": MARGIN, "resamples": N_RESAMPLES, "ci_seed": CI_SEED}, f, indent=2)
    print(table(rows))
    print(f"Written: {os.path.join(args.out, 'parity.json')}")


if __name__ == "__main__":
    main()
