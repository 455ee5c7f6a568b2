"""The training loop every algorithm shares: collect a batch, update, log, checkpoint.

An algorithm is a module (see :mod:`purepg.algos`) with

* ``NAME`` -- its name on the command line;
* ``Config`` -- a frozen dataclass of hyperparameters that validates itself in ``__post_init__`` and
  has the common fields of :class:`purepg.algos.common.BaseConfig` (``num_envs``, ``num_steps``,
  ``hidden``, ``activation``, ``normalize_obs``, ``normalize_reward``, ``log_std_init`` for Gaussian
  policies, ``vf_hidden``, ``gamma``);
* ``init(ctx, rng) -> state`` -- the algorithm state, a dict of arrays / floats / ``AdamState``
  (``state["theta"]`` is the policy's parameters);
* ``update(ctx, state, batch, rng, progress) -> (state, logs)`` -- one iteration on a
  :class:`purepg.env.rollout.Batch`; ``progress`` in [0, 1] drives schedules; ``logs`` is a flat dict of
  floats for ``progress.csv``.

Run directory (contract, docs/guides/runs.md): ``config.json`` (algorithm, env id, every hyperparameter,
seed, total steps, purepg version), ``progress.csv`` (one row per iteration), ``checkpoint.npz``
(algorithm state, rollout state with the observation normaliser and reward scaling, environment state, sampler RNG
state, iteration and step counts). All three are written atomically. A resumed run reproduces the
uninterrupted run's ``progress.csv`` byte for byte, except the wall-time columns :data:`WALL_COLUMNS`.
"""
from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import io
import json
import math
import os
import signal
import sys
import time
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from purepg import __version__

from purepg.kernels import compiling
from purepg.run import checkpoint, formats

from purepg.env import envs, rollout
from purepg.model.policy import CategoricalPolicy, GaussianPolicy
from purepg.env.rollout import NonFiniteError
from purepg.model.value import ValueFunction

WALL_COLUMNS = ("time_s", "sps")
RUN_FORMAT = formats.RUN_FORMAT   # the format written; older readable ones: purepg.run.formats
RETURN_WINDOW = 100   # episode returns averaged in the log (the last 100 finished episodes)


class Context(NamedTuple):
    """What an algorithm needs besides its state: structure, never parameters."""

    pol: Any              # purepg.model.policy.Policy
    vf: ValueFunction
    config: Any           # the algorithm's Config
    total_steps: int


class Interrupted(Exception):
    """Training stopped by SIGINT after saving a checkpoint."""


# ------------------------------------------------------------------------------- set-up ----
def make_policy(obs_space, act_space, config):
    """The policy for the env's spaces: categorical for ``Discrete``, Gaussian for ``Box``."""
    if isinstance(act_space, spaces.Discrete):
        return CategoricalPolicy(obs_space.shape[0], int(act_space.n), config.hidden, config.activation,
                                 init_scheme=config.init)
    return GaussianPolicy(obs_space.shape[0], act_space.shape[0], config.hidden, config.activation,
                          log_std_init=config.log_std_init, init_scheme=config.init)


def config_to_dict(config) -> dict:
    return {f.name: _jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def config_from_dict(Config, d: dict, *, algo: str):
    """Build ``Config(**d)``; an unknown field raises ValueError naming it and the close matches."""
    import difflib

    names = [f.name for f in dataclasses.fields(Config)]
    for k in d:
        if k not in names:
            close = [formats.new_name(algo, k)] if formats.new_name(algo, k) else difflib.get_close_matches(k, names, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown config field {k!r} for algorithm {algo}.{hint} "
                             f"Valid fields: {', '.join(names)}")
    kinds = {f.name: f.type for f in dataclasses.fields(Config)}
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in kinds})


class _Run(NamedTuple):
    algo: Any
    env_id: str
    seed: int
    out_dir: str
    vec: Any
    ctx: Context


def _setup(algo, env_id, config, seed, out_dir, total_steps):
    vec = envs.make_vec_env(env_id, config.num_envs, seed=seed)
    pol = make_policy(vec.single_observation_space, vec.single_action_space, config)
    vf = ValueFunction(pol.obs_dim, tuple(config.vf_hidden), config.activation, config.init)
    return _Run(algo, env_id, seed, out_dir, vec, Context(pol, vf, config, int(total_steps)))


