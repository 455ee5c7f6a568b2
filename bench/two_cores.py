"""One run on one thread and on two (``threads=2``), side by side in one process: the time, and the same bits.

Run from the repository root::

    python bench/two_cores.py                          # PPO and TRPO on CartPole-v1, 1e5 steps, seed 0
    python bench/two_cores.py --algo trpo --seeds 0-2 --sb3  # with sb3-contrib's TRPO timed in between
    python bench/two_cores.py --parts                  # one PPO minibatch step and one TRPO update instead

For each seed the run trains with ``threads=1`` and ``threads=2`` (``purepg.run.runner.train``, from
nothing, rl-zoo's CartPole-v1 configuration of the algorithm), alternating which goes first, and the
two ``progress.csv`` files are compared without their wall-time columns: "same bits" must say yes.
``--sb3`` also trains Stable-Baselines3's PPO or sb3-contrib's TRPO (``bench/vs_sb3.py``, one torch
thread) in the same loop and prints purepg's time over theirs for both thread counts.

``--parts`` times what the worker overlaps, alone: one PPO minibatch step (``ppo.minibatch``,
``ppo.loss_and_grad_unchecked``, ``ppo.clip_and_step``) at the minibatch sizes of the rl-zoo presets
(256: CartPole-v1, 64: Acrobot-v1 and Pendulum-v1), and one ``trpo.update`` on a 2 x 512 CartPole-v1
batch, with ``ctx.worker`` serial and a :class:`purepg.run.workers.Worker`, in alternating blocks (medians).

The load average is printed before and after: on a machine whose second core is busy with another
process the second thread has nothing to run on, and the two-thread figures say so.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import machine  # noqa: E402  (bench/machine.py)

from purepg.algos import ppo, trpo  # noqa: E402
from purepg.algos.common import Flat  # noqa: E402
from purepg.env import envs, rollout  # noqa: E402
from purepg.run import runner, workers  # noqa: E402
from purepg.run.seeds import parse_seeds  # noqa: E402

ALGOS = {"ppo": ppo, "trpo": trpo}


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def _rows(path):
    import csv
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    keep = [i for i, h in enumerate(table[0]) if h not in runner.WALL_COLUMNS]
    return [[r[i] for i in keep] for r in table]


def timed_run(module, seed, steps, threads, out):
    """``(wall seconds, progress rows)`` of one run from nothing (``runner.train``) with ``threads``."""
    d = os.path.join(out, f"{module.NAME}-s{seed}-t{threads}")
    t = time.perf_counter()
    runner.train(module, "CartPole-v1", module.Config(), seed=seed, out_dir=d, total_steps=steps, force=True,
                 verbose=False, threads=threads)
    return time.perf_counter() - t, _rows(os.path.join(d, "progress.csv"))


def runs(args):
    sb3 = None
    if args.sb3:
        import vs_sb3                                            # bench/vs_sb3.py: SB3 and torch, one thread
        sb3 = {"ppo": vs_sb3.sb3_ppo, "trpo": vs_sb3.sb3_trpo}
    out = tempfile.mkdtemp(prefix="purepg-two-cores-")
    print(f"{'algo':5} {'seed':>4} {'1 thread s':>11} {'2 threads s':>12} {'2 / 1':>6} {'same bits':>9}"
          + (f" {'SB3 s':>7} {'1t / SB3':>9} {'2t / SB3':>9}" if sb3 else ""))
    for name in args.algo:
        module, tot = ALGOS[name], np.zeros(3)
        for i, seed in enumerate(args.seeds):
            order = (1, 2) if i % 2 == 0 else (2, 1)             # alternate which goes first
            res = {th: timed_run(module, seed, args.steps, th, out) for th in order}
            t_sb3 = sb3[name](module.Config(), "CartPole-v1", seed, args.steps)[0] if sb3 else float("nan")
            (t1, r1), (t2, r2) = res[1], res[2]
            tot += (t1, t2, t_sb3)
            line = f"{name:5} {seed:>4} {t1:11.2f} {t2:12.2f} {t2 / t1:6.2f} {'yes' if r1 == r2 else 'NO':>9}"
            print(line + (f" {t_sb3:7.2f} {t1 / t_sb3:9.3f} {t2 / t_sb3:9.3f}" if sb3 else ""), flush=True)
        print(f"{name:5} {'all':>4} {tot[0]:11.2f} {tot[1]:12.2f} {tot[1] / tot[0]:6.2f}"
              + (f" {'':>9} {tot[2]:7.2f} {tot[0] / tot[2]:9.3f} {tot[1] / tot[2]:9.3f}" if sb3 else ""))


def _ppo_step(M):
    """A PPO minibatch step of ``M`` rows on rl-zoo's CartPole networks, as ``ppo.run`` takes it: f(ctx)."""
    cfg, rng = ppo.Config(), np.random.default_rng(0)
    vec = envs.make_vec_env("CartPole-v1", 1, seed=0)
    pol = runner.make_policy(vec.single_observation_space, vec.single_action_space, cfg)
    ctx = runner.Context(pol, runner.ValueFunction(4, cfg.vf_hidden, cfg.activation), cfg, 10**5)
    state = ppo.init(ctx, rng)
    obs, act = rng.standard_normal((M, 4)), rng.integers(0, 2, M)
    data = Flat(obs, act, pol.log_prob(state["theta"], obs, act), *rng.standard_normal((3, M)))
    joint, P, perm = ppo.join(state), state["theta"].size, rng.permutation(M)

    def step(c):
        s = ppo.loss_and_grad_unchecked(c, joint.x[:P], joint.x[P:], ppo.minibatch(data, perm, True), state["theta"],
                                        {"clip_range": 0.2})
        return ppo.clip_and_step(joint, s, 1e-4, cfg)
    return ctx, step


