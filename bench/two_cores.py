"""One run on one thread and on two (``threads=2``), side by side in one process: the time, and the same bits.

Run from the repository root::

    python bench/two_cores.py                          # PPO and TRPO on CartPole-v1, 1e5 steps, seed 0
    python bench/two_cores.py --algo trpo --seeds 0-2 --sb3  # with sb3-contrib's TRPO timed in between
    python bench/two_cores.py --parts                  # one PPO minibatch step and one TRPO update instead

For each seed the run trains with ``threads=1`` and ``threads=2`` (``purepg.run.runner.train``, from
nothing, rl-zoo's CartPole-v1 configuration of the algorithm), alternating which goes first, and the
two ``progress.csv`` files are compared without their wall-time columns: "same bits" must say yes.
"CPU path" is the CPU time of the busier thread of the two-thread run (main or worker) over the CPU
time of the one-thread run: the two-thread time to expect on a machine whose second core is free.
On a machine shared with other jobs (Linux gives each session an equal share of the CPU, however many
threads it runs) the wall-clock ratio "2 / 1" can stay near 1 while "CPU path" shows the overlap.
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
from purepg.run import ahead, runner, workers  # noqa: E402
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
    """``(wall s, process CPU s, main thread CPU s, progress rows)`` of one run from nothing (``runner.train``)."""
    d = os.path.join(out, f"{module.NAME}-s{seed}-t{threads}")
    t, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
    runner.train(module, "CartPole-v1", module.Config(), seed=seed, out_dir=d, total_steps=steps, force=True,
                 verbose=False, threads=threads)
    return (time.perf_counter() - t, time.process_time() - cpu, time.thread_time() - main,
            _rows(os.path.join(d, "progress.csv")))


def runs(args):
    sb3 = None
    if args.sb3:
        import vs_sb3                                            # bench/vs_sb3.py: SB3 and torch, one thread
        sb3 = {"ppo": vs_sb3.sb3_ppo, "trpo": vs_sb3.sb3_trpo}
    out = tempfile.mkdtemp(prefix="purepg-two-cores-")
    print(f"{'algo':5} {'seed':>4} {'1 thread s':>11} {'2 threads s':>12} {'2 / 1':>6} {'same bits':>9} "
          f"{'CPU path':>8}" + (f" {'SB3 s':>7} {'1t / SB3':>9} {'2t / SB3':>9} {'path / SB3':>10}" if sb3 else ""))
    for name in args.algo:
        module, tot = ALGOS[name], np.zeros(3)
        ahead.compile_now(module, module.Config(), "CartPole-v1")   # untimed: what a first `purepg train` caches
        for i, seed in enumerate(args.seeds):
            order = (1, 2) if i % 2 == 0 else (2, 1)             # alternate which goes first
            res = {th: timed_run(module, seed, args.steps, th, out) for th in order}
            t_sb3 = sb3[name](module.Config(), "CartPole-v1", seed, args.steps)[0] if sb3 else float("nan")
            (t1, cpu1, _, r1), (t2, cpu2, main2, r2) = res[1], res[2]
            path = max(main2, cpu2 - main2) / cpu1                # the longer thread's CPU / one thread's
            tot += (t1, t2, t_sb3)
            line = f"{name:5} {seed:>4} {t1:11.2f} {t2:12.2f} {t2 / t1:6.2f} {'yes' if r1 == r2 else 'NO':>9}"
            line += f" {path:8.2f}" + (f" {t_sb3:7.2f} {t1 / t_sb3:9.3f} {t2 / t_sb3:9.3f} {path * t1 / t_sb3:10.3f}"
                                       if sb3 else "")
            print(line, flush=True)
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
    """Per call of ``fn(ctx)``, medians over alternating blocks: wall seconds with the serial worker and
    with a Worker, and CPU seconds: the one thread's, and with the Worker the main thread's and the worker's."""
    t = {k: [] for k in ("wall1", "wall2", "cpu1", "main2", "worker2")}
    with workers.opened(2) as w:
        for _ in range(blocks):
            for th, c in ((1, ctx), (2, ctx._replace(worker=w))):
                fn(c)
                w0, c0, k0 = time.perf_counter(), time.thread_time(), w.submit(time.thread_time).result()
                for _ in range(inner):
                    fn(c)
                wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
                t[f"wall{th}"].append(wall / inner)
                t["cpu1" if th == 1 else "main2"].append(cpu / inner)
                if th == 2:
                    t["worker2"].append((w.submit(time.thread_time).result() - k0) / inner)
    return {k: float(np.median(v)) for k, v in t.items()}


def parts(args):
    """The table of ``--parts``: wall time per call, one thread and two, and the CPU time of each thread.

    ``max(main, worker) / one thread's CPU`` is the two-thread time to expect where the second core is
    free (the longer thread's work; the GIL is held for a fifth to a third of each part, so it is not the
    bound): the wall-clock ratio shows what this machine's load let the second thread have.
    """
    rows = [(f"PPO minibatch step, M = {M}", *_ppo_step(M), 200, 1e6, "us") for M in (256, 64)]
    rows.append(("TRPO update (CG, line search | critic fit)", *_trpo_update(), 5, 1e3, "ms"))
    print(f"{'part':43} {'1 thread':>9} {'2 threads':>9} {'2 / 1':>5}   CPU: {'1 thread':>8} {'main':>8} "
          f"{'worker':>8} {'max(main, worker) / 1 thread':>28}")
    for name, ctx, fn, inner, k, unit in rows:
        m = _median_pair(ctx, fn, inner, args.blocks)
        print(f"{name:43} {m['wall1'] * k:6.1f} {unit} {m['wall2'] * k:6.1f} {unit} {m['wall2'] / m['wall1']:5.2f}"
              f"        {m['cpu1'] * k:5.1f} {unit} {m['main2'] * k:5.1f} {unit} {m['worker2'] * k:5.1f} {unit}"
              f" {max(m['main2'], m['worker2']) / m['cpu1']:28.2f}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", type=lambda s: s.split(","), default=["ppo", "trpo"], help="ppo,trpo [default: both]")
    p.add_argument("--seeds", type=parse_seeds, default=[0], help="e.g. 0-2 [default: 0]")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--sb3", action="store_true", help="also time SB3 PPO / sb3-contrib TRPO (bench/vs_sb3.py)")
    p.add_argument("--parts", action="store_true", help="time one PPO minibatch step and one TRPO update instead")
    p.add_argument("--blocks", type=int, default=15, help="--parts: alternating blocks per row [default: 15]")
    args = p.parse_args()
    if args.sb3:
        import vs_sb3  # noqa: F401  (torch loaded first: the machine lines report its SIMD too)
    print(f"machine: {machine.summary()}\ncommand: {machine.command()}\nload average before: {load()}\n")
    parts(args) if args.parts else runs(args)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
