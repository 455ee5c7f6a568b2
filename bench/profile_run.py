"""Where a whole purepg run spends its time, per function: the profile behind every "target missed".

Run from the repository root (one thread)::

    python bench/profile_run.py --algo ppo               # rl-zoo CartPole-v1 PPO, 1e5 steps, seed 0
    python bench/profile_run.py --algo trpo --top 30

The run (``purepg.run.runner.train``, from nothing: env, policy, run directory) is made twice: once
plain, for its wall time, and once under ``cProfile``. The profile's table lists the functions with the
most time of their own (``tottime``: not counting the functions they call), each as a share of the
profiled run, and sums them into groups:

* **compiled kernels**: the calls into purepg's Numba kernels (:mod:`purepg.kernels`); the matrix
  products they make in NumPy's OpenBLAS count here, since the kernels call it from inside;
* **NumPy**: NumPy's functions and ufuncs called from Python (the reference paths, small array ops);
* **environment**: gymnasium (the copies' ``step`` and ``reset``, their wrappers, the spaces' checks);
* **purepg Python**: the lines of purepg's own Python modules (the algorithm's loop, checks, logs);
* **other**: the rest (the interpreter's built-ins, the standard library, writing the run directory).

cProfile adds a fixed cost to every Python-level call, so the groups made of many small Python calls
(environment, purepg Python) are inflated against the kernels: the plain wall time is printed next to
the profiled one, and the excess is the profiler's. The machine lines name the SIMD level, NumPy's
dispatch, Numba's target and the OpenBLAS core in force (``bench/machine.py``). The run's kernels are
compiled or loaded first, untimed (``purepg.run.ahead.compile_now``, then a short run: a cold cache would
put compilation into both figures, and a cache without the fused minibatch-step kernels would profile
the step-by-step passes).
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import argparse  # noqa: E402
import cProfile  # noqa: E402
import importlib  # noqa: E402
import pkgutil  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import machine  # noqa: E402  (bench/machine.py)
from numba.core.dispatcher import Dispatcher  # noqa: E402

import purepg  # noqa: E402
import purepg.kernels  # noqa: E402
from purepg.algos import ppo, trpo  # noqa: E402
from purepg.run import ahead, runner  # noqa: E402

ALGOS = {"ppo": ppo, "trpo": trpo}
GROUPS = ("compiled kernels", "NumPy", "environment", "purepg Python", "other")


def kernel_sites():
    """``(file, first line, name)`` of every Numba kernel in :mod:`purepg.kernels`: how cProfile names a call
    into one (the Python function the dispatcher compiled)."""
    sites = set()
    for info in pkgutil.iter_modules(purepg.kernels.__path__, "purepg.kernels."):
        for obj in vars(importlib.import_module(info.name)).values():
            if isinstance(obj, Dispatcher):
                code = obj.py_func.__code__
                sites.add((code.co_filename, code.co_firstlineno, code.co_name))
    return sites


def group(site, kernels):
    """The group of :data:`GROUPS` of one ``pstats`` key ``(file, line, name)``."""
    file, _, name = site
    root = os.path.dirname(purepg.__file__)
    if site in kernels:
        return "compiled kernels"
    if file == "~":                                                # a built-in: cProfile names its type
        return "NumPy" if "numpy" in name or "ufunc" in name else "other"
    if f"{os.sep}numpy{os.sep}" in file:
        return "NumPy"
    if f"{os.sep}gymnasium{os.sep}" in file:
        return "environment"
    if file.startswith(root):
        return "purepg Python"
    return "other"


def train(algo, steps, seed, out, threads):
    """One run from nothing; returns its wall seconds."""
    t = time.perf_counter()
    runner.train(ALGOS[algo], "CartPole-v1", ALGOS[algo].Config(), seed=seed, out_dir=out, total_steps=steps,
                 force=True, verbose=False, threads=threads)
    return time.perf_counter() - t


def short_name(site):
    file, line, name = site
    if file == "~":
        return name
    root = os.path.dirname(os.path.dirname(purepg.__file__))
    for prefix in (root + os.sep, *(p + os.sep for p in sys.path if p and file.startswith(p + os.sep))):
        if file.startswith(prefix):
            file = file[len(prefix):]
            break
    return f"{file}:{line}({name})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=sorted(ALGOS), default="ppo")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, choices=(1, 2))
    p.add_argument("--top", type=int, default=20, help="functions listed [default: 20]")
    args = p.parse_args(argv)
    print(f"machine: {machine.summary()}\ncommand: python {' '.join(sys.argv)}\n")
    out = tempfile.mkdtemp(prefix="purepg-profile-")
    ahead.compile_now(ALGOS[args.algo], ALGOS[args.algo].Config(), "CartPole-v1")   # what a first `purepg train`
    train(args.algo, min(4096, args.steps), args.seed, os.path.join(out, "warm"), args.threads)   # leaves cached
    plain = train(args.algo, args.steps, args.seed, os.path.join(out, "plain"), args.threads)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    train(args.algo, args.steps, args.seed, os.path.join(out, "profiled"), args.threads)
    prof.disable()
    profiled = time.perf_counter() - t
    stats = pstats.Stats(prof).stats                      # site -> (calls, primitive calls, tottime, cumtime, callers)
    total = sum(s[2] for s in stats.values())
    kernels = kernel_sites()
    sums = dict.fromkeys(GROUPS, 0.0)
    for site, s in stats.items():
        sums[group(site, kernels)] += s[2]
    print(f"{args.algo.upper()} on CartPole-v1, {args.steps} steps, seed {args.seed}, {args.threads} thread(s): "
          f"{plain:.2f} s plain, {profiled:.2f} s under cProfile (its own time in the functions: {total:.2f} s)\n")
    print(f"{'group':18} {'s':>7} {'share':>6}")
    for g in GROUPS:
        print(f"{g:18} {sums[g]:7.2f} {100 * sums[g] / total:5.1f}%")
    print(f"\n{'s':>7} {'share':>6} {'calls':>9} {'us/call':>8}  function (own time)")
    for site, s in sorted(stats.items(), key=lambda kv: -kv[1][2])[:args.top]:
        print(f"{s[2]:7.2f} {100 * s[2] / total:5.1f}% {s[0]:9d} {1e6 * s[2] / max(s[0], 1):8.1f}  "
              f"{short_name(site)} [{group(site, kernels)}]")


if __name__ == "__main__":
    main()
