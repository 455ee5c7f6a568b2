"""Learning benchmarks of purepg's first algorithms: final deterministic return and wall time per seed.

Run from the repository root::

    python bench/learn.py                                  # every run below, seeds 0-4
    python bench/learn.py --runs ppo-cartpole --seeds 0-4  # one run
    python bench/learn.py --runs ppo-pendulum --seeds 0,1 --steps 50000 --json out.json

Runs (``--runs``):

* ``ppo-cartpole``   PPO-clip, CartPole-v1, rl-zoo's tuned hyperparameters (``ppo.Config()``), 1e5 steps.
* ``ppokl-cartpole`` PPO adaptive-KL, CartPole-v1, the same shared hyperparameters, 1e5 steps.
* ``vpg-cartpole``   REINFORCE with reward-to-go and a learned value baseline (``reinforce.Config()``).
* ``ppo-pendulum``   PPO-clip, Pendulum-v1, rl-zoo's Pendulum-v1 hyperparameters (4 envs, n_steps 1024,
  gamma 0.9, GAE 0.95, 10 epochs, minibatch 64, lr 1e-3 and clip 0.2 constant) without gSDE, which
  purepg does not implement (a state-independent log-std instead), 1e5 steps.

For each seed: train into ``--out/RUN-sSEED`` (overwritten), then evaluate the saved policy on 20
episodes with the deterministic (mode) policy (:func:`purepg.cli.commands.evaluate`, reset seeds 10000..10019,
never used in training). Printed per seed: the evaluation mean +- std, the mean training return of the
last 100 episodes, and the wall time of training (evaluation excluded). One thread everywhere
(OMP/OPENBLAS/MKL/NUMBA threads = 1); ``--jobs 2`` runs seeds in parallel processes (wall times then
share the machine and are not comparable).
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy / numba are imported

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as machine_info  # noqa: E402  (bench/machine.py)
from purepg.cli import commands as cli  # noqa: E402
from purepg.run import runner
from purepg.algos import get_algo  # noqa: E402
from purepg.run.seeds import parse_seeds  # noqa: E402

PENDULUM = dict(num_envs=4, num_steps=1024, gamma=0.9, gae_lambda=0.95, epochs=10, minibatch_size=64,
                lr=1e-3, lr_final=1e-3, clip=0.2, clip_final=0.2, ent_coef=0.0)
RUNS = {  # name: (algo, env id, config overrides, steps)
    "ppo-cartpole": ("ppo", "CartPole-v1", {}, 100_000),
    "ppokl-cartpole": ("ppo-kl", "CartPole-v1", {}, 100_000),
    "vpg-cartpole": ("reinforce", "CartPole-v1", {}, 100_000),
    "ppo-pendulum": ("ppo", "Pendulum-v1", PENDULUM, 100_000),
}
SOLVED = {"CartPole-v1": 475.0}   # the target: evaluation >= 475 on at least 4 of 5 seeds
EVAL_EPISODES, EVAL_SEED = 20, 10_000


def machine():
    return machine_info.summary()


def one(run, seed, steps, out):
    """Train and evaluate one seed: a dict of figures."""
    name, env_id, overrides, default_steps = run
    algo = get_algo(name)
    config = algo.Config(**overrides)
    run_dir = os.path.join(out, f"{name}-{env_id}-s{seed}")
    t = time.perf_counter()
    summary = runner.train(algo, env_id, config, seed=seed, out_dir=run_dir, total_steps=steps or default_steps,
                           force=True, verbose=False)
    wall = time.perf_counter() - t
    R = cli.evaluate(run_dir, EVAL_EPISODES, EVAL_SEED, stochastic=False)
    return {"seed": seed, "eval_mean": float(R.mean()), "eval_std": float(R.std()), "wall_s": wall,
            "train_return": summary["last_row"]["ep_return_mean"], "steps": summary["steps"]}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    p.add_argument("--seeds", type=parse_seeds, default=list(range(5)), help="e.g. 0-4 or 0,2 [default: 0-4]")
    p.add_argument("--steps", type=int, default=None, help="override the step budget of every run")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes (wall times then share the CPU)")
    p.add_argument("--out", default=os.path.join("bench", "out", "learn"))
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args()
    print(f"machine: {machine()}\ncommand: python {' '.join(sys.argv)}\n")
    results = {}
    for name in args.runs:
        algo, env_id, overrides, steps = RUNS[name]
        print(f"{name}: {algo} on {env_id}, {args.steps or steps} steps, overrides {overrides or 'none'}")
        with ProcessPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(one, [RUNS[name]] * len(args.seeds), args.seeds, [args.steps] * len(args.seeds),
                                 [args.out] * len(args.seeds)))
        for r in rows:
            print(f"  seed {r['seed']}: eval {r['eval_mean']:8.2f} +- {r['eval_std']:7.2f}   "
                  f"train (last 100) {r['train_return']:8.2f}   wall {r['wall_s']:6.1f} s")
        evals = np.array([r["eval_mean"] for r in rows])
        solved = f"; seeds with eval >= {SOLVED[env_id]:g}: {(evals >= SOLVED[env_id]).sum()}/{len(rows)}" \
            if env_id in SOLVED else ""
        print(f"  mean over seeds: eval {evals.mean():.2f} (min {evals.min():.2f}), "
              f"wall {np.mean([r['wall_s'] for r in rows]):.1f} s{solved}\n")
        results[name] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "command": sys.argv, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
