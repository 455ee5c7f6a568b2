r"""Several seeds of one configuration, trained in parallel processes and summarised.

Why parallel runs equal sequential ones
---------------------------------------
A run of :func:`purepg.run.runner.train` is a pure function of ``(algo, env_id, config, seed,
total_steps)``: its generators are seeded from ``seed`` alone and it shares no state with other
runs. So training seed ``s`` in a worker process writes the same ``out_root/seed-<s>`` (wall-time
columns aside) as training it alone, whatever the number of jobs and the order they finish in.
Workers are started with ``spawn`` (a fresh interpreter, no inherited locks or threads) and
single-threaded BLAS/OpenMP/Numba (``*_NUM_THREADS=1`` set in their environment before NumPy
loads), so ``jobs`` processes use ``jobs`` cores and nothing else.

Summary
-------
The *final return* of a run is its last ``ep_return_mean`` (the mean over the last 100 finished
episodes, :data:`purepg.run.runner.RETURN_WINDOW`). Over the ``K`` seeds the summary reports

    mean = (1/K) sum_k R_k,    std = sqrt((1/K) sum_k (R_k - mean)^2)    (population std, ddof = 0)

with min and max, each run's steps, episodes and training time, and the wall time of the whole
call; it is printed and written to ``out_root/summary.json``.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib
import json
import math
import multiprocessing
import os
import re
import sys
import time

import numpy as np

from purepg import __version__, _check

from purepg.run import checkpoint, runner
from purepg.run.runner import Interrupted, config_to_dict, train

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class SeedRunError(RuntimeError):
    """One or more seeds failed; the message names each with its error."""


# ----- input -----------------------------------------------------------------------------------------
def parse_seeds(text) -> list:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; items may mix (``"0-2,7"``)."""
    if not isinstance(text, str):
        raise TypeError(f"seeds: expected a string such as '0-4' or '0,2,5', got {type(text).__name__} {text!r}. "
                        f"Fix: pass a string, or a list of integers to run_seeds")
    out = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", item)
        if m is None or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"seeds: expected integers >= 0 and ranges A-B with A <= B, separated by commas "
                             f"(e.g. '0-4' or '0,2,5'), got {text!r} (item {item.strip()!r}). Fix: write it so")
        lo = int(m.group(1))
        out.extend(range(lo, int(m.group(2) or lo) + 1))
    return _check_seeds(out, text)


def _check_seeds(seeds, shown):
    if len(seeds) == 0:
        raise ValueError(f"seeds: expected at least one seed, got {shown!r}. Fix: pass e.g. '0-4'")
    for s in seeds:
        _check.integer(s, "seeds", 0, f"use seeds 0, 1, 2, ... in {shown!r}")
    dup = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if dup:
        raise ValueError(f"seeds: expected each seed once, got {dup[0]} more than once in {shown!r}. Fix: drop the "
                         f"repeat (a seed's run is deterministic, a repeat adds nothing)")
    return [int(s) for s in seeds]


def _check_args(algo, config, seeds, out_root, total_steps, jobs, force):
    """Everything that can be checked before a process starts; returns (algo module, seeds, out dirs)."""
    from purepg.algos import get_algo

    algo = get_algo(algo) if isinstance(algo, str) else algo
    if not isinstance(config, algo.Config):
        raise TypeError(f"config: expected a {algo.__name__}.Config, got {type(config).__name__}. "
                        f"Fix: build it with {algo.__name__}.Config(...)")
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else _check_seeds(list(seeds), seeds)
    _check.positive_int(jobs, "jobs", "pass the number of processes, e.g. 2")
    runner.check_total_steps(total_steps, config)
    dirs = [os.path.join(os.fspath(out_root), f"seed-{s}") for s in seeds]
    taken = [d for d in dirs if os.path.exists(d) and (not os.path.isdir(d) or os.listdir(d))]
    if taken and not force:
        raise FileExistsError(f"out_root: {', '.join(taken)} exist and are not empty; refusing to overwrite runs. "
                              f"Fix: choose another out_root, or pass force (--force)")
    return algo, seeds, dirs


# ----- running ----------------------------------------------------------------------------------------
def _train_one(module, env_id, config, seed, out_dir, total_steps, checkpoint_every, force):
    """One seed (in a worker process or in-process): import the algorithm by module name and train."""
    algo = importlib.import_module(module)
    s = train(algo, env_id, config, seed=seed, out_dir=out_dir, total_steps=total_steps,
                     checkpoint_every=checkpoint_every, force=force, verbose=False)
    row = s["last_row"]
    return {"seed": seed, "out_dir": out_dir, "ep_return_mean": float(row.get("ep_return_mean", math.nan)),
            "steps": s["steps"], "episodes": s["episodes"], "time_s": float(row.get("time_s", math.nan))}


@contextlib.contextmanager
def _single_threaded_children():
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


