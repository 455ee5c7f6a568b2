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

Run directory (contract, docs/guides/runs.md): ``config.json`` (algorithm, env id and the module that registers
it, every hyperparameter, seed, total steps, purepg version, and ``run_format``: which names the directory uses, see
:mod:`purepg.run.formats`), ``progress.csv`` (one row per iteration),
``checkpoint.npz`` (algorithm state, rollout state with the observation normaliser and reward scaling,
environment state, sampler RNG state, iteration and step counts, progress.csv's header) and
``.purepg.lock``. ``config.json`` and ``checkpoint.npz`` are replaced atomically; rows are appended to
``progress.csv``, which a resume checks against the checkpoint (:mod:`purepg.run.rundir`). One process
at a time writes a run directory (:mod:`purepg.run.lock`); every file keeps the mode it was created
with. A resumed run reproduces the uninterrupted run's ``progress.csv`` byte for byte, except the
wall-time columns :data:`WALL_COLUMNS`. SIGINT and SIGTERM stop a run after saving a checkpoint
(:class:`Interrupted`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from purepg import __version__, _check, _interrupts

from purepg.env import envs, rollout
from purepg.kernels import compiling
from purepg.run import ahead, checkpoint, formats, lock, rundir, workers
from purepg.run.progress import ProgressLine
from purepg.run.rundir import RUN_FORMAT, read_config  # noqa: F401  (part of this module's interface)
from purepg.model.policy import CategoricalPolicy, GaussianPolicy
from purepg.env.rollout import NonFiniteError
from purepg.model.value import ValueFunction

WALL_COLUMNS = ("time_s", "sps")
SIGNALS = (signal.SIGINT, signal.SIGTERM)   # each saves a checkpoint and stops the run
RETURN_WINDOW = 100   # episode returns averaged in the log (the last 100 finished episodes)


class Context(NamedTuple):
    """What an algorithm needs besides its state: structure, never parameters."""

    pol: Any              # purepg.model.policy.Policy
    vf: ValueFunction
    config: Any           # the algorithm's Config
    total_steps: int
    worker: Any = workers.SERIAL   # where an update's independent parts run (purepg.run.workers)


class Interrupted(Exception):
    """Training stopped by SIGINT or SIGTERM after saving a checkpoint; ``signum`` is the signal."""

    def __init__(self, message, signum=signal.SIGINT):
        super().__init__(message)
        self.signum = int(signum)


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
            hint = f"did you mean {', '.join(close)}? " if close else ""
            _check.fail(f"config field {k!r}", f"a field of algorithm {algo}", "an unknown name",
                        f"{hint}valid fields: {', '.join(names)}")
    kinds = {f.name: f.type for f in dataclasses.fields(Config)}
    return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in kinds})


class _Run(NamedTuple):
    algo: Any
    env_id: str
    seed: int
    out_dir: str
    vec: Any
    ctx: Context
    threads: int = 1
    compiler: Any = None      # a first run's compiling process (purepg.run.ahead), or None


def _setup(algo, env_id, config, seed, out_dir, total_steps, env_module=None, threads=1):
    vec = envs.make_vec_env(env_id, config.num_envs, seed=seed, env_module=env_module)
    pol = make_policy(vec.single_observation_space, vec.single_action_space, config)
    vf = ValueFunction(pol.obs_dim, tuple(config.vf_hidden), config.activation, config.init)
    return _Run(algo, env_id, seed, out_dir, vec, Context(pol, vf, config, int(total_steps)), threads)


def check_total_steps(total_steps, config):
    """The iterations of a run of ``total_steps`` environment steps (at least one iteration's worth)."""
    per_iter = config.num_envs * config.num_steps
    _check.integer(total_steps, "total_steps", per_iter, "raise total_steps (one iteration at least)",
                   lo_is="num_envs * num_steps")
    return math.ceil(total_steps / per_iter)


# ---------------------------------------------------------------------------- the loop -----
def _check_run_args(seed, checkpoint_every, threads=1):
    workers.check_threads(threads)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}. Fix: pass e.g. --seed 0")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
            or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every: expected an integer >= 1 (iterations between checkpoints), got "
                         f"{checkpoint_every!r}. Fix: pass e.g. --checkpoint-every 10")


