"""A sweep: every run of a spec (:mod:`purepg.run.spec`) trained into one directory, then summarised.

Sweep directory
---------------
``SWEEP/sweep.json`` (the spec), ``SWEEP/CELL/seed-S/`` (ordinary run directories, as ``purepg
train`` writes them), ``SWEEP/results.csv`` (a row per run: status, final return, steps, time,
error), ``SWEEP/summary.csv`` / ``summary.md`` (a row per cell: n, mean, std and the 95% bootstrap
interval of the final return, :mod:`purepg.run.stats`), ``SWEEP/summary.json`` (both, and the
failures) and ``SWEEP/curves.png`` (learning curves, :mod:`purepg.run.plot`, if matplotlib is there).

Resuming
--------
Running the same spec into the same directory again trains only what is missing: a run whose
checkpoint has all its iterations is *done* and skipped; one with an earlier checkpoint is
continued by :func:`purepg.run.runner.resume` (which reproduces the uninterrupted run); one without a
checkpoint is started afresh. A run directory whose ``config.json`` disagrees with the plan is an
error before anything runs. Failed runs are recorded with their error; the others go on, and a later
sweep retries them.

The *final return* of a run is the last ``ep_return_mean`` of its ``progress.csv`` (the mean of the
last 100 training episodes), as in :mod:`purepg.run.seeds`.
"""
from __future__ import annotations

import json
import math
import os
import socket
import sys
import tempfile
import time

from purepg.run import ahead, backends, checkpoint, runner, spec as specs, workers
from purepg.run.spec import SpecError

STORAGE = ("copy", "shared")


# ----- planning ------------------------------------------------------------------------------------
def read_spec(path):
    """``(spec dict, src)`` from a TOML file, or from ``SWEEP/sweep.json`` if ``path`` is a sweep directory."""
    stored = os.path.join(os.fspath(path), "sweep.json")
    if os.path.isdir(path) and os.path.isfile(stored):
        with open(stored) as f:
            return json.load(f)["spec"], stored
    if os.path.isdir(path):
        raise SpecError(f"{path}: a directory without sweep.json. Fix: pass a TOML spec file or a sweep directory")
    return specs.load(path), os.fspath(path)


def run_state(out, run):
    """``"done"``, ``"resume"`` (a checkpoint short of the end) or ``"new"``; SpecError if the directory
    holds a different run."""
    d = os.path.join(out, run.run_dir)
    if not os.path.isfile(os.path.join(d, "config.json")):
        return "new"
    meta = runner.read_config(d)
    for k, want in (("algo", run.algo), ("env_id", run.env_id), ("seed", run.seed),
                    ("total_steps", run.total_steps), ("config", run.config)):
        if meta[k] != want:
            raise SpecError(f"{d}: holds a run with another {k} ({_diff(meta[k], want)}) than the spec's. "
                            f"Fix: sweep into another directory, or remove that run")
    if not os.path.isfile(os.path.join(d, "checkpoint.npz")):
        return "new"
    _, ck = checkpoint.load(os.path.join(d, "checkpoint.npz"))
    return "done" if int(ck["iteration"]) >= specs.total_iterations(run) else "resume"


def _diff(have, want):
    if isinstance(have, dict) and isinstance(want, dict):
        k = next(k for k in {*have, *want} if have.get(k) != want.get(k))
        return f"{k}: {have.get(k)!r} there, {want.get(k)!r} here"
    return f"{have!r} there, {want!r} here"


# ----- one run (in a worker) -----------------------------------------------------------------------
def run_task(task):
    """Train or resume one run; ``{status, error, host, wall_s}`` (and ``files`` with copy storage).

    With ``task["storage"] == "copy"`` the run is made in a temporary directory of the worker from
    the files sent (none for a new run) and its files are sent back; otherwise in ``task["run_dir"]``.
    """
    if task["storage"] != "copy":
        return _train_or_resume(task, task["run_dir"])
    with tempfile.TemporaryDirectory(prefix="purepg-run-") as tmp:
        for name, data in task["files"].items():
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(data)
        result = _train_or_resume(task, tmp)
        result["files"] = _read_files(tmp)
    return result


def _train_or_resume(task, d):
    from purepg.algos import get_algo

    t0 = time.perf_counter()
    status, error = "done", ""
    try:
        if task["state"] == "resume":
            runner.resume(d, checkpoint_every=task["checkpoint_every"], verbose=False, threads=task.get("threads", 1))
        else:
            algo = get_algo(task["algo"])
            config = runner.config_from_dict(algo.Config, task["config"], algo=task["algo"])
            runner.train(algo, task["env_id"], config, seed=task["seed"], out_dir=d, total_steps=task["total_steps"],
                         checkpoint_every=task["checkpoint_every"], force=True, verbose=False,
                         threads=task.get("threads", 1))
    except runner.Interrupted:
        status = "interrupted"
    except Exception as e:                      # recorded in the summary; the sweep goes on
        status, error = "failed", f"{type(e).__name__}: {' '.join(str(e).split())}"
    return {"status": status, "error": error, "host": socket.gethostname(), "wall_s": time.perf_counter() - t0}


def _read_files(d):
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


def _task(out, run, state, storage, checkpoint_every, threads=1):
    d = os.path.join(out, run.run_dir)
    files = _read_files(d) if storage == "copy" and state == "resume" else {}
    return {"algo": run.algo, "env_id": run.env_id, "seed": run.seed, "config": run.config, "state": state,
            "total_steps": run.total_steps, "checkpoint_every": checkpoint_every, "run_dir": os.path.abspath(d),
            "storage": storage, "files": files, "key": run.run_dir, "threads": threads}


