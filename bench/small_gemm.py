"""Small matrix products: OpenBLAS (``numpy.matmul``) against two plain Numba loops, at purepg's shapes.

Run from the repository root (one thread)::

    python bench/small_gemm.py                  # N = 2, 8, 64, 256 rows times a 64 x 64 layer

A compiled whole-network pass (the PPO minibatch step or the acting forward pass in one Numba call,
without the Python between NumPy calls) cannot call NumPy's BLAS: Numba's ``np.dot`` uses SciPy's,
which is not a runtime dependency of purepg. Such a pass would compute its products in loops. This
script measures what that costs per product, at the shapes of the passes, ``z = h @ W.T`` for ``h``
(N, 64) and ``W`` (64, 64) in PyTorch's (out, in) layout:

* ``matmul``: ``numpy.matmul(h, W.T, out=z)``, what purepg does now (OpenBLAS's kernel for the CPU);
* ``ikj``: a Numba loop over rows of ``W.T`` kept contiguous (``z[i] += h[i, k] * Wt[k]``), which LLVM
  vectorises along the output row;
* ``dot``: a Numba loop of dot products over rows of ``W`` (``z[i, j] = h[i] . W[j]``).

It prints the time per product (median of blocks, wall clock or ``PUREPG_BENCH_CLOCK=cpu``), the rate
in GFLOP/s and each loop's time over ``matmul``'s, with the machine lines of ``bench/machine.py``. The
three agree to rounding (checked before timing): the loops sum in another order than OpenBLAS.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402  (bench/machine.py)
from floor import CLOCK, best_of  # noqa: E402  (the clock and the median of blocks of bench/floor.py)


@njit(cache=True)
def ikj(h, Wt, z):
    """``z = h @ Wt`` with ``Wt`` (d_in, d_out) C-contiguous: row updates, vectorised along ``z[i]``."""
    N, K = h.shape
    M = Wt.shape[1]
    for i in range(N):
        for j in range(M):
            z[i, j] = 0.0
        for k in range(K):
            a = h[i, k]
            for j in range(M):
                z[i, j] += a * Wt[k, j]
    return z


@njit(cache=True)
def dot(h, W, z):
    """``z = h @ W.T`` with ``W`` (d_out, d_in): one dot product per entry."""
    N, K = h.shape
    M = W.shape[0]
    for i in range(N):
        for j in range(M):
            s = 0.0
            for k in range(K):
                s += h[i, k] * W[j, k]
            z[i, j] = s
    return z


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="2,8,64,256", help="comma-separated N")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--blocks", type=int, default=7)
    args = p.parse_args(argv)
    print(f"machine: {machine.summary()}\ncommand: {machine.command()}\nclock: {CLOCK.__name__}")
    rng = np.random.default_rng(0)
    d = args.width
    W = rng.standard_normal((d, d))
    Wt = np.ascontiguousarray(W.T)
    print("\n| N | matmul us | GFLOP/s | ikj us | ikj / matmul | dot us | dot / matmul |\n|---|---|---|---|---|---|---|")
    for N in (int(n) for n in args.rows.split(",")):
        h, z = rng.standard_normal((N, d)), np.empty((N, d))
        ref = h @ W.T
        for f, w in ((ikj, Wt), (dot, W)):
            np.testing.assert_allclose(f(h, w, z), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
        inner = max(10, 200_000 // (N * d))
        t = {name: best_of(fn, args.blocks, inner) for name, fn in (
            ("matmul", lambda: np.matmul(h, W.T, out=z)), ("ikj", lambda: ikj(h, Wt, z)), ("dot", lambda: dot(h, W, z)))}
        flops = 2 * N * d * d
        print(f"| {N} | {t['matmul'] * 1e6:.2f} | {flops / t['matmul'] / 1e9:.1f} | {t['ikj'] * 1e6:.2f} | "
              f"{t['ikj'] / t['matmul']:.2f} | {t['dot'] * 1e6:.2f} | {t['dot'] / t['matmul']:.2f} |")


if __name__ == "__main__":
    main()