@contextlib.contextmanager
def _locked(run_dir):
    """Hold the run directory's lock (:mod:`purepg.run.lock`); report a stale one; delete dead temp files."""
    with lock.RunLock(run_dir) as held:
        note = lock.stale_note(held)
        if note:
            print(note, file=sys.stderr)
        checkpoint.remove_temp_files(run_dir)
        yield held


def train(algo, env_id, config, *, seed=0, out_dir, total_steps, checkpoint_every=10, force=False,
          verbose=True, env_module=None, conventions=None, threads=1):
    """Train ``algo`` on ``env_id`` and write the run directory ``out_dir``; return the summary dict.

    Refuses an existing non-empty ``out_dir`` unless ``force``, and a directory another process is
    writing (:mod:`purepg.run.lock`). ``checkpoint_every`` iterations (and at the end, and on SIGINT
    or SIGTERM) the checkpoint is replaced atomically. ``env_module`` is imported first (it registers
    ``env_id``) and recorded in ``config.json``. A run that fails before its first checkpoint removes
    what it wrote, so the same command can be run again.

    ``conventions`` is the record of :func:`purepg.algos.conventions.configure` (the profile, its values
    and the explicit fields that overrode it), kept in ``config.json`` beside the config it produced.

    ``threads`` (1 or 2) is how many cores the run uses (:mod:`purepg.run.workers`); the results are
    the same bits either way, so it is an option of the run, not a hyperparameter (not in ``config.json``).

    ``verbose`` (a command's run) also starts, where Numba's cache lacks the update's kernels, the process
    that compiles them beside the run (:mod:`purepg.run.ahead`). A run without it compiles only what it
    calls and never the fused minibatch-step kernels that later runs would take: before many such runs,
    call :func:`purepg.run.ahead.compile_now` once (``purepg seeds``, a local sweep and the benchmarks do).
    """
    n_iters = check_total_steps(total_steps, config)
    _check_run_args(seed, checkpoint_every, threads)
    out_dir = os.fspath(out_dir)
    rundir.check_new_dir(out_dir, force)
    created = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    with _locked(out_dir):
        rundir.check_new_dir(out_dir, force, locked=True)     # again, now that no other process writes here
        compiler = None
        try:
            rundir.clear_run_files(out_dir)
            run = _setup(algo, env_id, config, seed, out_dir, total_steps, env_module, threads)
            if verbose:                                       # a command's run: an empty cache compiles ahead
                compiler = ahead.start(algo, config, run.vec.single_observation_space, run.vec.single_action_space,
                                       progress=os.path.join(out_dir, "progress.csv"))
                run = run._replace(compiler=compiler)
            rng = np.random.default_rng(seed)
            state = algo.init(run.ctx, rng)
            ro = rollout.start(run.vec, normalize_obs=config.normalize_obs,
                               normalize_reward=config.normalize_reward, gamma=config.gamma)
            rundir.write_config(out_dir, _run_meta(algo, env_id, env_module, seed, total_steps, config, conventions))
            loop = {"iteration": 0, "recent_returns": np.zeros(0), "episodes": 0, "time_s": 0.0}
            return _loop(run, state, ro, rng, loop, n_iters, checkpoint_every, verbose, header=None)
        except BaseException:
            rundir.undo_new_dir(out_dir, created)
            raise
        finally:
            ahead.stop(compiler)


def _run_meta(algo, env_id, env_module, seed, total_steps, config, conventions):
    """The ``config.json`` of a new run."""
    meta = {"run_format": RUN_FORMAT, "algo": algo.NAME, "env_id": env_id, "env_module": env_module,
            "seed": int(seed), "total_steps": int(total_steps), "purepg_version": __version__,
            "config": config_to_dict(config)}
    if conventions is not None:
        meta["conventions"] = conventions
    return meta


