"""purepg TRPO against sb3-contrib TRPO on CartPole-v1: wall time and final return, side by side, one thread.

Run with the venv that has PyTorch, Stable-Baselines3 and sb3-contrib (purepg installed editable)::

    /work/venv-sb3/bin/python bench/vs_sb3_trpo.py --seeds 5 --steps 100000

Both use rl-zoo's tuned CartPole-v1 TRPO hyperparameters (``hyperparams/trpo.yml``: 2 envs, n_steps 512,
batch_size 512, cg_damping 1e-3, gae_lambda 0.98, gamma 0.99, learning_rate 1e-3, n_critic_updates
20) and sb3-contrib's defaults for the rest (cg_max_steps 15, target_kl 0.01, line search 0.8 x 10,
advantage normalisation, MlpPolicy 64-64 tanh with orthogonal init), which are purepg's
``trpo.Config()`` defaults. Known differences: sb3 starts CG from ``1e-4 * randn`` and purepg from 0;
sb3's critic Adam has ``eps = 1e-5`` and purepg's ``1e-8``; sb3 accepts ``KL < delta``, purepg
``KL <= delta``; sb3 regresses ``(v - R)^2`` and purepg half of it (Adam is invariant to that scale).

For each seed the two libraries train in turn in this process (so both see the same machine load),
OMP/OPENBLAS/MKL/NUMBA threads = 1 and ``torch.set_num_threads(1)``; wall time covers ``learn`` /
``runner.train`` only (environment stepping included). Each final policy is evaluated on
``--eval-episodes`` deterministic episodes (reset seeds 1000, 1001, ...).
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
from purepg import runner  # noqa: E402
from purepg.algos import trpo  # noqa: E402
from purepg.cli import evaluate  # noqa: E402

RL_ZOO = dict(n_steps=512, batch_size=512, cg_damping=1e-3, gae_lambda=0.98, gamma=0.99, learning_rate=1e-3,
              n_critic_updates=20)
TARGET_RATIO = 0.25   # issue 5: purepg wall time <= 0.25 x sb3-contrib


def run_purepg(seed, steps, episodes, work):
    out = os.path.join(work, f"purepg-{seed}")
    t0 = time.perf_counter()
    runner.train(trpo, "CartPole-v1", trpo.Config(), seed=seed, out_dir=out, total_steps=steps, verbose=False)
    wall = time.perf_counter() - t0
    return wall, evaluate(out, episodes=episodes, seed=1000)


def run_sb3(seed, steps, episodes):
    import gymnasium
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env

    model = TRPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=seed), seed=seed, device="cpu", **RL_ZOO)
    t0 = time.perf_counter()
    model.learn(steps)
    wall = time.perf_counter() - t0
    env, R = gymnasium.make("CartPole-v1"), []
    for i in range(episodes):
        x, _ = env.reset(seed=1000 + i)
        total, done = 0.0, False
        while not done:
            a, _ = model.predict(x, deterministic=True)
            x, r, term, trunc, _ = env.step(int(a))
            total, done = total + r, term or trunc
        R.append(total)
    return wall, np.array(R)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--eval-episodes", type=int, default=20)
    ap.add_argument("--csv", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out",
                                                  "vs_sb3_trpo.csv"))
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):
            tp, Rp = run_purepg(seed, args.steps, args.eval_episodes, work)
            ts, Rs = run_sb3(seed, args.steps, args.eval_episodes)
            rows.append(dict(seed=seed, purepg_s=tp, sb3_s=ts, ratio=tp / ts, purepg_eval=Rp.mean(),
                             sb3_eval=Rs.mean()))
            print(f"seed {seed}: purepg {tp:6.1f} s eval {Rp.mean():6.1f} | sb3-contrib {ts:6.1f} s eval "
                  f"{Rs.mean():6.1f} | ratio {tp / ts:.3f}", flush=True)
    os.makedirs(os.path.dirname(args.csv), exist_ok=True)
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ratio = float(np.median([r["ratio"] for r in rows]))
    print(f"\nmedian wall-time ratio purepg / sb3-contrib: {ratio:.3f} (target <= {TARGET_RATIO}: "
          f"{'met' if ratio <= TARGET_RATIO else 'MISSED'})")
    for lib in ("purepg", "sb3"):
        ev = np.array([r[f"{lib}_eval"] for r in rows])
        print(f"{lib:7s} eval mean {ev.mean():6.1f}, seeds >= 475: {int(np.sum(ev >= 475))} of {ev.size}, "
              f"time {np.mean([r[f'{lib}_s'] for r in rows]):.1f} s / run")


if __name__ == "__main__":
    main()
