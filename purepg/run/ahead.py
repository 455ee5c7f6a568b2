r"""A first run compiles its update's kernels in a second process while it compiles its rollout's.

On a machine whose Numba cache is empty, a run's first iteration waits for Numba to compile every
kernel it calls: the acting pass during the rollout, then the update's (GAE, the minibatch rows, the
network passes, the losses, Adam, ...), a few seconds in all, one after the other, on one core.
Compilation is Python and holds its interpreter, so a thread would not help; a second *process* does.
When ``purepg train`` starts on a machine with two cores or more and the cache lacks the update's
kernels (:func:`cold`), :func:`start` launches a Python process (:func:`main`) with the run's algorithm,
configuration and the sizes of its observation and action spaces. That process builds the same
networks, draws a batch of the same shapes and dtypes as a rollout of the run collects
(:func:`synthetic_batch`: random observations, actions and rewards, some episodes ending) and runs the
algorithm's ``update`` on it once: every kernel the update calls is compiled and written to the cache.
The run goes on meanwhile; when its update first calls a kernel, Numba looks in the cache, and loads
what the other process has written by then (it compiles the rest itself, as without this module).
Last, once the run has written its first progress row (two compiling processes slow each other on a
machine whose cores share a physical core), it compiles the fused minibatch-step kernels of
:mod:`purepg.kernels.heads` (:func:`fused_for_later_runs`), which a first run does not call and the
runs after it do.

Nothing of the second process reaches the run but cached machine code, which is what the run would
have compiled itself: the results are the same bits. It runs in a session of its own (a Ctrl-C in the
terminal reaches the run alone), writes nothing to the terminal, and :func:`stop` ends it when the run
ends, however it ends. An error in it (an algorithm this module cannot feed, a full disk) costs only
the time it would have saved.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from purepg.kernels import adam, passes, returns


def _index_paths():
    """The cache index files of kernels every update calls (Numba writes one per function)."""
    paths = []
    for kernel in (passes._mlp_backward_numba, returns._gae_numba, adam._adam_update_numba):
        try:
            paths.append(kernel._cache._cache_file._index_path)
        except AttributeError:                   # a Numba without this layout: treat the cache as warm
            return []
    return paths


def _update_cold():
    """Whether this machine's Numba cache lacks the update's kernels (one of their index files is missing)."""
    return any(not os.path.exists(p) for p in _index_paths())


def cold(config=None):
    """Whether this machine's Numba cache lacks the update's kernels (:func:`_update_cold`), or, for a run
    of ``config`` with tanh networks where the one-call passes run, the kernels for later runs
    (:func:`purepg.kernels.heads.ready`): a first run that ended before its compiling process reached
    them leaves them to the next run's."""
    if _update_cold():
        return True
    from purepg.kernels import blas, heads
    return getattr(config, "activation", None) == "tanh" and blas.AVAILABLE and not heads.ready()