def resume(run_dir, *, total_steps=None, checkpoint_every=10, verbose=True, threads=1):
    """Continue the run in ``run_dir`` from its checkpoint (to ``total_steps`` if given).

    ``progress.csv`` is checked against the checkpoint (:func:`purepg.run.rundir.check_progress`). A
    finished run, or a ``total_steps`` the run has already passed, is refused. ``threads`` as in :func:`train`
    (a run may be resumed with another number of threads: the same bits).
    """
    _check_run_args(0, checkpoint_every, threads)
    meta = rundir.read_config(run_dir)
    with _locked(run_dir):
        return _resume_locked(os.fspath(run_dir), meta, total_steps, checkpoint_every, verbose, threads)


def load_run(run_dir, meta, required=("algo", "rollout", "loop")):
    """``(algo, config, tree, ck)`` of a run directory: its algorithm, Config and checkpoint, checked."""
    from purepg.algos import get_algo

    algo = get_algo(meta["algo"])
    try:
        config = config_from_dict(algo.Config, meta["config"], algo=meta["algo"])
    except (ValueError, TypeError) as e:
        raise rundir.RunDirError(f"run directory {run_dir}: config.json field 'config' is invalid ({e}). "
                                 f"Fix: restore config.json from a backup") from None
    path = os.path.join(run_dir, "checkpoint.npz")
    if not os.path.exists(path):
        raise rundir.missing_checkpoint(run_dir)
    tree, ck = checkpoint.load(path, required=required)
    rundir.check_same_run(ck, meta, run_dir)
    return algo, config, tree, ck


def _resume_locked(run_dir, meta, total_steps, checkpoint_every, verbose, threads):
    algo, config, tree, ck = load_run(run_dir, meta)
    loop = dict(tree["loop"])
    loop["recent_returns"] = np.atleast_1d(np.asarray(loop["recent_returns"], dtype=np.float64))
    total = int(total_steps if total_steps is not None else meta["total_steps"])
    n_iters = check_total_steps(total, config)
    done = int(tree["rollout"]["step_count"])
    _check_not_done(run_dir, meta, total_steps, n_iters, int(loop["iteration"]), done)
    header, note = rundir.check_progress(run_dir, int(loop["iteration"]), done, ck.get("progress_header"), meta["algo"])
    if note:
        print(note, file=sys.stderr)
    run = _setup(algo, meta["env_id"], config, meta["seed"], run_dir, total, meta["env_module"], threads)
    state = formats.upgrade_state(meta["algo"], tree["algo"])
    ro = _restore_env(run, tree, ck, run_dir)
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(ck["rng_state"])
    rundir.write_config(run_dir, dict(meta, total_steps=total))     # in the current run_format
    return _loop(run, state, ro, rng, loop, n_iters, checkpoint_every, verbose, header=header)


def _check_not_done(run_dir, meta, total_steps, n_iters, it, done):
    if n_iters > it:
        return
    if total_steps is None or total_steps == meta["total_steps"]:
        raise rundir.RunDirError(
            f"run directory {run_dir}: the run is finished ({done} steps, its total_steps {meta['total_steps']}); "
            f"nothing to resume. Fix: pass --steps N with N > {done} to train it longer, or evaluate it with "
            f"purepg eval {run_dir}")
    raise rundir.RunDirError(
        f"total_steps (--steps): {total_steps} is not beyond the {done} steps the run in {run_dir} has already "
        f"done; a run is never shortened. Fix: pass --steps greater than {done}, or omit it to finish the "
        f"run's own total_steps {meta['total_steps']}")


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


def _loop(run, *args, **kwargs):
    """:func:`_iterate` with the run's worker thread (:mod:`purepg.run.workers`), ended when the loop ends."""
    with workers.opened(run.threads) as worker:
        return _iterate(run._replace(ctx=run.ctx._replace(worker=worker)), *args, **kwargs)