def _run_all(tasks, jobs, verbose):
    """``{seed: result or exception}``, running ``tasks`` (argument tuples of _train_one) on ``jobs`` processes.

    Ctrl-C reaches every worker (one process group): each running seed saves its checkpoint and
    stops (:class:`purepg.run.runner.Interrupted`), seeds not yet started are cancelled, and
    ``Interrupted`` is raised here with how to resume.
    """
    results = {}
    if jobs == 1:
        for t in tasks:
            results[t[3]] = r = _call(t)
            _announce(r, t[3], verbose)
            if isinstance(r, Interrupted):
                raise _interrupted(t[4])
        return results
    ctx = multiprocessing.get_context("spawn")
    with _single_threaded_children(), cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_train_one, *t): t for t in tasks}
        try:
            for f in cf.as_completed(futures):
                s = futures[f][3]
                results[s] = f.exception() or f.result()
                _announce(results[s], s, verbose)
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            started = [t[4] for f, t in futures.items() if not f.cancelled()]
            raise _interrupted(*started) from None
    return results


def _interrupted(*dirs):
    return Interrupted(f"interrupted; the started seeds saved their checkpoints. Resume each with: "
                       f"{'; '.join(f'purepg resume {d}' for d in dirs)}")


def _call(task):
    try:
        return _train_one(*task)
    except Exception as e:          # reported with the seed by run_seeds, as a worker's would be
        return e


def _announce(result, seed, verbose):
    if not verbose:
        return
    if isinstance(result, BaseException):
        print(f"seed {seed}: failed ({type(result).__name__})", file=sys.stderr, flush=True)
    else:
        print(f"seed {seed}: ep_return_mean {result['ep_return_mean']:.2f} after {result['steps']} steps "
              f"({result['time_s']:.1f} s)", file=sys.stderr, flush=True)


def run_seeds(algo, env_id, config, seeds, *, out_root, total_steps, jobs=1, checkpoint_every=10, force=False,
              verbose=True) -> dict:
    """Train ``algo`` on ``env_id`` with ``config`` for each seed, ``jobs`` at a time, into ``out_root/seed-<s>``.

    Parameters
    ----------
    algo : module or str
        An algorithm module (see :mod:`purepg.run.runner`) or its name in :data:`purepg.algos.ALGOS`.
    env_id : str
    config : the algorithm's ``Config``
    seeds : str or sequence of int
        ``"0-4"``, ``"0,2,5"`` (see :func:`parse_seeds`) or a list of distinct integers >= 0.
    out_root : path
        Parent of the run directories; ``summary.json`` is written here.
    total_steps : int
        Environment steps per seed.
    jobs : int
        Worker processes (1 = train in this process, one seed after the other).
    checkpoint_every, force : as :func:`purepg.run.runner.train`.
    verbose : bool
        Print a line per finished seed and the summary.

    Returns
    -------
    dict
        The summary (module docstring), as written to ``out_root/summary.json``.

    Raises
    ------
    SeedRunError
        A seed failed (each failure named with its error); the other seeds' run directories are kept.
    """
    algo, seeds, dirs = _check_args(algo, config, seeds, out_root, total_steps, jobs, force)
    os.makedirs(os.fspath(out_root), exist_ok=True)
    t0 = time.perf_counter()
    tasks = [(algo.__name__, env_id, config, s, d, int(total_steps), checkpoint_every, force) for s, d in zip(seeds, dirs)]
    results = _run_all(tasks, min(int(jobs), len(seeds)), verbose)
    failed = {s: r for s, r in results.items() if isinstance(r, BaseException)}
    if failed:
        raise SeedRunError("; ".join(f"seed {s} failed: {type(e).__name__}: {e}" for s, e in sorted(failed.items()))
                           + f". The other seeds' runs are in {out_root}")
    summary = _summary(algo, env_id, config, seeds, [results[s] for s in seeds], total_steps, jobs,
                       time.perf_counter() - t0)
    path = os.path.join(os.fspath(out_root), "summary.json")
    checkpoint.atomic_write_bytes(path, (json.dumps(summary, indent=2) + "\n").encode())
    if verbose:
        print(summary_line(summary, path))
    return summary


def _summary(algo, env_id, config, seeds, runs, total_steps, jobs, wall_s):
    R = np.array([r["ep_return_mean"] for r in runs])                        # (K,)
    stats = {"mean": R.mean(), "std": R.std(), "min": R.min(), "max": R.max()}
    return {"algo": algo.NAME, "env_id": env_id, "seeds": seeds, "total_steps": int(total_steps), "jobs": int(jobs),
            "ep_return_mean": {k: _finite_or_none(v) for k, v in stats.items()}, "wall_s": wall_s,
            "runs": [dict(r, ep_return_mean=_finite_or_none(r["ep_return_mean"])) for r in runs],
            "config": config_to_dict(config), "purepg_version": __version__}


def _finite_or_none(x):
    """JSON has no NaN: a run with no finished episode has final return None."""
    return float(x) if math.isfinite(x) else None


def summary_line(summary, path="summary.json") -> str:
    """One line: ``algo on env, K seeds: final return mean +- std (min, max), wall time``."""
    r = summary["ep_return_mean"]
    stat = (f"{r['mean']:.2f} +- {r['std']:.2f} (mean +- std over seeds; min {r['min']:.2f}, max {r['max']:.2f})"
            if r["mean"] is not None else "n/a (a run finished no episode)")
    K = len(summary["seeds"])
    return (f"{summary['algo']} on {summary['env_id']}, {K} seed{'s' if K > 1 else ''}: final ep_return_mean {stat}; "
            f"{summary['total_steps']} steps each, wall {summary['wall_s']:.1f} s with {summary['jobs']} jobs. "
            f"Summary: {path}")