def _trpo_update():
    cfg, rng = trpo.Config(), np.random.default_rng(0)
    vec = envs.make_vec_env("CartPole-v1", cfg.num_envs, seed=0)
    pol = runner.make_policy(vec.single_observation_space, vec.single_action_space, cfg)
    ctx = runner.Context(pol, runner.ValueFunction(4, cfg.vf_hidden, cfg.activation), cfg, 10**5)
    state = trpo.init(ctx, rng)
    batch, _ = rollout.collect(vec, pol, state["theta"], cfg.num_steps, rng, rollout.start(vec))
    return ctx, lambda c: trpo.update(c, state, batch, np.random.default_rng(1), 0.1)


def _median_pair(ctx, fn, inner, blocks):
    """Median seconds per call of ``fn(ctx)`` with the serial worker and with a Worker, alternating blocks."""
    times = {1: [], 2: []}
    with workers.opened(2) as w:
        for _ in range(blocks):
            for th, c in ((1, ctx), (2, ctx._replace(worker=w))):
                fn(c)
                t = time.perf_counter()
                for _ in range(inner):
                    fn(c)
                times[th].append((time.perf_counter() - t) / inner)
    return np.median(times[1]), np.median(times[2])


def parts(args):
    rows = [(f"PPO minibatch step, M = {M}", *_ppo_step(M), 200, "us") for M in (256, 64)]
    rows.append(("TRPO update (CG, line search | critic fit)", *_trpo_update(), 5, "ms"))
    print(f"{'part':45} {'1 thread':>10} {'2 threads':>10} {'2 / 1':>6}")
    for name, ctx, fn, inner, unit in rows:
        a, b = _median_pair(ctx, fn, inner, args.blocks)
        k = 1e6 if unit == "us" else 1e3
        print(f"{name:45} {a * k:7.1f} {unit} {b * k:7.1f} {unit} {b / a:6.2f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", type=lambda s: s.split(","), default=["ppo", "trpo"], help="ppo,trpo [default: both]")
    p.add_argument("--seeds", type=parse_seeds, default=[0], help="e.g. 0-2 [default: 0]")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--sb3", action="store_true", help="also time SB3 PPO / sb3-contrib TRPO (bench/vs_sb3.py)")
    p.add_argument("--parts", action="store_true", help="time one PPO minibatch step and one TRPO update instead")
    p.add_argument("--blocks", type=int, default=15, help="--parts: alternating blocks per row [default: 15]")
    args = p.parse_args()
    print(f"machine: {machine.summary()}\ncommand: {machine.command()}\nload average before: {load()}\n")
    parts(args) if args.parts else runs(args)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