def _iterate(run, state, ro, rng, loop, n_iters, checkpoint_every, verbose, header):
    """Iterate to ``n_iters``; on SIGINT / SIGTERM save a checkpoint and raise :class:`Interrupted`.

    The signal handlers stay installed until the last checkpoint is on disk, so a second signal
    during that save is recorded, never lets it be cut short. A signal that arrived before, under the
    command's handler, and was caught on its way by a library (:mod:`purepg._interrupts`) stops the run
    here, before its first iteration.
    """
    _interrupts.raise_if_arrived()
    if verbose:
        compiling.announce()              # one line on stderr if this run compiles kernels (no Numba cache)
    caught = []
    old = {s: signal.signal(s, lambda signum, _: caught.append(signum)) for s in SIGNALS}
    t_start = time.perf_counter() - float(loop["time_s"])
    cfg = run.ctx.config
    line = ProgressLine(n_iters * cfg.num_envs * cfg.num_steps, ro.step_count) if verbose else None
    writer, row = checkpoint.BackgroundWriter(), {}
    try:
        while loop["iteration"] < n_iters and not caught:
            state, ro, row, header = _iteration(run, state, ro, rng, loop, t_start, header)
            writer.poll()
            if line is not None:
                line.update(row["step"], row["ep_return_mean"])
            if loop["iteration"] % checkpoint_every == 0 or loop["iteration"] == n_iters:
                writer.submit(*_checkpoint_args(run, state, ro, rng, loop, header))
        writer.close()
        if line is not None:
            line.close()
        stopped = bool(caught) and loop["iteration"] < n_iters
        if stopped:
            checkpoint.save(*_checkpoint_args(run, state, ro, rng, loop, header))
    except BaseException:
        writer.close(reraise=False)        # the last good checkpoint is complete; the first error is the one
        if line is not None:
            line.close()
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stopped:
        raise _interrupted(run, loop, ro, caught)
    run.vec.close()
    return {"algo": run.algo.NAME, "env_id": run.env_id, "seed": run.seed, "iterations": int(loop["iteration"]),
            "steps": int(ro.step_count), "episodes": int(loop["episodes"]), "last_row": row,
            "out_dir": run.out_dir}


def _interrupted(run, loop, ro, caught):
    name = signal.Signals(caught[0]).name
    more = f"; the {len(caught) - 1} later signal(s) during the save were ignored" if len(caught) > 1 else ""
    return Interrupted(f"interrupted by {name} at iteration {loop['iteration']}; checkpoint saved with "
                       f"{loop['iteration']} iterations and {int(ro.step_count)} steps{more}. Resume with: "
                       f"purepg resume {run.out_dir}", caught[0])


def _iteration(run, state, ro, rng, loop, t_start, header):
    """Collect a batch, update, log one row (``loop`` is updated in place); ``(state, ro, row, header)``."""
    ctx, it = run.ctx, int(loop["iteration"])
    progress = min(it * ctx.config.num_envs * ctx.config.num_steps / ctx.total_steps, 1.0)
    try:
        batch, ro = rollout.collect(run.vec, ctx.pol, state["theta"], ctx.config.num_steps, rng, ro)
    except NonFiniteError as e:
        raise NonFiniteError(f"iteration {it}: {e} The last good checkpoint is kept.") from None
    ahead.await_share(run.compiler, ctx)          # a first run: the update's kernels, compiled by two processes
    state, logs = run.algo.update(ctx, state, batch, rng, progress)
    _check_finite_state(state, it)
    loop["iteration"] = it + 1
    loop["episodes"] = int(loop["episodes"]) + len(batch.episode_returns)
    loop["recent_returns"] = np.concatenate([loop["recent_returns"], batch.episode_returns])[-RETURN_WINDOW:]
    loop["time_s"] = time.perf_counter() - t_start
    row = _row(loop, ro.step_count, batch, logs)
    header = rundir.append_progress(run.out_dir, row, header)
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


def _checkpoint_args(run, state, ro, rng, loop, header):
    """``(path, tree, meta)`` of the checkpoint now: a snapshot, so training may go on while it is written."""
    tree = {"algo": state, "rollout": rollout.state_to_dict(ro), "loop": loop}
    meta = {"algo": run.algo.NAME, "env_id": run.env_id, "seed": run.seed, "purepg_version": __version__,
            "rng_state": json.dumps(rng.bit_generator.state), "iteration": int(loop["iteration"]), "step": int(ro.step_count), "progress_header": header}
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
