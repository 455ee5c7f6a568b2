"""Learning curves of the trust-region family: TRPO, NPG, TRPO-Lagrangian, the off-policy learner.

Run from the repository root (one thread; the runs are sequential)::

    python bench/learn_trust_region.py --algo trpo --env CartPole-v1 --seeds 5
    python bench/learn_trust_region.py --algo trpo --env Acrobot-v1 --seeds 5
    python bench/learn_trust_region.py --algo trpo --env Pendulum-v1 --seeds 5
    python bench/learn_trust_region.py --algo trpo,npg,trpo-lagrangian,offpolicy --env CartPole-v1 --seeds 5

Each (algorithm, seed) trains for ``--steps`` environment steps with the preset below (purepg's
defaults for CartPole-v1, which are rl-zoo's for TRPO; rl-zoo's Acrobot-v1 / Pendulum-v1 entries of
``hyperparams/trpo.yml`` otherwise), then the final policy is evaluated: ``--eval-episodes`` episodes of
the deterministic policy (``purepg.cli.commands.evaluate``, frozen observation statistics), reset seeds
``1000 + ...``. Written to ``--out`` (default ``bench/out``):

* ``trust_region_<env><tag>_curves.csv``: algo, seed, step, ep_return_mean (mean of the last 100
  training episodes), kl (TRPO family), ess_mean (off-policy), time_s -- one row per iteration;
* ``trust_region_<env><tag>_summary.csv``: algo, seed, eval mean / std / min, final training return, wall time;

and a Markdown table (per algorithm: eval mean over seeds, how many seeds reach the target, return at
25/50/75/100 % of the steps, wall time) is printed for bench/README.md.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from purepg.run import runner  # noqa: E402
from purepg.algos import get_algo  # noqa: E402
from purepg.cli.commands import evaluate  # noqa: E402

# rl-zoo hyperparams/trpo.yml; fields it does not set keep sb3-contrib's TRPO defaults (gae_lambda 0.95,
# cg_damping 0.1, n_critic_updates 10, batch_size 128). rl-zoo also normalises rewards on Acrobot
# (VecNormalize); purepg normalises observations only. Pendulum's use_sde (gSDE) has no purepg
# counterpart: a state-independent log-std is used.
SB3_DEFAULTS = dict(gae_lambda=0.95, damping=0.1, vf_epochs=10, vf_minibatch_size=128)
PRESETS = {
    ("trpo", "Acrobot-v1"): dict(SB3_DEFAULTS, num_steps=1024, normalize_obs=True),
    ("trpo", "Pendulum-v1"): dict(SB3_DEFAULTS, num_steps=1024, gamma=0.9, vf_epochs=15),
}
TARGETS = {"CartPole-v1": 475.0, "Acrobot-v1": -90.0, "Pendulum-v1": -250.0}


def parse_overrides(items):
    """``key=value`` pairs (values parsed as Python literals) for the Config."""
    import ast
    out = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


def run_one(name, env_id, seed, steps, overrides, eval_episodes, work):
    """Train one seed; return (progress rows, summary dict)."""
    algo = get_algo(name)
    config = algo.Config(**{**PRESETS.get((name, env_id), {}), **overrides})
    out_dir = os.path.join(work, f"{name}-{env_id}-{seed}")
    t0 = time.perf_counter()
    summary = runner.train(algo, env_id, config, seed=seed, out_dir=out_dir, total_steps=steps, verbose=False)
    wall = time.perf_counter() - t0
    R = evaluate(out_dir, episodes=eval_episodes, seed=1000)
    with open(os.path.join(out_dir, "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, {"algo": name, "seed": seed, "eval_mean": R.mean(), "eval_std": R.std(), "eval_min": R.min(),
                  "train_return": summary["last_row"]["ep_return_mean"], "wall_s": wall}


def at_fraction(rows, frac):
    """Training return (mean of the last 100 episodes) at the first iteration past ``frac`` of the steps."""
    last = float(rows[-1]["step"])
    return next(float(r["ep_return_mean"]) for r in rows if float(r["step"]) >= frac * last)


def table(env_id, results):
    """Markdown table: one line per algorithm, figures over its seeds."""
    target = TARGETS.get(env_id)
    lines = [f"| algo | eval mean (min..max over seeds) | seeds >= {target:g} | train return at 25/50/75/100 % | "
             "wall time / run |", "|---|---|---|---|---|"]
    for name, runs in results.items():
        ev = np.array([s["eval_mean"] for _, s in runs])
        curve = " / ".join(f"{np.mean([at_fraction(r, f) for r, _ in runs]):.0f}" for f in (0.25, 0.5, 0.75, 1.0))
        hit = sum(e >= target for e in ev) if target is not None else "-"
        lines.append(f"| {name} | {ev.mean():.1f} ({ev.min():.1f}..{ev.max():.1f}) | {hit} of {len(ev)} | {curve} | "
                     f"{np.mean([s['wall_s'] for _, s in runs]):.1f} s |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--algo", default="trpo", help="comma-separated algorithms (trpo, npg, trpo-lagrangian, offpolicy)")
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="Config overrides for every algo")
    ap.add_argument("--tag", default="", help="suffix of the output file names (e.g. for a --set variant)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    overrides = parse_overrides(args.set)
    results = {}
    tag = f"trust_region_{args.env}{args.tag}"
    with tempfile.TemporaryDirectory() as work:
        for name in args.algo.split(","):
            results[name] = []
            for seed in range(args.seeds):
                rows, s = run_one(name, args.env, seed, args.steps, overrides, args.eval_episodes, work)
                results[name].append((rows, s))
                print(f"{name:16s} seed {seed}: eval {s['eval_mean']:8.1f} +- {s['eval_std']:6.1f}  "
                      f"train {s['train_return']:8.1f}  {s['wall_s']:6.1f} s", flush=True)
    with open(os.path.join(args.out, f"{tag}_curves.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algo", "seed", "step", "ep_return_mean", "kl", "ess_mean", "time_s"])
        for name, runs in results.items():
            for rows, s in runs:
                for r in rows:
                    w.writerow([name, s["seed"], r["step"], r["ep_return_mean"], r.get("kl", ""),
                                r.get("ess_mean", ""), r["time_s"]])
    with open(os.path.join(args.out, f"{tag}_summary.csv"), "w", newline="") as f:
        keys = ["algo", "seed", "eval_mean", "eval_std", "eval_min", "train_return", "wall_s"]
        w = csv.DictWriter(f, keys)
        w.writeheader()
        for runs in results.values():
            w.writerows(s for _, s in runs)
    print(f"\n{args.env}, {args.steps} steps, {args.seeds} seeds, eval = {args.eval_episodes} deterministic episodes\n")
    print(table(args.env, results))


if __name__ == "__main__":
    main()
