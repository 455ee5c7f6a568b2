r"""A first run compiles its update's costliest kernels in a second process while it compiles its rollout's.

On a machine whose Numba cache is empty, a run's first iteration waits for Numba to compile every
kernel it calls: the acting pass during the rollout, then the update's (GAE, the minibatch rows, the
network passes, the losses, Adam, ...), a few seconds in all, one after the other, on one core.
Compilation is Python and holds its interpreter, so a thread would not help; a second *process* does.
When ``purepg train`` starts on a machine with two cores or more and the cache lacks the update's
kernels (:func:`cold`), :func:`start` launches a Python process (:func:`main`) with the run's algorithm,
configuration and the sizes of its observation and action spaces. That process builds the same
networks and a batch of the shapes and dtypes a rollout of the run collects (:func:`synthetic_batch`:
random observations, actions and rewards, some episodes ending) and compiles its share of the update's
kernels (:data:`AHEAD_SHARE`, the costliest) by calling them on arrays like the update's
(:func:`compile_kernels`), then writes one byte to its stdout. Meanwhile the run compiles its acting pass
in its first rollout; before its first update it compiles the rest (:data:`RUN_SHARE`) and waits for that
byte (:func:`await_share`), so that its update loads both shares from the cache and nothing is compiled
twice. The process then runs the algorithm's ``update`` once on its batch (whatever else the update
calls is compiled and written to the cache too). Last, once the run has written its first progress row
(two compiling processes slow each other on a machine whose cores share a physical core), it compiles
the fused minibatch-step kernels of :mod:`purepg.kernels.heads` (:func:`fused_for_later_runs`), which a
first run does not call and the runs after it do.

Nothing of the second process reaches the run but cached machine code, which is what the run would
have compiled itself: the results are the same bits. It runs in a session of its own (a Ctrl-C in the
terminal reaches the run alone), writes nothing to the terminal, and :func:`stop` ends it when the run
ends, however it ends. An error in it (an algorithm this module cannot feed, a full disk) costs only
the time it would have saved: its pipe closes, and the run stops waiting (and after two minutes in any case).
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import numpy as np

from purepg.kernels import adam, compiling, passes, returns


#: Kernels every update calls: where these are cached, so is the update.
_UPDATE_MARKERS = (passes._mlp_backward_numba, returns._gae_numba, adam._adam_update_numba)


def _update_cold():
    """Whether this machine's Numba cache lacks the update's kernels (one of :data:`_UPDATE_MARKERS` is neither
    compiled in this process nor cached: :func:`purepg.kernels.compiling.cached`)."""
    return not all(compiling.cached(k) for k in _UPDATE_MARKERS)


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
    if (os.cpu_count() or 1) < 2 or os.environ.get("PUREPG_COMPILE_AHEAD", "1") == "0" or not cold(config):
        return None
    spec = _spec(algo, config, obs_space, act_space, progress, update=_update_cold())   # False: only the
    try:                                                                                 # kernels for later runs
        report = subprocess.PIPE if spec["update"] and os.name == "posix" else subprocess.DEVNULL  # await_share
        proc = subprocess.Popen([sys.executable, "-c", "from purepg.run import ahead; ahead.main()"], stdin=subprocess.PIPE,
                                stdout=report, stderr=subprocess.DEVNULL, start_new_session=True)
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        return proc
    except OSError:
        return None


def _spec(algo, config, obs_space, act_space, progress=None, update=True):
    """The JSON-able description of a run that :func:`compile_update` works from."""
    from gymnasium import spaces

    from purepg.run.runner import config_to_dict

    discrete = isinstance(act_space, spaces.Discrete)
    return {"algo": algo.NAME, "config": config_to_dict(config), "obs_dim": int(obs_space.shape[0]),
            "discrete": discrete, "act": int(act_space.n) if discrete else int(act_space.shape[0]),
            "progress": None if progress is None else os.fspath(progress), "progress_size": _size(progress),
            "update": update}


def compile_now(algo, config, env_id, env_module=None):
    """Compile in this process what a first ``purepg train`` of ``algo`` with ``config`` leaves in Numba's
    cache: the update's kernels and the kernels for later runs (:func:`fused_for_later_runs`), so that the
    runs after it take the fused minibatch step (:func:`purepg.kernels.heads.ready`). For callers of
    :func:`purepg.run.runner.train` without ``verbose`` (benchmarks, sweeps' workers, scripts), which start
    no compiling process: without this a machine whose cache lacks those kernels never compiles them
    (a run compiles only what it calls). Compiled kernels are loaded from the cache, not compiled again.
    ``env_id``, ``env_module``: the environment, as :func:`purepg.env.envs.make_env` takes it (its spaces
    size the networks)."""
    from purepg.env import envs

    env = envs.make_env(env_id, env_module)
    try:
        spec = _spec(algo, config, env.observation_space, env.action_space)
    finally:
        env.close()
    compile_update(spec)


def prepare(algo, config, env_id, env_module=None):
    """Before runs that start no compiling process (``purepg seeds``, a local ``purepg sweep``): where this
    machine's cache lacks their kernels (:func:`cold`), :func:`compile_now` once, so that every run takes the
    fused minibatch step instead of none of them. An error here (an environment or algorithm it cannot
    imitate) costs only the time it would have saved: the runs compile what they call, as without it."""
    if not cold(config):
        return
    try:
        compile_now(algo, config, env_id, env_module)
    except Exception:                                          # noqa: BLE001  only time is at stake
        pass


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


def synthetic_batch(pol, config, rng):
    """A :class:`purepg.env.rollout.Batch` of ``T = config.num_steps`` steps of ``E = config.num_envs``
    copies with the shapes and dtypes a rollout gives (values random; one episode in 16 steps ends)."""
    from purepg.env.rollout import Batch

    T, E, d = config.num_steps, config.num_envs, pol.obs_dim
    obs = rng.standard_normal((T, E, d))
    act = rng.integers(0, pol.n_actions, (T, E)) if pol.discrete else rng.standard_normal((T, E, pol.act_dim))
    logp = -rng.random((T, E))                 # not the policy's (a forward pass would compile it here first)
    ends = rng.random((T, E)) < 1 / 16
    return Batch(obs=obs, act=act, rew=rng.standard_normal((T, E)), terminated=ends, truncated=np.zeros((T, E), bool),
                 final_obs=rng.standard_normal((T, E, d)), next_obs_last=rng.standard_normal((E, d)), logp_old=logp,
                 obs_raw=obs.copy() if config.normalize_obs else None,
                 episode_returns=np.ones(int(ends.sum())), episode_lengths=np.ones(int(ends.sum()), dtype=np.int64),
                 rew_raw=rng.standard_normal((T, E)) if config.normalize_reward else None)


def _build(spec):
    """``(algo, ctx, state, batch, rng)`` for the run described by ``spec``: its networks, the algorithm's
    initial state and a :func:`synthetic_batch` of a rollout's shapes."""
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
    return algo, ctx, state, synthetic_batch(pol, config, rng), rng


def compile_update(spec, parent=None, out=None):
    """The compiling process's work for the run described by ``spec``: unless ``spec["update"]`` is False
    (the update's kernels are cached), its share of the update's kernels (:data:`AHEAD_SHARE`), one byte on
    ``out`` (the run waits for it, :func:`await_share`), then the algorithm's update once on a
    :func:`synthetic_batch` (whatever else it calls); last, after the run's first progress row and while
    the run ``parent`` lives, the kernels for later runs."""
    algo, ctx, state, batch, rng = _build(spec)
    if spec.get("update", True):
        compile_kernels(ctx, batch, rng, AHEAD_SHARE)
        if out is not None:
            out.write(b".")
            out.flush()
        algo.update(ctx, state, batch, rng, 0.0)
    if wait_for_a_row(spec.get("progress"), spec.get("progress_size", -1), parent=parent):   # the run's first
        fused_for_later_runs(ctx.pol, ctx.vf, batch, rng)                                    # iteration, undisturbed


#: The update's kernels the compiling process compiles while the run compiles its acting pass: the
#: costliest of the update (the rows of a PPO minibatch, the networks' backward passes, the JVP sweep of a
#: Fisher product by JVP) and the log-softmax the rollout calls last; chosen so that the two shares end
#: about together on two cores (the run's starts after its acting pass), by the times of Numba's compile
#: events in cold runs of PPO and TRPO on CartPole-v1. PPO's clip terms moved to the run's share when
#: the acting pass got cheaper to compile (its products and tanh compiled into it, ``inline="always"``).
AHEAD_SHARE = ("log_softmax", "minibatch_rows", "backward", "jvp")
#: The rest of the update's, which the run compiles itself before its first update (:func:`await_share`).
RUN_SHARE = ("gae", "log_prob", "clip_terms", "adam")


def compile_kernels(ctx, batch, rng, names):
    """Compile the kernels ``names`` (of :data:`AHEAD_SHARE` and :data:`RUN_SHARE`) that the update of
    ``ctx``'s algorithm calls, by calling them on arrays like those it passes them (from ``batch``, a
    :func:`synthetic_batch`, and ``rng``, never the run's). Kernels the algorithm does not call are
    skipped: a minibatch's rows and the clip terms outside PPO, the JVP sweep without ``fisher="fvp"``."""
    from purepg import kernels
    from purepg.algos.common import flatten_with_gae
    from purepg.model.nn import MLPCache

    pol, vf, config = ctx.pol, ctx.vf, ctx.config
    N = batch.obs.shape[0] * batch.obs.shape[1]
    obs = batch.obs.reshape(N, -1)
    act = batch.act.reshape(N, *batch.act.shape[2:])
    ppo = hasattr(config, "minibatch_size") and hasattr(config, "advantage_norm")
    for name in names:
        if name == "log_softmax" and pol.discrete:
            kernels.log_softmax(np.zeros((N, pol.n_actions)))
        elif name == "minibatch_rows" and ppo:
            kernels.minibatch_rows(rng.permutation(N), (obs, act, *rng.standard_normal((4, N))), config.advantage_norm)
        elif name in ("backward", "jvp"):
            for net, theta in ((pol.net, pol.init(rng)[:pol.net.num_params]), (vf.net, vf.init(rng))):
                ws = net.workspace(N)
                for h in ws.h:
                    h.fill(0.0)
                cache = MLPCache((obs, *ws.h[:-1]))            # the cache of a forward pass, without one
                if name == "backward":
                    net.backward_into(ws, theta, rng.standard_normal((N, net.sizes[-1])), cache)
                elif getattr(config, "fisher", None) == "fvp" and net is pol.net:
                    net.jvp_into(ws, theta, rng.standard_normal(theta.size), cache)
        elif name == "gae":
            flatten_with_gae(ctx, vf.init(rng), batch, config.gamma, getattr(config, "gae_lambda", 1.0))
        elif name == "log_prob":
            pol.dist.log_prob_and_grad(np.zeros((N, pol.dist.out_dim)), np.zeros(pol.dist.n_extra), act)
        elif name == "clip_terms" and ppo and hasattr(config, "clip"):
            kernels.clip_terms(np.ones(N), rng.standard_normal(N), 0.2)
        elif name == "adam":
            theta = vf.init(rng)
            kernels.adam_update(theta, np.ones_like(theta), np.zeros_like(theta), np.zeros_like(theta), 1, 1e-3, 0.9,
                                0.999, 1e-8)


def await_share(proc, ctx, timeout=120.0):
    """Before a first run's first update: compile the run's share of the update's kernels
    (:data:`RUN_SHARE`), then wait for the compiling process ``proc`` to report its share (:data:`AHEAD_SHARE`)
    done, so that the update loads both from the cache instead of compiling the second share again. At once
    where there is nothing to wait for (no process, a process with no share: only the kernels for later runs
    were missing), after the first call, once the process has ended, and after ``timeout`` seconds. An
    error in the run's share (an algorithm whose arrays it cannot imitate) costs only its time: the update
    then compiles what is missing, as without the compiling process."""
    if proc is None or proc.stdout is None or proc.stdout.closed:
        return
    try:
        rng = np.random.default_rng(0)                         # not the run's generator: its draws stay the run's
        try:
            compile_kernels(ctx, synthetic_batch(ctx.pol, ctx.config, rng), rng, RUN_SHARE)
        except Exception:                                      # noqa: BLE001  only time is at stake: the
            pass                                               # update compiles whatever is missing itself
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.05)
            if ready:                                          # its byte, or the end of the pipe
                break
    finally:
        proc.stdout.close()


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
    compile_update(json.loads(sys.stdin.read()), parent=os.getppid(), out=sys.stdout.buffer)