def start(algo, config, obs_space, act_space, progress=None):
    """The compiling process for a run of ``algo`` with ``config`` (a ``subprocess.Popen``), or None
    where it would not help: one core, a warm cache, or ``PUREPG_COMPILE_AHEAD=0`` in the environment.
    ``progress``: the run's ``progress.csv``; the process compiles the kernels for later runs
    (:func:`fused_for_later_runs`) once a row was added to it, so as not to slow the run's first iteration."""
    from gymnasium import spaces

    from purepg.run.runner import config_to_dict

    if (os.cpu_count() or 1) < 2 or os.environ.get("PUREPG_COMPILE_AHEAD", "1") == "0" or not cold(config):
        return None
    discrete = isinstance(act_space, spaces.Discrete)
    spec = {"algo": algo.NAME, "config": config_to_dict(config), "obs_dim": int(obs_space.shape[0]),
            "discrete": discrete, "act": int(act_space.n) if discrete else int(act_space.shape[0]),
            "progress": None if progress is None else os.fspath(progress), "progress_size": _size(progress),
            "update": _update_cold()}                                  # else only the kernels for later runs
    try:
        proc = subprocess.Popen([sys.executable, "-c", "from purepg.run import ahead; ahead.main()"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        return proc
    except OSError:
        return None


def _size(path):
    """The size of the file at ``path``, or -1 if there is none (or no path)."""
    try:
        return os.path.getsize(path) if path is not None else -1
    except OSError:
        return -1


def wait_for_a_row(path, size, timeout=600.0, poll=0.1, parent=None):
    """Wait until the file at ``path`` is no longer ``size`` bytes (the run wrote a progress row), at most
    ``timeout`` seconds; at once if ``path`` is None. Returns whether to go on: False if the process
    ``parent`` (the run) has ended meanwhile (this process was handed to another parent)."""
    deadline = time.monotonic() + timeout
    while path is not None and _size(path) == size and time.monotonic() < deadline:
        if parent is not None and os.getppid() != parent:
            return False
        time.sleep(poll)
    return parent is None or os.getppid() == parent


def stop(proc):
    """End the compiling process if it is still running (a run that ends sooner than its compilation)."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def synthetic_batch(pol, theta, config, rng):
    """A :class:`purepg.env.rollout.Batch` of ``T = config.num_steps`` steps of ``E = config.num_envs``
    copies with the shapes and dtypes a rollout gives (values random; one episode in 16 steps ends)."""
    from purepg.env.rollout import Batch

    T, E, d = config.num_steps, config.num_envs, pol.obs_dim
    obs = rng.standard_normal((T, E, d))
    act = rng.integers(0, pol.n_actions, (T, E)) if pol.discrete else rng.standard_normal((T, E, pol.act_dim))
    logp = pol.log_prob(theta, obs.reshape(T * E, d), act.reshape(T * E, *act.shape[2:])).reshape(T, E)
    ends = rng.random((T, E)) < 1 / 16
    return Batch(obs=obs, act=act, rew=rng.standard_normal((T, E)), terminated=ends, truncated=np.zeros((T, E), bool),
                 final_obs=rng.standard_normal((T, E, d)), next_obs_last=rng.standard_normal((E, d)), logp_old=logp,
                 obs_raw=obs.copy() if config.normalize_obs else None,
                 episode_returns=np.ones(int(ends.sum())), episode_lengths=np.ones(int(ends.sum()), dtype=np.int64),
                 rew_raw=rng.standard_normal((T, E)) if config.normalize_reward else None)


def compile_update(spec, parent=None):
    """Run the algorithm's update once on a :func:`synthetic_batch` for the run described by ``spec`` (unless
    ``spec["update"]`` is False: its kernels are cached), then (after its first progress row, while the
    run ``parent`` lives) compile the kernels for later runs."""
    from gymnasium import spaces

    from purepg.algos import get_algo
    from purepg.model.value import ValueFunction
    from purepg.run.runner import Context, config_from_dict, make_policy

    algo = get_algo(spec["algo"])
    config = config_from_dict(algo.Config, spec["config"], algo=spec["algo"])
    obs_space = spaces.Box(-np.inf, np.inf, (spec["obs_dim"],), np.float64)
    act_space = spaces.Discrete(spec["act"]) if spec["discrete"] else spaces.Box(-1.0, 1.0, (spec["act"],))
    pol = make_policy(obs_space, act_space, config)
    vf = ValueFunction(pol.obs_dim, tuple(config.vf_hidden), config.activation, config.init)
    ctx = Context(pol, vf, config, 100 * config.num_envs * config.num_steps)
    rng = np.random.default_rng(0)
    state = algo.init(ctx, rng)
    batch = synthetic_batch(pol, state["theta"], config, rng)
    if spec.get("update", True):
        _late_kernels_first(pol, vf, config, batch, rng)
        algo.update(ctx, state, batch, rng, 0.0)
    if wait_for_a_row(spec.get("progress"), spec.get("progress_size", -1), parent=parent):   # the run's first
        fused_for_later_runs(pol, vf, batch, rng)                                            # iteration, undisturbed


def _late_kernels_first(pol, vf, config, batch, rng):
    """Compile first what an update calls last (the run compiles its update from the start meanwhile):
    the networks' backward passes, Adam, and a PPO minibatch's rows, on arrays like the update's."""
    from purepg.kernels import adam_update, minibatch_rows

    N = batch.obs.shape[0] * batch.obs.shape[1]
    obs = batch.obs.reshape(N, -1)
    if hasattr(config, "minibatch_size") and hasattr(config, "advantage_norm"):
        cols = (obs, batch.act.reshape(N, *batch.act.shape[2:]), *rng.standard_normal((4, N)))
        minibatch_rows(rng.permutation(N), cols, config.advantage_norm)
    for net, theta in ((pol.net, pol.init(rng)[:pol.net.num_params]), (vf.net, vf.init(rng))):
        ws = net.workspace(N)
        out, cache = net.forward_into(ws, theta, obs)
        dout = rng.standard_normal(N)[:, None] if out.shape[1] == 1 else rng.standard_normal(out.shape)
        net.backward_into(ws, theta, dout, cache)
        adam_update(theta, np.ones_like(theta), np.zeros_like(theta), np.zeros_like(theta), 1, 1e-3, 0.9, 0.999, 1e-8)


def fused_for_later_runs(pol, vf, batch, rng):
    """Compile :mod:`purepg.kernels.heads` (a minibatch step's value and policy terms in one call each) and
    Adam's step with the clip's norm inside, which a first run does not call
    (:func:`purepg.kernels.heads.ready`) and the runs after it do: all four, for networks of the run's
    depth (a Gaussian policy's run compiles the categorical ones on a categorical policy of its layers,
    so that ``ready`` holds after it)."""
    from purepg import kernels
    from purepg.kernels import heads
    from purepg.model.policy import CategoricalPolicy

    N = batch.obs.shape[0] * batch.obs.shape[1]
    obs = batch.obs.reshape(N, -1)
    cat = pol if pol.discrete else CategoricalPolicy(pol.obs_dim, 2, pol.net.sizes[1:-1], pol.net.activation)
    theta_v, theta = vf.init(rng), cat.init(rng)[:cat.net.num_params]
    if vf.net._one_call(N, theta_v, obs):
        ws = vf.net.workspace(N)
        heads.half_mse_and_grad(theta_v, vf.net._layout_array, (obs, *ws.h), rng.standard_normal(N), ws.dz,
                                np.empty(vf.net.num_params))
    if kernels.blas.AVAILABLE:                                                  # Adam with the clip's norm inside
        kernels.adam.clip_adam_update(theta, np.ones_like(theta), np.zeros_like(theta), np.zeros_like(theta), 1,
                                      1e-3, 0.9, 0.999, 1e-8, 0.5)
    if cat.net._one_call(N, theta, obs):
        ws, layout, a = cat.net.workspace(N), cat.net._layout_array, rng.integers(0, cat.n_actions, N)
        logp, d_out = heads.categorical_forward_log_prob(theta, layout, (obs, *ws.h), a)
        heads.weighted_backward(theta, layout, np.ones(N), d_out, (obs, *ws.h[:-1]), ws.dz, np.empty(cat.net.num_params))


def main():
    """The compiling process: :func:`compile_update` of the JSON spec on stdin (what :func:`start` writes)."""
    compile_update(json.loads(sys.stdin.read()), parent=os.getppid())

