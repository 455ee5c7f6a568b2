"""One product in NumPy's OpenBLAS: alone, in two threads of one process at once, in two processes at once.

Run from the repository root::

    python bench/blas_threads.py                       # N = 8, 64, 256, 1024 rows of z = h @ W.T, W 64 x 64
    python bench/blas_threads.py --rows 256 --calls 5000

Why: ``--threads 2`` runs the policy's and the value network's passes of a PPO minibatch step (and
TRPO's critic fit beside its policy step) in two threads of one process, each calling NumPy's
OpenBLAS (``purepg/run/workers.py``, ``purepg/kernels/blas.py``). If two threads' products slowed each
other down, the second core would buy less than the CPU-time split promises. The script times
``numpy.matmul(h, W.T, out=z)`` at the shapes of the networks' passes, ``OPENBLAS_NUM_THREADS=1``:

* **alone**: one thread, the per-call CPU time (``time.thread_time``);
* **2 threads**: two threads of this process calling it at once (each its own arrays), per-call CPU
  time of each thread (NumPy releases the GIL around the product);
* **2 processes**: two processes at once, the same loop, per-call CPU time of each.

CPU time, not wall time: a thread that waits for a lock in the library and spins counts; one that
sleeps does not. If "2 threads" exceeds "alone" while "2 processes" does not, the two threads contend
inside the one library (its buffers and locks are per process), not for the cores or memory.
"""
import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import multiprocessing  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402  (bench/machine.py)

K = 64


def per_call_us(N, calls, seed=0):
    """CPU microseconds per ``numpy.matmul(h, W.T, out=z)`` for ``h`` (N, 64), ``W`` (64, 64), this thread."""
    rng = np.random.default_rng(seed)
    h, W, z = rng.standard_normal((N, K)), rng.standard_normal((K, K)), np.empty((N, K))
    for _ in range(min(calls, 50)):
        np.matmul(h, W.T, out=z)
    t = time.thread_time()
    for _ in range(calls):
        np.matmul(h, W.T, out=z)
    return (time.thread_time() - t) / calls * 1e6


def two_threads(N, calls):
    out = [None, None]

    def run(i):
        out[i] = per_call_us(N, calls, seed=i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _child(N, calls, seed, queue):
    queue.put(per_call_us(N, calls, seed))


def two_processes(N, calls):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(N, calls, i, queue)) for i in range(2)]
    for p in procs:
        p.start()
    got = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return got


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", default="8,64,256,1024", help="comma-separated N [default: 8,64,256,1024]")
    p.add_argument("--calls", type=int, default=0, help="calls per timing [default: ~0.3 s of work per N]")
    args = p.parse_args(argv)
    print(f"machine: {machine.summary()}\ncommand: python bench/blas_threads.py {' '.join(argv or sys.argv[1:])}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| N | alone | 2 threads (each) | 2 threads / alone | 2 processes (each) | 2 processes / alone |")
    print("|---|---|---|---|---|---|")
    for N in (int(s) for s in args.rows.split(",")):
        calls = args.calls or max(200, int(3e8 / (2 * N * K * K)))
        alone = per_call_us(N, calls)
        th, pr = two_threads(N, calls), two_processes(N, calls)
        print(f"| {N} | {alone:.1f} us | {th[0]:.1f} / {th[1]:.1f} us | {max(th) / alone:.2f} "
              f"| {pr[0]:.1f} / {pr[1]:.1f} us | {max(pr) / alone:.2f} |", flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
