"""A run's second thread: two independent parts of an update computed at once (``threads=2``).

Some updates have two parts that read the same batch and nothing of each other: TRPO's policy step
(conjugate gradient with Fisher-vector products, then the line search) and its critic fit (minibatch
Adam on the value network), or PPO's policy objective and value loss on one minibatch. With
``threads=2`` the run owns one long-lived worker thread (:class:`Worker`, a
``concurrent.futures.ThreadPoolExecutor`` of one thread, started once per run and shut down when the
run ends, by success, error or signal); the update hands one part to it and computes the other itself::

    pending = ctx.worker.submit(fit_value, ctx, state, flat, rng)    # the worker starts the critic fit
    step = policy_step(ctx, theta, flat, adv, x0)                    # meanwhile, this thread: the policy
    theta_v, opt_v, logs = pending.result()                          # wait for the fit

Why the results are the same bits
---------------------------------
Each part computes exactly what it computes with one thread: the same operations on the same arrays,
in the same order within the part; only the two parts overlap in time. Neither part writes an array
the other reads (each network's passes write into arrays of their own, :meth:`purepg.model.nn.MLP.workspace`),
and the random draws keep their order: the update draws what the main thread needs before it submits
(TRPO's CG start ``x_0``), the part on the worker is the only one that draws from ``rng`` while it
runs (the critic's minibatch permutations), and the main thread waits for it before the next draw.
NumPy's products and purepg's Numba kernels (``nogil=True``) release the GIL, so the two threads
compute on two cores between their Python lines. BLAS stays on one thread per calling thread (purepg
pins ``OPENBLAS_NUM_THREADS`` and the others to 1 at import): two threads use two cores, no more.

With ``threads=1`` (the default) :data:`SERIAL` runs a submitted part when its result is asked for,
where the one-thread update computed it: the order of the operations, warnings and errors is that of
the code before this module. ``tests/test_workers.py`` trains each algorithm both ways and compares
``progress.csv`` and the final parameters bit for bit.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from purepg import _check

THREADS = (1, 2)


class Deferred:
    """A part submitted to :data:`SERIAL`: computed by the first :meth:`result`, in the calling thread."""

    def __init__(self, fn, args):
        self._fn, self._args, self._done = fn, args, None

    def result(self):
        """``fn(*args)``, computed once."""
        if self._done is None:
            self._done = (self._fn(*self._args),)
        return self._done[0]


class Serial:
    """One thread: :meth:`submit` defers the part to its :meth:`Deferred.result`."""

    threads = 1

    def submit(self, fn, *args) -> Deferred:
        return Deferred(fn, args)

    def close(self):
        """Nothing to release."""


SERIAL = Serial()


class Worker:
    """Two threads: the caller and one worker thread that computes the parts submitted to it, in order."""

    threads = 2

    def __init__(self):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="purepg-worker")

    def submit(self, fn, *args):
        """Start ``fn(*args)`` on the worker; returns a ``concurrent.futures.Future`` (its ``result()``
        waits and re-raises the part's exception in the caller)."""
        return self._pool.submit(fn, *args)

    def close(self):
        """Wait for the part running, drop those not started, and end the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def check_threads(threads, name="threads"):
    """``threads`` as an int of :data:`THREADS`; anything else raises ValueError (:func:`purepg._check.fail`)."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads not in THREADS:
        _check.fail(name, "1 or 2 (threads of one run)", repr(threads),
                    "pass 1 (one core, the default) or 2 (two cores, the same results)")
    return int(threads)


@contextlib.contextmanager
def opened(threads):
    """:data:`SERIAL` (``threads=1``) or a new :class:`Worker` (``threads=2``), closed on leaving."""
    worker = SERIAL if check_threads(threads) == 1 else Worker()
    try:
        yield worker
    finally:
        worker.close()
