"""purepg TRPO next to sb3-contrib TRPO, iteration by iteration, over many seeds: where do they differ?

Run from the repository root, next to stable-baselines3, sb3-contrib and torch (see bench/vs_sb3.py)::

    python bench/trpo_diagnostics.py --seeds 0-19 --out runs/trpo-diag                 # CartPole-v1, 1e5 steps
    python bench/trpo_diagnostics.py --seeds 0-19 --profile default --out runs/trpo-diag

Both libraries train rl-zoo's CartPole-v1 TRPO (``bench/presets.py``; purepg with the ``sb3`` profile of
:mod:`purepg.algos.conventions` unless ``--profile default``) and each run's per-iteration log is kept:
purepg's ``progress.csv`` (``OUT/ENV/purepg-PROFILE/seed-S``) and sb3-contrib's logger CSV
(``OUT/ENV/sb3/seed-S/progress.csv``; ``OUT/ENV/sb3-float64`` with ``--sb3-float64``, sb3-contrib's
networks and rollout buffer cast to float64 as in :mod:`purepg.verify.conformance_sb3`). Finished runs
are reused, so the script resumes. Printed, per library, averaged over the seeds in each quarter of
the training:

* ``return``: the mean return of the last 100 training episodes (sb3-contrib's ``rollout/ep_rew_mean``;
  for purepg the same window rebuilt from its per-iteration episode counts and means);
* ``accepted``: the fraction of iterations whose line search accepted a step;
* ``kl``: the mean KL of the accepted steps (sb3-contrib logs 0 for a rejected one; both are dropped);
* ``ev``: the explained variance of the critic on the batch before its fit.

and the final evaluation of every seed (20 deterministic episodes, reset seeds 10000..10019). If the
returns differ while ``accepted``, ``kl`` and ``ev`` agree, the update steps behave alike and the gap is
in what the steps are applied to; a difference in ``accepted`` or ``kl`` points at the line search, one
in ``ev`` at the critic.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy / numba / torch are imported

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as machine_info  # noqa: E402  (bench/machine.py)
import parity  # noqa: E402  (bench/parity.py: profiles, evaluation constants)
import presets  # noqa: E402  (bench/presets.py)

from purepg.algos import get_algo  # noqa: E402
from purepg.cli.commands import evaluate  # noqa: E402
from purepg.run import runner  # noqa: E402
from purepg.run.spec import parse_seeds  # noqa: E402

QUARTERS = 4


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _floats(rows, key):
    return np.array([float(r[key]) if r.get(key, "") != "" else np.nan for r in rows])


def last_100_means(episodes, means):
    """Mean return of the last 100 episodes after each iteration, from per-iteration counts and means."""
    counts, sums, out = [], [], []
    for n, m in zip(episodes, means):
        if n > 0:
            counts.append(n)
            sums.append(n * m)
        k, total, need = len(counts) - 1, 0.0, 100.0
        while k >= 0 and need > 0:                 # whole iterations, the oldest one partly
            take = min(counts[k], need)
            total, need, k = total + sums[k] / counts[k] * take, need - take, k - 1
        out.append(total / (100.0 - need) if need < 100 else np.nan)
    return np.array(out)


def purepg_run(config, env_id, seed, steps, out):
    """``{return, accepted, kl, ev}`` per iteration and the final evaluation of one purepg run."""
    d = os.path.join(out, f"seed-{seed}")
    if not os.path.exists(os.path.join(d, "eval.json")):
        runner.train(get_algo("trpo"), env_id, config, seed=seed, out_dir=d, total_steps=steps, force=True, verbose=False)
        with open(os.path.join(d, "eval.json"), "w") as f:
            json.dump(float(evaluate(d, parity.EVAL_EPISODES, parity.EVAL_SEED).mean()), f)
    rows = _rows(os.path.join(d, "progress.csv"))
    acc = _floats(rows, "accepted")
    with open(os.path.join(d, "eval.json")) as f:
        final = json.load(f)
    return {"return": last_100_means(_floats(rows, "episodes"), _floats(rows, "ep_return_mean")),
            "accepted": acc, "kl": np.where(acc > 0, _floats(rows, "kl"), np.nan),
            "ev": _floats(rows, "explained_variance")}, final


def sb3_run(config, env_id, seed, steps, out, float64=False):
    """The same for sb3-contrib's TRPO (its logger's CSV), in float32 or (``float64``) float64."""
    import vs_sb3                                            # needs stable-baselines3, sb3-contrib, torch

    d = os.path.join(out, "sb3-float64" if float64 else "sb3", f"seed-{seed}")
    if not os.path.exists(os.path.join(d, "eval.json")):
        _, model = vs_sb3.sb3_trpo(config, env_id, seed, steps, log_dir=d, float64=float64)
        with open(os.path.join(d, "eval.json"), "w") as f:
            json.dump(float(vs_sb3.sb3_eval(model, env_id).mean()), f)
    rows = _rows(os.path.join(d, "progress.csv"))
    train = rows[1:]        # sb3 writes a row after each rollout, before that iteration's update: row i+1
    acc = _floats(train, "train/is_line_search_success")   # holds update i (the last update is never written)
    with open(os.path.join(d, "eval.json")) as f:
        final = json.load(f)
    return {"return": _floats(rows, "rollout/ep_rew_mean"), "accepted": acc,
            "kl": np.where(acc > 0, _floats(train, "train/kl_divergence_loss"), np.nan),
            "ev": _floats(train, "train/explained_variance")}, final


def quarters(runs, key):
    """Mean of ``key`` over the seeds and the iterations of each quarter of the training."""
    n = min(len(r[key]) for r in runs)
    X = np.array([r[key][:n] for r in runs])                  # (seeds, iterations)
    return [float(np.nanmean(X[:, q * n // QUARTERS:(q + 1) * n // QUARTERS])) for q in range(QUARTERS)]


def report(name, runs, finals):
    solved = sum(f >= 475 for f in finals)
    print(f"\n{name}: final evaluation mean {np.mean(finals):.1f}, solved (>= 475) {solved}/{len(finals)}")
    print("  per seed: " + ", ".join(f"{f:.0f}" for f in finals))
    for key, fmt in (("return", "{:7.1f}"), ("accepted", "{:7.3f}"), ("kl", "{:7.4f}"), ("ev", "{:7.3f}")):
        print(f"  {key:>8} by quarter: " + " ".join(fmt.format(v) for v in quarters(runs, key)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("runs", "trpo-diag"))
    p.add_argument("--seeds", default="0-9", type=parse_seeds)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--steps", type=int, default=None, help="replace the rl-zoo budget")
    p.add_argument("--profile", default="sb3", choices=("sb3", "default"), help="purepg's conventions")
    p.add_argument("--sb3-float64", action="store_true", help="sb3-contrib in float64 (networks and buffer)")
    args = p.parse_args()
    print(f"machine: {machine_info.summary()}\ncommand: {machine_info.command()}", flush=True)
    steps = args.steps or presets.budget("trpo", args.env)
    fields = {**presets.overrides("trpo", args.env), **parity.profile_fields("trpo", args.profile)}
    config = get_algo("trpo").Config(**fields)
    out = os.path.join(args.out, args.env)
    pg = [purepg_run(config, args.env, s, steps, os.path.join(out, f"purepg-{args.profile}")) for s in args.seeds]
    ref = [sb3_run(presets.config("trpo", args.env), args.env, s, steps, out, args.sb3_float64) for s in args.seeds]
    report(f"purepg ({args.profile} profile)", [r for r, _ in pg], [f for _, f in pg])
    report("sb3-contrib" + (" (float64)" if args.sb3_float64 else ""), [r for r, _ in ref], [f for _, f in ref])


if __name__ == "__main__":
    main()
