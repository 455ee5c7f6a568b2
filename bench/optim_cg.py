"""Timing of the natural-step solvers of purepg.optim on a real policy.

Run: ``/work/venv/bin/python bench/optim_cg.py [--n 1024] [--repeat 5]``

Reports, for a CartPole-sized categorical policy:
  * matrix-free: ``natural_step`` with CG (10 iterations) on ``pol.fvp`` for a 64-64 network, N states,
    and how much of that time is spent outside the ``fvp`` calls (CG's own vector algebra);
  * explicit: ``pol.fisher`` build plus ``natural_step`` by Cholesky for a 32-32 network.
"""
import argparse
import time

import numpy as np

import purepg
from purepg.optim import natural_step


def _best(fn, repeat):
    """Best wall time of ``repeat`` calls (the least disturbed by other processes) and the last output."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _best_pair(fa, fb, repeat):
    """Best times of two functions measured interleaved, so background load hits both alike."""
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(_best(fa, 1)[0])
        tb.append(_best(fb, 1)[0])
    return min(ta), min(tb)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="number of states N")
    ap.add_argument("--repeat", type=int, default=5, help="repetitions; the best time is reported")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((args.n, 4))  # (N, 4)

    pol = purepg.CategoricalPolicy(4, 2, hidden=(64, 64))
    theta = pol.init(rng)  # (P,)
    g = rng.standard_normal(pol.num_params) * 1e-2  # (P,)
    fvp = lambda v: pol.fvp(theta, obs, v)  # noqa: E731
    fvp(g)  # JIT warm-up
    ns = natural_step(g, fvp, 0.01, damping=1e-3, cg_iters=10)
    t_step, t_fvp = _best_pair(lambda: natural_step(g, fvp, 0.01, damping=1e-3, cg_iters=10),
                               lambda: [fvp(g) for _ in range(ns.iterations + 1)], args.repeat)
    print(f"CG natural step, 64-64, P={pol.num_params}, N={args.n}: {t_step * 1e3:.2f} ms "
          f"({ns.iterations} CG steps + 1 fvp; {ns.iterations + 1} fvp alone {t_fvp * 1e3:.2f} ms, "
          f"CG overhead {max(t_step - t_fvp, 0.0) / t_step:.0%})")

    pol = purepg.CategoricalPolicy(4, 2, hidden=(32, 32))
    theta = pol.init(rng)
    g = rng.standard_normal(pol.num_params) * 1e-2
    pol.fisher(theta, obs)  # JIT warm-up
    t_F, F = _best(lambda: pol.fisher(theta, obs), args.repeat)
    t_chol, ns = _best(lambda: natural_step(g, F, 0.01, damping=1e-3), args.repeat)
    print(f"explicit Fisher, 32-32, P={pol.num_params}, N={args.n}: build {t_F * 1e3:.2f} ms, "
          f"Cholesky natural step {t_chol * 1e3:.2f} ms (ok={ns.ok})")


if __name__ == "__main__":
    main()
