r"""Several seeds of one configuration, trained in parallel processes and summarised.

The single-cell case of a sweep (:mod:`purepg.run.sweep`): the seeds text of its spec
(:func:`purepg.run.spec.parse_seeds`) and its local backend (:func:`purepg.run.backends.run_local`),
with the run directories directly under ``out_root`` and the summary below.

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

import importlib
import json
import math
import os
import sys
import time

import numpy as np

from purepg import __version__

from purepg.run import ahead, backends, checkpoint
from purepg.run.backends import THREAD_VARS, single_threaded_children as _single_threaded_children  # noqa: F401
from purepg.run.runner import Interrupted, config_to_dict, train
from purepg.run.spec import check_seeds, parse_seeds  # noqa: F401  (the seeds text is a sweep's)


class SeedRunError(RuntimeError):
    """One or more seeds failed; the message names each with its error."""


# ----- input -----------------------------------------------------------------------------------------
def _check_args(algo, config, seeds, out_root, total_steps, jobs, force):
    """Everything that can be checked before a process starts; returns (algo module, seeds, out dirs)."""
    from purepg.algos import get_algo

    algo = get_algo(algo) if isinstance(algo, str) else algo
    if not isinstance(config, algo.Config):
        raise TypeError(f"config: expected a {algo.__name__}.Config, got {type(config).__name__}. "
                        f"Fix: build it with {algo.__name__}.Config(...)")
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else check_seeds(list(seeds), seeds)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs: expected an integer >= 1, got {jobs!r}. Fix: pass the number of processes, e.g. 2")
    per_iter = config.num_envs * config.num_steps
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < per_iter:
        raise ValueError(f"total_steps: expected an integer >= num_envs * num_steps = {per_iter} (one iteration), "
                         f"got {total_steps!r}. Fix: raise total_steps")
    dirs = [os.path.join(os.fspath(out_root), f"seed-{s}") for s in seeds]
    taken = [d for d in dirs if os.path.exists(d) and (not os.path.isdir(d) or os.listdir(d))]
    if taken and not force:
        raise FileExistsError(f"out_root: {', '.join(taken)} exist and are not empty; refusing to overwrite runs. "
                              f"Fix: choose another out_root, or pass force (--force)")
    return algo, seeds, dirs


# ----- running ----------------------------------------------------------------------------------------
def _train_one(module, env_id, config, seed, out_dir, total_steps, checkpoint_every, force, env_module=None):
    """One seed (in a worker process or in-process): import the algorithm by module name and train."""
    algo = importlib.import_module(module)
    s = train(algo, env_id, config, seed=seed, out_dir=out_dir, total_steps=total_steps,
              checkpoint_every=checkpoint_every, force=force, verbose=False, env_module=env_module)
    row = s["last_row"]
    return {"seed": seed, "out_dir": out_dir, "ep_return_mean": float(row.get("ep_return_mean", math.nan)),
            "steps": s["steps"], "episodes": s["episodes"], "time_s": float(row.get("time_s", math.nan))}


def _train_task(task):
    """:func:`_train_one` of an argument tuple (the function the backend calls)."""
    return _train_one(*task)


def _run_all(tasks, jobs, verbose):
    """``{seed: result or exception}``, running ``tasks`` (argument tuples of _train_one) on ``jobs`` processes.

    :func:`purepg.run.backends.run_local`, as for a sweep: Ctrl-C reaches every worker, each running
    seed saves its checkpoint and stops, seeds not yet started are cancelled, and ``Interrupted`` is
    raised here with how to resume.
    """
    results = {}

    def on_result(t, r):
        results[t[3]] = r
        _announce(r, t[3], verbose)

    try:
        backends.run_local(_train_task, tasks, jobs, on_result)
    except backends.Stopped as e:
        raise _interrupted(*(t[4] for t in e.started)) from None
    return results


def _interrupted(*dirs):
    return Interrupted(f"interrupted; the started seeds saved their checkpoints. Resume each with: "
                       f"{'; '.join(f'purepg resume {d}' for d in dirs)}")


def _announce(result, seed, verbose):
    if not verbose:
        return
    if isinstance(result, BaseException):
        print(f"seed {seed}: failed ({type(result).__name__})", file=sys.stderr, flush=True)
    else:
        print(f"seed {seed}: ep_return_mean {result['ep_return_mean']:.2f} after {result['steps']} steps "
              f"({result['time_s']:.1f} s)", file=sys.stderr, flush=True)


def run_seeds(algo, env_id, config, seeds, *, out_root, total_steps, jobs=1, checkpoint_every=10, force=False,
              verbose=True, env_module=None) -> dict:
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
    checkpoint_every, force, env_module : as :func:`purepg.run.runner.train`.
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
    tasks = [(algo.__name__, env_id, config, s, d, int(total_steps), checkpoint_every, force, env_module)
             for s, d in zip(seeds, dirs)]
    ahead.prepare(algo, config, env_id, env_module)            # the fused kernels, once, for every seed
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
