"""Wall time of a sweep against its runs trained one after another, and the sweep's own overhead per run.

Run from the repository root::

    python bench/sweep.py                          # 10 CartPole-v1 PPO seeds, 1e5 steps each (rl-zoo budget)
    python bench/sweep.py --seeds 0-9 --steps 100000 --ray

Four timings of the same runs (PPO with its defaults on CartPole-v1, one per seed):

1. *sequential*: :func:`purepg.run.runner.train` for each seed in this process, one after another
   (what a user does without a sweep).
2. *sweep, 1 job*: ``run_sweep(..., jobs=1)``, the same runs in this process through the sweep. Its
   own cost per run is its wall time less the time spent inside the runs (``run_task``, timed in the
   same call, so other load on the machine affects both alike), divided by N: planning, checks,
   files, summary, learning-curve plot.
3. *sweep, 2 jobs*: ``--jobs 2``, two spawned worker processes.
4. *Ray* (``--ray``): a local Ray instance with 2 CPUs, start-up included.

Wall times depend on what else runs on the machine (the load average is printed); the CPU seconds
of the sequential runs and of the 2-job sweep (parent and worker processes) do not, and half the
latter is what the 2-job sweep would take on two idle cores.

Every sweep writes into a fresh temporary directory. One thread everywhere.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy / numba are imported

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as machine_info  # noqa: E402  (bench/machine.py)

from purepg.algos import get_algo  # noqa: E402
from purepg.run import runner, sweep  # noqa: E402
from purepg.run.spec import parse_seeds  # noqa: E402


def simd_level() -> str:
    """The widest SIMD extension NumPy found on this CPU."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as f
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_features__ as f
    return next((k for k in ("AVX512F", "AVX2", "AVX", "SSE42", "ASIMD") if f.get(k)), "baseline")


def cpu_seconds():
    """User + system CPU time of this process and of its finished children (the worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def sequential(seeds, steps, root):
    ppo = get_algo("ppo")
    t0 = time.perf_counter()
    for s in seeds:
        runner.train(ppo, "CartPole-v1", ppo.Config(), seed=s, out_dir=os.path.join(root, f"seq-{s}"),
                     total_steps=steps, force=True, verbose=False)
    return time.perf_counter() - t0


class TimedRuns:
    """``sweep.run_task``, adding the seconds spent in it to ``self.seconds`` (in-process sweeps)."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, task):
        t = time.perf_counter()
        try:
            return sweep.run_task(task)
        finally:
            self.seconds += time.perf_counter() - t


def timed_sweep(spec, root, name, **kw):
    t0 = time.perf_counter()
    summary = sweep.run_sweep(spec, out=os.path.join(root, name), verbose=False, **kw)
    assert summary["failed"] == [], summary["failed"]
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--ray", action="store_true", help="also time a local Ray instance with 2 CPUs")
    args = ap.parse_args()
    seeds = parse_seeds(args.seeds)
    spec = {"algo": "ppo", "env": "CartPole-v1", "seeds": args.seeds, "steps": args.steps}
    print(f"machine: {machine_info.summary()}, SIMD {simd_level()}")
    print(f"command: {machine_info.command()}")
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as root:
        sequential(seeds[:1], 2048, root)                                  # JIT caches loaded, as in a session
        c0 = cpu_seconds()
        t_seq = sequential(seeds, args.steps, root)
        c_seq = cpu_seconds() - c0
        inside = TimedRuns()
        t_one = timed_sweep(spec, root, "one", jobs=1, fn=inside)
        c0 = cpu_seconds()
        t_two = timed_sweep(spec, root, "two", jobs=2)
        c_two = cpu_seconds() - c0
        t_ray = timed_sweep(spec, root, "ray", jobs=2, backend="ray") if args.ray else None
    n = len(seeds)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (other work on the machine)")
    print(f"{n} runs of PPO on CartPole-v1, {args.steps} steps each")
    print(f"sequential (runner.train one after another): {t_seq:7.1f} s")
    print(f"sweep, 1 job (in process):                   {t_one:7.1f} s   own overhead "
          f"{(t_one - inside.seconds) / n:.3f} s per run")
    print(f"sweep, --jobs 2:                             {t_two:7.1f} s   {t_two / t_seq:.2f}x sequential, "
          f"{n / t_two * 60:.1f} runs/min")
    print(f"CPU seconds: sequential {c_seq:.1f}, --jobs 2 {c_two:.1f} (parent and workers; with two idle cores "
          f"the 2-job wall time would be about {c_two / 2:.1f} s = {c_two / 2 / c_seq:.2f}x)")
    if t_ray is not None:
        print(f"sweep, --backend ray (local, 2 CPUs):        {t_ray:7.1f} s   {t_ray / t_seq:.2f}x sequential, "
              f"{n / t_ray * 60:.1f} runs/min, {t_ray / t_two:.2f}x --jobs 2")


if __name__ == "__main__":
    main()