# ----- the sweep -----------------------------------------------------------------------------------
def run_sweep(spec, *, out, src="spec", jobs=None, backend="local", address=None, storage="copy",
              plot=True, verbose=True, fn=run_task, threads=1) -> dict:
    """Train every run of ``spec`` not yet done into ``out``; write and return the summary.

    Parameters
    ----------
    spec : dict
        A sweep specification (:mod:`purepg.run.spec`); ``src`` names it in messages.
    out : path
        The sweep directory (created; an existing one is resumed).
    jobs : int, optional
        Local worker processes [default: the number of CPUs, at most one per run]; 1 trains in this process.
    backend : {"local", "ray"}
    address : str, optional
        Ray cluster (``HOST:PORT``, ``ray://HOST:PORT``, ``auto``); None starts a local Ray instance.
    storage : {"copy", "shared"}
        Ray only: ``copy`` sends each run's files to its worker and back; ``shared`` lets workers write
        ``out`` directly (a path every node sees, e.g. NFS).
    plot : bool
        Draw ``out/curves.png`` (needs matplotlib).
    threads : {1, 2}
        Threads of each run (:mod:`purepg.run.workers`): 2 computes each run on two cores, with the same
        results; with ``jobs`` processes the sweep then uses ``2 jobs`` cores.

    Raises
    ------
    SpecError
        The spec, an option or an existing run directory is wrong; raised before anything is written.
    purepg.run.backends.BackendError
        Ray is missing or the cluster cannot be reached; nothing is written.
    purepg.run.runner.Interrupted
        Ctrl-C; the started runs saved their checkpoints and the same call resumes them.
    """
    from purepg.run import sweep_report

    t0 = time.perf_counter()
    out = os.fspath(out)
    jobs, storage = _check_options(jobs, backend, storage)
    threads = workers.check_threads(threads, "--threads")
    runs = specs.plan(spec, src)
    states = {r.run_dir: run_state(out, r) for r in runs}
    every = _checkpoint_every(spec, src)
    if backend == "ray":
        backends.connect_ray(address, num_cpus=jobs if address in (None, "local") else None)
    os.makedirs(out, exist_ok=True)
    checkpoint.atomic_write_bytes(os.path.join(out, "sweep.json"), (json.dumps({"spec": spec}, indent=2) + "\n").encode())
    tasks = [_task(out, r, states[r.run_dir], storage, every, threads) for r in runs if states[r.run_dir] != "done"]
    results = {}
    if backend == "local" and fn is run_task:
        _prepare(tasks)
    try:
        _execute(fn, tasks, out, backend, jobs, results, verbose)
    except backends.Stopped:
        sweep_report.summarise(out, runs, states, results, time.perf_counter() - t0, plot=False)
        raise runner.Interrupted(f"interrupted; the started runs saved their checkpoints. Resume the sweep with: "
                                 f"purepg sweep {out}") from None
    finally:
        if backend == "ray":
            backends.shutdown_ray()
    summary = sweep_report.summarise(out, runs, states, results, time.perf_counter() - t0, plot=plot)
    if verbose:
        print(sweep_report.table(summary["cells"]))
    return summary


def _prepare(tasks):
    """:func:`purepg.run.ahead.prepare` for each algorithm and environment of the runs to start (local runs
    start no compiling process of their own)."""
    from purepg.algos import get_algo

    seen = set()
    for t in tasks:
        if t["state"] != "resume" and (t["algo"], t["env_id"]) not in seen:
            seen.add((t["algo"], t["env_id"]))
            algo = get_algo(t["algo"])
            ahead.prepare(algo, runner.config_from_dict(algo.Config, t["config"], algo=t["algo"]), t["env_id"])


def _check_options(jobs, backend, storage):
    if backend not in ("local", "ray"):
        raise SpecError(f"--backend: expected local or ray, got {backend!r}")
    if storage not in STORAGE:
        raise SpecError(f"--storage: expected copy or shared, got {storage!r}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise SpecError(f"--jobs: expected an integer >= 1, got {jobs!r}. Fix: pass the number of processes, e.g. 2")
    return jobs, storage if backend == "ray" else "shared"


def _checkpoint_every(spec, src):
    k = spec.get("checkpoint_every", 10)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SpecError(f"{src}: field 'checkpoint_every': expected an integer >= 1, got {k!r}")
    return k


def _execute(fn, tasks, out, backend, jobs, results, verbose):
    """Run ``tasks``; each result (files written back first) lands in ``results[run_dir]``."""
    def on_result(task, r):
        if isinstance(r, BaseException):
            r = {"status": "failed", "error": f"{type(r).__name__}: {' '.join(str(r).split())}", "host": "", "wall_s": math.nan}
        for name, data in r.pop("files", {}).items():
            os.makedirs(os.path.join(out, task["key"]), exist_ok=True)
            checkpoint.atomic_write_bytes(os.path.join(out, task["key"], name), data)
        results[task["key"]] = r
        if verbose:
            tail = f" ({r['error']})" if r["error"] else ""
            print(f"[{len(results)}/{len(tasks)}] {task['key']}: {r['status']} in {r['wall_s']:.1f} s{tail}",
                  file=sys.stderr, flush=True)

    if not tasks:
        return
    if backend == "ray":
        backends.run_ray(fn, tasks, on_result)
    else:
        backends.run_local(fn, tasks, min(jobs or os.cpu_count() or 1, len(tasks)), on_result)