def _check_total_steps(total_steps, config):
    per_iter = config.num_envs * config.num_steps
    if isinstance(total_steps, bool) or not isinstance(total_steps, (int, np.integer)) or total_steps < per_iter:
        raise ValueError(f"total_steps: expected an integer >= num_envs * num_steps = {per_iter} (one iteration), "
                         f"got {total_steps!r}")
    return math.ceil(total_steps / per_iter)


# ---------------------------------------------------------------------------- the loop -----
def train(algo, env_id, config, *, seed=0, out_dir, total_steps, checkpoint_every=10, force=False,
          verbose=True, conventions=None):
    """Train ``algo`` on ``env_id`` and write the run directory ``out_dir``; return the summary dict.

    ``conventions`` is the record of :func:`purepg.algos.conventions.configure` (the profile, its values
    and the explicit fields that overrode it), kept in ``config.json`` beside the config it produced.

    Refuses an existing non-empty ``out_dir`` unless ``force``. ``checkpoint_every`` iterations (and at
    the end, and on SIGINT) the checkpoint is replaced atomically.
    """
    n_iters = _check_total_steps(total_steps, config)
    _prepare_dir(out_dir, force)
    run = _setup(algo, env_id, config, seed, out_dir, total_steps)
    rng = np.random.default_rng(seed)
    state = algo.init(run.ctx, rng)
    ro = rollout.start(run.vec, normalize_obs=config.normalize_obs, normalize_reward=config.normalize_reward,
                       gamma=config.gamma)
    meta = {"run_format": RUN_FORMAT, "algo": algo.NAME, "env_id": env_id, "seed": int(seed), "total_steps": int(total_steps),
            "purepg_version": __version__, "config": config_to_dict(config)}
    if conventions is not None:
        meta["conventions"] = conventions
    checkpoint.atomic_write_bytes(os.path.join(out_dir, "config.json"),
                                  (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    loop = {"iteration": 0, "recent_returns": np.zeros(0), "episodes": 0, "time_s": 0.0}
    return _loop(run, state, ro, rng, loop, n_iters, checkpoint_every, verbose, header=None)


def resume(run_dir, *, total_steps=None, checkpoint_every=10, verbose=True):
    """Continue the run in ``run_dir`` from its checkpoint (to ``total_steps`` if given)."""
    from purepg.algos import get_algo

    meta = read_config(run_dir)
    algo = get_algo(meta["algo"])
    config = config_from_dict(algo.Config, meta["config"], algo=meta["algo"])
    total = int(total_steps if total_steps is not None else meta["total_steps"])
    n_iters = _check_total_steps(total, config)
    run = _setup(algo, meta["env_id"], config, meta["seed"], run_dir, total)
    tree, ck = checkpoint.load(os.path.join(run_dir, "checkpoint.npz"), required=("algo", "rollout", "loop"))
    _check_same_run(ck, meta, run_dir)
    state = formats.upgrade_state(meta["algo"], tree["algo"])
    ro = _restore_env(run, tree, ck, run_dir)
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(ck["rng_state"])
    loop = dict(tree["loop"])
    loop["recent_returns"] = np.atleast_1d(np.asarray(loop["recent_returns"], dtype=np.float64))
    header = _truncate_progress(run_dir, int(loop["iteration"]), meta["algo"])
    meta["total_steps"] = total                 # written back, in the current run_format
    checkpoint.atomic_write_bytes(os.path.join(run_dir, "config.json"),
                                  (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return _loop(run, state, ro, rng, loop, n_iters, checkpoint_every, verbose, header=header)


def _restore_env(run, tree, ck, run_dir):
    """Put the environments back where the checkpoint left them; return the rollout state.

    Environments whose state cannot be captured (see :func:`purepg.env.envs.get_env_state`, e.g. MuJoCo)
    were saved without it: they restart with fresh episodes (seeded from the run seed and the
    iteration), so the continuation is a valid run but not bit-identical to an uninterrupted one.
    """
    ro = rollout.state_from_dict(tree["rollout"])
    if "env" not in tree:
        print(f"purepg: resuming without environment state ({ck.get('env_state', 'not saved')}); episodes "
              f"in flight restart, so this run will not be bit-identical to an uninterrupted one", file=sys.stderr)
        fresh = rollout.start(run.vec, seed=run.seed + 1_000_003 * int(ck["iteration"]), normalize_obs=False)
        rscale = None if ro.rscale is None else ro.rscale._replace(ret=np.zeros_like(ro.rscale.ret))  # new episodes
        return fresh._replace(norm=ro.norm, rscale=rscale, step_count=ro.step_count)
    try:
        envs.set_env_state(run.vec, tree["env"])
    except ValueError as e:
        raise checkpoint.CheckpointError(f"checkpoint {run_dir}/checkpoint.npz: field 'env' does not match "
                                         f"this environment ({e})") from None
    return ro


def _loop(run, state, ro, rng, loop, n_iters, checkpoint_every, verbose, header):
    if verbose:
        compiling.announce()              # one line on stderr if this run compiles kernels (no Numba cache)
    interrupted = []
    old_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    t_start = time.perf_counter() - float(loop["time_s"])
    row = {}
    writer = _Writer()
    try:
        while loop["iteration"] < n_iters and not interrupted:
            state, ro, row, header = _iteration(run, state, ro, rng, loop, t_start, header, verbose)
            if loop["iteration"] % checkpoint_every == 0 or loop["iteration"] == n_iters:
                writer.submit(run, state, ro, rng, loop)
    except BaseException:
        writer.close(reraise=False)        # the last good checkpoint is complete; the first error is the one
        raise
    finally:
        signal.signal(signal.SIGINT, old_handler)
    writer.close()
    if verbose:
        print(file=sys.stderr)
    if interrupted:
        _save(run, state, ro, rng, loop)
        raise Interrupted(f"interrupted at iteration {loop['iteration']}; checkpoint saved. "
                          f"Resume with: purepg resume {run.out_dir}")
    run.vec.close()
    return {"algo": run.algo.NAME, "env_id": run.env_id, "seed": run.seed, "iterations": int(loop["iteration"]),
            "steps": int(ro.step_count), "episodes": int(loop["episodes"]), "last_row": row,
            "out_dir": run.out_dir}


def _iteration(run, state, ro, rng, loop, t_start, header, verbose):
    """Collect a batch, update, log one row (``loop`` is updated in place); ``(state, ro, row, header)``."""
    ctx, it = run.ctx, int(loop["iteration"])
    progress = min(it * ctx.config.num_envs * ctx.config.num_steps / ctx.total_steps, 1.0)
    try:
        batch, ro = rollout.collect(run.vec, ctx.pol, state["theta"], ctx.config.num_steps, rng, ro)
    except NonFiniteError as e:
        raise NonFiniteError(f"iteration {it}: {e} The last good checkpoint is kept.") from None
    state, logs = run.algo.update(ctx, state, batch, rng, progress)
    _check_finite_state(state, it)
    loop["iteration"] = it + 1
    loop["episodes"] = int(loop["episodes"]) + len(batch.episode_returns)
    loop["recent_returns"] = np.concatenate([loop["recent_returns"], batch.episode_returns])[-RETURN_WINDOW:]
    loop["time_s"] = time.perf_counter() - t_start
    row = _row(loop, ro.step_count, batch, logs)
    header = _append_progress(run.out_dir, row, header)
    if verbose:
        _progress_line(row)
    return state, ro, row, header


def _check_finite_state(state, it):
    for k, v in checkpoint.flatten(state).items():
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise NonFiniteError(f"iteration {it}: the update produced a non-finite {k}; training stopped "
                                 f"and the last good checkpoint is kept. Fix: lower the learning rate / "
                                 f"step size, or enable observation normalisation")


def _row(loop, step, batch, logs):
    rr = loop["recent_returns"]
    row = {"iteration": loop["iteration"], "step": int(step), "episodes": loop["episodes"],
           "ep_return_mean": float(rr.mean()) if rr.size else float("nan"),
           "ep_return_min": float(rr.min()) if rr.size else float("nan"),
           "ep_return_max": float(rr.max()) if rr.size else float("nan"),
           "ep_length_mean": float(batch.episode_lengths.mean()) if batch.episode_lengths.size else float("nan")}
    row.update({k: float(v) for k, v in logs.items()})
    row["time_s"] = loop["time_s"]
    row["sps"] = step / loop["time_s"] if loop["time_s"] > 0 else float("nan")
    return row


def _fmt(v):
    return repr(v) if isinstance(v, float) else str(v)


def _append_progress(out_dir, row, header):
    path = os.path.join(out_dir, "progress.csv")
    if header is None:
        header = list(row)
        with open(path, "w", newline="") as f:
            csv.writer(f).writerow(header)
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow([_fmt(row.get(k, float("nan"))) for k in header])
    return header


def _truncate_progress(run_dir, n_rows, algo):
    """Keep the header (older formats' columns renamed) and the first ``n_rows`` rows of progress.csv
    (those the checkpoint covers)."""
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    if not lines:
        return None
    old = next(csv.reader(io.StringIO(lines[0])))
    header = formats.upgrade_columns(algo, old)
    if header != old:
        buf = io.StringIO()
        csv.writer(buf).writerow(header)
        lines[0] = buf.getvalue()
    checkpoint.atomic_write_bytes(path, "".join(lines[:1 + n_rows]).encode())
    return header


def _progress_line(row):
    ret = row["ep_return_mean"]
    print(f"\riter {row['iteration']:5d}  steps {row['step']:9d}  return {ret:9.2f}  "
          f"{row['sps']:8.0f} steps/s", end="", file=sys.stderr, flush=True)


def _save(run, state, ro, rng, loop):
    checkpoint.save(*_checkpoint_args(run, state, ro, rng, loop))


def _checkpoint_args(run, state, ro, rng, loop):
    """``(path, tree, meta)`` of the checkpoint now: a snapshot, so training may go on while it is written."""
    tree = {"algo": state, "rollout": rollout.state_to_dict(ro), "loop": loop}
    meta = {"algo": run.algo.NAME, "env_id": run.env_id, "seed": run.seed, "purepg_version": __version__,
            "rng_state": json.dumps(rng.bit_generator.state), "iteration": int(loop["iteration"])}
    try:
        tree["env"] = envs.get_env_state(run.vec)
    except ValueError as e:                     # e.g. MuJoCo: resumable, but not bit-exactly
        meta["env_state"] = str(e)
    return os.path.join(run.out_dir, "checkpoint.npz"), _snapshot(tree), meta


def _snapshot(x):
    """A copy of a checkpoint tree (dicts, NamedTuples, arrays; other leaves are immutable)."""
    if isinstance(x, dict):
        return {k: _snapshot(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*map(_snapshot, x))
    return x.copy() if isinstance(x, np.ndarray) else x


class _Writer:
    """Periodic checkpoints written on a background thread, one at a time, in order.

    A checkpoint costs a few milliseconds of ``fsync`` (:func:`purepg.run.checkpoint.atomic_write_bytes`),
    which the training does not need to wait for: :meth:`submit` snapshots the state in the calling
    thread and hands the write to the thread; it first waits for the previous write, so writes never
    overlap and a failed one raises in the training loop. :meth:`close` waits for the last one.
    """

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="purepg-checkpoint")
        self.pending = None

    def submit(self, run, state, ro, rng, loop):
        self.wait()
        self.pending = self.pool.submit(checkpoint.save, *_checkpoint_args(run, state, ro, rng, loop))

    def wait(self):
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()                    # re-raises an error of the write

    def close(self, reraise=True):
        try:
            self.wait()
        except Exception:
            if reraise:
                raise
        finally:
            self.pool.shutdown(wait=True)


# --------------------------------------------------------------------------- run dirs -------
def _prepare_dir(out_dir, force):
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise FileExistsError(f"out_dir {out_dir}: exists and is not empty; refusing to overwrite a run. "
                              f"Fix: choose another directory, or pass --force")
    os.makedirs(out_dir, exist_ok=True)
    for name in ("progress.csv", "checkpoint.npz"):
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            os.unlink(p)


def read_config(run_dir) -> dict:
    """``config.json`` of a run directory, with a clear error if it is missing or malformed."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise checkpoint.CheckpointError(f"run directory {run_dir}: config.json is missing; "
                                         f"expected a directory written by purepg train") from None
    except json.JSONDecodeError as e:
        raise checkpoint.CheckpointError(f"run directory {run_dir}: config.json is corrupt ({e})") from None
    for k in ("algo", "env_id", "seed", "total_steps", "config", "purepg_version"):
        if k not in meta:
            raise checkpoint.CheckpointError(f"run directory {run_dir}: config.json has no field {k!r}")
    try:
        return formats.upgrade(meta, run_dir)
    except ValueError as e:
        raise checkpoint.CheckpointError(str(e)) from None


def _check_same_run(ck, meta, run_dir):
    for k in ("algo", "env_id", "seed"):
        if ck.get(k) != meta[k]:
            raise checkpoint.CheckpointError(f"checkpoint {run_dir}/checkpoint.npz: field {k!r} is {ck.get(k)!r} "
                                             f"but config.json says {meta[k]!r}; the files are from different runs")
