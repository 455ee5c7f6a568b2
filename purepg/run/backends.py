"""Where the runs of a sweep execute: local worker processes, or a Ray cluster.

Both take a picklable function ``fn(task) -> result`` and a list of tasks and call
``on_result(task, result)`` in the calling process as each run ends (``result`` is the exception if
``fn`` raised). Runs are independent (a run is a pure function of its task, see
:mod:`purepg.run.seeds`), so where and in which order they execute does not change them.

* :func:`run_local` -- ``jobs`` processes started with ``spawn``, each single-threaded (BLAS,
  OpenMP and Numba threads set to 1), or the calling process itself when ``jobs == 1``.
* :func:`run_ray` -- one Ray task per run (``num_cpus=1``, or the run's ``threads``), placed by Ray
  on any node of the cluster :func:`connect_ray` joined. Ray is an optional extra (``pip install "purepg[ray]"``).
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import socket
import urllib.parse

from purepg.run.runner import Interrupted

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
RAY_HINT = 'pip install "purepg[ray]"'


class Stopped(Exception):
    """Ctrl-C stopped the backend; ``started`` lists the tasks that had started (their runs checkpointed)."""

    def __init__(self, started):
        super().__init__(f"interrupted; {len(started)} started runs saved their checkpoints")
        self.started = started


class BackendError(RuntimeError):
    """A backend that cannot be used (Ray missing, a cluster address that cannot be reached)."""


# ----- local processes -----------------------------------------------------------------------------
@contextlib.contextmanager
def single_threaded_children():
    """``*_NUM_THREADS=1`` in the environment the workers inherit; the parent's values restored after."""
    old = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: "1" for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _call(fn, task):
    try:
        return fn(task)
    except Exception as e:          # reported with its task, as a worker's would be
        return e


def run_local(fn, tasks, jobs, on_result):
    """Run ``fn`` on every task, ``jobs`` processes at a time (1: in this process, one after the other).

    Ctrl-C reaches every worker (one process group): each running task's training saves its
    checkpoint and stops, tasks not yet started are cancelled, and :class:`Stopped` is raised.
    In-process, a task that ends :class:`purepg.run.runner.Interrupted` stops the loop the same way.
    """
    if jobs == 1:
        for t in tasks:
            r = _call(fn, t)
            on_result(t, r)
            if isinstance(r, Interrupted) or (isinstance(r, dict) and r.get("status") == "interrupted"):
                raise Stopped([t])
        return
    ctx = multiprocessing.get_context("spawn")
    with single_threaded_children(), cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(fn, t): t for t in tasks}
        try:
            for f in cf.as_completed(futures):
                on_result(futures[f], f.exception() or f.result())
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            raise Stopped([t for f, t in futures.items() if not f.cancelled()]) from None


# ----- Ray -----------------------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendError(f"--backend ray: Ray is not installed; it is purepg's optional cluster extra. "
                           f"Fix: {RAY_HINT}") from None
    return ray


def _check_reachable(address, timeout=5.0):
    """Open (and close) a TCP connection to ``host:port`` or ``ray://host:port``; BackendError if it fails."""
    u = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = u.hostname, u.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise BackendError(f"--address {address!r}: expected HOST:PORT of a Ray head (e.g. 10.0.0.5:6379) or "
                           f"ray://HOST:PORT, 'auto' or 'local'. Fix: pass the address ray start --head printed")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise BackendError(f"--address {address}: cannot reach a Ray cluster there ({type(e).__name__}: {e}); "
                           f"nothing was written. Fix: start one with ray start --head on {host}, or correct "
                           f"the address") from None


def connect_ray(address=None, num_cpus=None):
    """Join the Ray cluster at ``address`` (None / ``"local"``: start a local instance; ``"auto"``: the one
    running on this machine); return the ``ray`` module. Workers get single-threaded BLAS and Numba.
    """
    ray = _import_ray()
    if address not in (None, "local", "auto"):
        _check_reachable(address)
    env = {"env_vars": {k: "1" for k in THREAD_VARS}}
    kw = dict(num_cpus=num_cpus) if address in (None, "local") else {}
    try:
        ray.init(address=None if address in (None, "local") else address, include_dashboard=False,
                 log_to_driver=False, runtime_env=env, **kw)
    except Exception as e:           # Ray raises ConnectionError, RuntimeError, ValueError ...
        raise BackendError(f"--address {address}: cannot join a Ray cluster ({type(e).__name__}: "
                           f"{' '.join(str(e).split())[:300]}); nothing was written. Fix: check the address "
                           f"and that the cluster's Ray version is {ray.__version__}") from None
    return ray


def run_ray(fn, tasks, on_result):
    """Each task as a Ray task of one CPU (two for a task with ``"threads": 2``, a run on two threads),
    wherever Ray places it; ``on_result`` as each ends.

    Ctrl-C cancels the tasks (Ray interrupts the running ones) and raises :class:`Stopped`.
    """
    ray = _import_ray()
    cpus = max((t.get("threads", 1) for t in tasks if isinstance(t, dict)), default=1)
    remote = ray.remote(num_cpus=cpus, max_retries=0)(fn)
    refs = {remote.remote(t): t for t in tasks}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as e:          # RayTaskError wraps the task's own exception
                    result = getattr(e, "cause", None) or e
                on_result(refs[ref], result)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        raise Stopped([refs[r] for r in pending]) from None


def shutdown_ray():
    import ray

    if ray.is_initialized():
        ray.shutdown()
