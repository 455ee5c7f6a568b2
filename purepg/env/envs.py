"""Vector environments for purepg: construction, space checks, and a saveable environment state.

What purepg needs from an environment
-------------------------------------
A policy maps an observation vector ``s in R^d`` to a distribution over actions, so purepg supports

* observation space: a flat 1-D ``gymnasium.spaces.Box`` of shape ``(d,)`` (any numeric dtype; the
  rollout casts to float64);
* action space: ``Discrete(n)`` with ``start == 0`` (a categorical policy over ``{0, ..., n-1}``), or a
  1-D floating ``Box`` of shape ``(k,)`` (a diagonal Gaussian policy in ``R^k``).

Anything else (``Dict``, ``Tuple``, ``MultiDiscrete``, ``MultiBinary``, image ``Box`` of rank > 1, a
``Discrete`` with a non-zero start, an integer ``Box``) is refused by :func:`check_spaces` *before* any
training starts, with a message naming the space and the fix.

Custom environments
-------------------
An environment of one's own is registered with ``gymnasium.register("MyEnv-v0", entry_point=...)`` in
some importable module. purepg imports that module before building the env, either from the id
(``"my_pkg.envs:MyEnv-v0"``) or from ``env_module="my_pkg.envs"`` with the bare id
(:func:`resolve_env_id`); a run directory records both, so ``resume`` and ``eval`` import it again.

Vectorisation and autoreset
---------------------------
``E`` copies of the environment step in lock-step. When copy ``e`` ends an episode, gymnasium resets it
according to the vector env's ``metadata["autoreset_mode"]``:

* ``SAME_STEP`` -- the ending ``step`` resets at once: it returns the new episode's first observation
  and puts the ended episode's last observation in ``info["final_obs"][e]``;
* ``NEXT_STEP`` (gymnasium's default) -- the *following* ``step`` call is a reset step: its action is
  ignored, its reward is 0 and it returns the first observation of the new episode;
* ``DISABLED`` -- the caller resets finished copies with ``reset(options={"reset_mask": done})``.

:func:`make_vec_env` always returns a vector env whose transitions can be recorded exactly
(see ``purepg.env.rollout``): synchronous / asynchronous vectorisation is built with ``SAME_STEP``; an
environment's own vectorised entry point is used by ``vectorization="auto"`` only if it is
``SAME_STEP``. CartPole-v1's entry point (``CartPoleVectorEnv``, gymnasium 1.x) is ``NEXT_STEP`` and
cannot reset one copy alone (its ``reset`` re-draws every copy), so a fixed ``(T, E)`` batch of real
transitions cannot be cut from it without masks; "auto" therefore falls back to ``SyncVectorEnv``
for it (measured: 52 us vs 30 us per 8-env step, about 0.3 s per 1e5 environment steps).

Saving the environment state
----------------------------
Resuming a run exactly needs every sub-environment's dynamic state (physics state, step counters of
``TimeLimit``, random generators), not only its seed. :func:`get_env_state` walks the objects of the
vector env (wrappers, sub-envs, their attributes) and records every plain-data attribute -- NumPy
arrays, numbers, strings, ``None`` and the bit-generator state of each ``numpy.random.Generator`` --
as a flat ``{key: ndarray}`` dict that ``numpy.savez`` stores without pickle. Spaces, specs,
metadata and callables are configuration and are skipped. Any other attribute type (a MuJoCo
``MjData``, a Box2D world, a subprocess pipe of ``AsyncVectorEnv``) cannot be captured faithfully, so
the call raises ``ValueError`` naming it instead of saving a state that would resume inexactly.
:func:`set_env_state` writes the values back into a vector env built the same way (arrays in place,
generators through ``bit_generator.state``).
"""
from __future__ import annotations

import difflib
import enum
import importlib
import json
import types

import gymnasium
import numpy as np

from purepg import _check
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

VECTORIZATIONS = ("auto", "sync", "async", "vector_entry_point")
SUPPORTED = ("purepg supports a flat 1-D Box observation space, and a Discrete(n) action space with "
             "start 0 or a 1-D float Box action space")


def check_spaces(obs_space, act_space, *, name="env"):
    """Raise ``ValueError`` unless ``obs_space`` / ``act_space`` are spaces purepg supports.

    Parameters
    ----------
    obs_space, act_space : gymnasium.spaces.Space
        The *single* (per-copy) observation and action spaces.
    name : str
        How the environment is named in the message (its id).
    """
    if not (isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1 and obs_space.shape[0] >= 1):
        raise ValueError(
            f"observation space of {name}: expected a flat 1-D Box of shape (d,), got {obs_space} "
            f"({SUPPORTED}). Fix: flatten it (gymnasium.wrappers.FlattenObservation) or use another env.")
    if isinstance(act_space, spaces.Discrete):
        if int(act_space.start) != 0:
            raise ValueError(
                f"action space of {name}: expected Discrete with start 0, got {act_space} "
                f"({SUPPORTED}). Fix: wrap the env so actions are 0..n-1 (add the start in its step).")
        return
    if isinstance(act_space, spaces.Box) and len(act_space.shape) == 1 \
            and np.issubdtype(act_space.dtype, np.floating):
        return
    raise ValueError(
        f"action space of {name}: expected Discrete(n) or a 1-D float Box, got {act_space} "
        f"({SUPPORTED}). Fix: wrap the env to expose one of these spaces, or use another env.")


def _check_env_id(env_id):
    """``ValueError`` naming an unknown id and the closest registered ids."""
    if env_id in gymnasium.registry:
        return
    close = difflib.get_close_matches(env_id, list(gymnasium.registry.keys()), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else \
        "list the ids with gymnasium.pprint_registry()."
    raise ValueError(f"env: expected an environment id registered in gymnasium.registry, got the "
                     f"unknown id {env_id!r}. Fix: {hint}")


def _import(module, what):
    try:
        importlib.import_module(module)
    except Exception as e:          # the module's own error, whatever it is, is the user's to see
        raise ValueError(f"{what}: expected an importable module, got {module!r}, which cannot be imported "
                         f"({type(e).__name__}: {e}). Fix: make it "
                         f"importable (install it, or add its folder to PYTHONPATH)") from None


def resolve_env_id(env_id, env_module=None):
    """The registered id of ``env_id``, after importing the module that registers it.

    ``"my_pkg.envs:MyEnv-v0"`` imports ``my_pkg.envs`` and returns ``"MyEnv-v0"``; a bare id is
    returned as is, after importing ``env_module`` if given. The id must then be in
    ``gymnasium.registry`` (an unknown one raises ``ValueError`` with the closest ids).
    """
    if env_module is not None:
        _import(env_module, "env_module")
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        _import(module, "env")
    _check_env_id(env_id)
    return env_id


def make_env(env_id, env_module=None, **kwargs):
    """One environment of ``env_id`` (``"module:Id"`` accepted, see :func:`resolve_env_id`)."""
    return gymnasium.make(resolve_env_id(env_id, env_module), **kwargs)


def _check_args(env, num_envs, seed, vectorization):
    _check.positive_int(num_envs, "num_envs", "pass the number of parallel environment copies, e.g. num_envs=8")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        _check.fail("seed", "an int or None", f"{seed!r} ({type(seed).__name__})", "pass an integer seed, e.g. seed=0",
                    TypeError)
    if vectorization not in VECTORIZATIONS:
        raise ValueError(f"vectorization: expected one of {VECTORIZATIONS}, got {vectorization!r}. "
                         f"Fix: use 'auto' unless you need a specific vectoriser.")
    if not isinstance(env, str) and not callable(env) and not (isinstance(env, (list, tuple)) and all(map(callable, env))):
        raise TypeError(f"env: expected an env id (str), an env factory (callable) or a list of "
                        f"factories, got {type(env).__name__}. Fix: pass e.g. 'CartPole-v1'.")
    if isinstance(env, (list, tuple)) and len(env) != num_envs:
        raise ValueError(f"env: expected {num_envs} factories (one per copy, num_envs={num_envs}), "
                         f"got {len(env)}. Fix: pass as many factories as num_envs.")


def _build(env, num_envs, vectorization):
    """Construct the vector env (see the module docstring for the choice of vectoriser)."""
    same = {"autoreset_mode": AutoresetMode.SAME_STEP}
    cls = AsyncVectorEnv if vectorization == "async" else SyncVectorEnv
    if not isinstance(env, str):
        fns = list(env) if isinstance(env, (list, tuple)) else [env] * num_envs
        if vectorization == "vector_entry_point":
            _check.fail("vectorization", "'auto', 'sync' or 'async' for an env factory ('vector_entry_point' needs "
                        "a registered env id)", "'vector_entry_point'", "use 'auto', 'sync' or 'async'")
        return cls(fns, **same)
    has_entry = gymnasium.spec(env).vector_entry_point is not None
    if vectorization == "vector_entry_point" or (vectorization == "auto" and has_entry):
        vec = gymnasium.make_vec(env, num_envs, vectorization_mode="vector_entry_point")
        mode = vec.metadata.get("autoreset_mode")
        if mode == AutoresetMode.SAME_STEP:
            return vec
        vec.close()
        if vectorization == "vector_entry_point":
            raise ValueError(
                f"vectorization: expected a vector entry point with SAME_STEP autoreset, got {mode} for "
                f"{env!r}, whose copies cannot be reset one at a time, so exact transitions cannot be "
                f"recorded from it. Fix: use vectorization='auto' or 'sync'.")
    mode = "async" if vectorization == "async" else "sync"
    return gymnasium.make_vec(env, num_envs, vectorization_mode=mode, vector_kwargs=same)


def make_vec_env(env, num_envs, *, seed, vectorization="auto", env_module=None):
    """Build, check and seed a vector env of ``num_envs`` copies.

    Parameters
    ----------
    env : str or callable or list of callable
        A registered gymnasium id (``"CartPole-v1"``), an id after the module that registers it
        (``"my_pkg.envs:MyEnv-v0"``, imported first), a factory returning a ``gymnasium.Env`` (used
        for every copy), or one factory per copy (e.g. toy envs of different episode lengths).
    num_envs : int
        ``E >= 1``.
    seed : int or None
        Seeds copy ``e`` with ``seed + e`` through ``reset(seed=seed)`` (gymnasium's convention) and
        the action space sampler with ``seed``.
    vectorization : {"auto", "sync", "async", "vector_entry_point"}
        "auto": the env's own vectorised entry point if it resets in the same step, else synchronous.
    env_module : str or None
        A module to import first, for a bare id it registers (``gymnasium.register`` at import).

    Returns
    -------
    gymnasium.vector.VectorEnv
        Reset once with ``seed``; its spaces passed :func:`check_spaces`. ``purepg.env.rollout.start``
        resets it again, drawing the first episodes from the generators seeded here.
    """
    _check_args(env, num_envs, seed, vectorization)
    if isinstance(env, str):
        env = resolve_env_id(env, env_module)
    vec = _build(env, int(num_envs), vectorization)
    name = env if isinstance(env, str) else getattr(vec.unwrapped, "spec", None) or "env factory"
    try:
        check_spaces(vec.single_observation_space, vec.single_action_space, name=str(name))
    except ValueError:
        vec.close()
        raise
    vec.reset(seed=seed)
    vec.action_space.seed(seed)
    return vec


# ---------------------------------------------------------------------------------------------
# Environment state: a flat {"<path>@<kind>": ndarray} snapshot of every plain-data attribute.
# Paths start at "vec" and follow attributes, list/tuple indices and dict keys ("vec.envs.0.env.state").
# Containers are recorded too ("@env": class name, "@list"/"@tuple": length, "@dict": keys), so a
# value may change kind between save and restore (None -> float, None -> tuple, ...).
# ---------------------------------------------------------------------------------------------

FORMAT = "purepg-envstate-1"
# Configuration, lazily created caches, and PassiveEnvChecker's data-reuse cache: not dynamic state.
_CONFIG_ATTRS = frozenset({
    "spec", "_cached_spec", "metadata", "_metadata", "_saved_kwargs", "render_mode", "env_fns",
    "action_space", "observation_space", "_action_space", "_observation_space",
    "single_action_space", "single_observation_space", "screen", "screens", "clock", "clocks", "surf",
    "_previous_data",
})
_SKIP_TYPES = (spaces.Space, gymnasium.envs.registration.EnvSpec, enum.Enum, type, types.ModuleType)
_LEAVES = {
    "none": (lambda x: x is None, lambda x: np.zeros(0), lambda a: None),
    "bool": (lambda x: isinstance(x, bool), np.array, lambda a: bool(a)),
    "int": (lambda x: isinstance(x, int), lambda x: np.array(str(x)), lambda a: int(str(a[()]))),
    "float": (lambda x: isinstance(x, float), lambda x: np.array(x, np.float64), lambda a: float(a)),
    "str": (lambda x: isinstance(x, str), np.array, lambda a: str(a[()])),
    "npscalar": (lambda x: isinstance(x, np.generic), np.array, lambda a: a[()]),
    "nd": (lambda x: isinstance(x, np.ndarray) and x.dtype != object, np.copy, np.array),
}  # kind: (test, encode, decode); "int" as text since Python ints (128-bit seeds) exceed int64


def _is_env(x):
    return isinstance(x, (gymnasium.Env, VectorEnv))


def _uncapturable(path, x):
    return ValueError(
        f"vec_env: expected attributes that are NumPy arrays, numbers, strings or random generators, "
        f"got {path!r} of type {type(x).__name__}, whose state cannot be saved, so this env cannot "
        f"be resumed exactly. Fix: use a pure-Python/NumPy env with vectorization='sync'.")


def _children(x, path):
    """``(kind, record, [(name, child)])`` of a container, or ``None`` for a leaf."""
    if _is_env(x):
        return "env", np.array(type(x).__qualname__), \
            [(k, v) for k, v in vars(x).items() if k not in _CONFIG_ATTRS]
    if isinstance(x, (list, tuple)):
        kind = "list" if isinstance(x, list) else "tuple"
        return kind, np.array(len(x)), [(str(i), v) for i, v in enumerate(x)]
    if isinstance(x, dict):
        if not all(isinstance(k, str) and "." not in k and "@" not in k for k in x):
            raise _uncapturable(path, x)
        return "dict", np.array(list(x), dtype=str), list(x.items())
    return None


def _flatten(x, path, out):
    node = _children(x, path)
    if node is not None:
        out[f"{path}@{node[0]}"] = node[1]
        for name, v in node[2]:
            _flatten(v, f"{path}.{name}", out)
        return
    if isinstance(x, np.random.Generator):
        out[f"{path}@rng"] = np.array(json.dumps(x.bit_generator.state, default=lambda a: a.tolist()))
        return
    for kind, (test, enc, _) in _LEAVES.items():
        if test(x):
            out[f"{path}@{kind}"] = enc(x)
            return
    if not (isinstance(x, _SKIP_TYPES) or callable(x)):
        raise _uncapturable(path, x)


def _check_vec(vec_env):
    if not isinstance(vec_env, VectorEnv):
        raise TypeError(f"vec_env: expected a gymnasium.vector.VectorEnv, got "
                        f"{type(vec_env).__name__}. Fix: build one with purepg.env.envs.make_vec_env.")
    if isinstance(vec_env.unwrapped, AsyncVectorEnv):
        raise ValueError("vec_env: expected a synchronous vector env, got an AsyncVectorEnv, whose "
                         "sub-envs live in worker processes where their state cannot be read. Fix: "
                         "make_vec_env(..., vectorization='sync').")


def get_env_state(vec_env):
    """Snapshot of the dynamic state of ``vec_env`` as ``{key: ndarray}`` (``numpy.savez``-able).

    Keys are ``"<path>@<kind>"``; ``"format@str"`` holds :data:`FORMAT`. Raises ``ValueError`` if
    some attribute cannot be captured (see the module docstring).
    """
    _check_vec(vec_env)
    out = {"format@str": np.array(FORMAT)}
    _flatten(vec_env, "vec", out)
    return out


def _rng(arr, live):
    state = json.loads(str(arr[()]))
    if not (isinstance(live, np.random.Generator)
            and type(live.bit_generator).__name__ == state["bit_generator"]):
        live = np.random.Generator(getattr(np.random, state["bit_generator"])())
    live.bit_generator.state = state
    return live


def _rebuild(live, path, kinds, kids, st):
    """The restored value at ``path``; arrays, generators, lists, dicts and envs are reused in place."""
    kind, arr = kinds[path], np.asarray(st[f"{path}@{kinds[path]}"])
    if kind == "rng":
        return _rng(arr, live)
    if kind == "nd" and isinstance(live, np.ndarray) and live.shape == arr.shape and live.dtype == arr.dtype:
        live[...] = arr
        return live
    if kind in _LEAVES:
        return _LEAVES[kind][2](arr)
    if kind == "env":
        for name in kids.get(path, ()):
            old = getattr(live, name, None)
            new = _rebuild(old, f"{path}.{name}", kinds, kids, st)
            if new is not old:
                setattr(live, name, new)
        return live
    names = [str(i) for i in range(int(arr))] if kind in ("list", "tuple") else [str(k) for k in arr]
    same = isinstance(live, (list, tuple) if kind != "dict" else dict) and \
        len(live) == len(names) and (kind == "dict" or all(n.isdigit() for n in names))
    get = (lambda n: live[int(n)] if kind != "dict" else live.get(n)) if same else (lambda n: None)
    vals = [_rebuild(get(n), f"{path}.{n}", kinds, kids, st) if f"{path}.{n}" in kinds else get(n)
            for n in names]
    if kind == "dict":
        return dict(zip(names, vals)) if not same else (live.update(zip(names, vals)) or live)
    if kind == "list":
        if same and isinstance(live, list):
            live[:] = vals
            return live
        return vals
    return type(live)(*vals) if same and hasattr(live, "_fields") else tuple(vals)


def set_env_state(vec_env, st):
    """Write a snapshot from :func:`get_env_state` back into ``vec_env`` (in place).

    ``vec_env`` must be built the same way (same env, ``num_envs`` and vectorisation): its envs and
    wrappers must have the saved classes at the saved places, else ``ValueError`` names the
    difference. Every saved attribute is written; values may have changed kind since (``None`` ->
    array); arrays of unchanged shape and generators are written in place, so aliases survive.
    """
    _check_vec(vec_env)
    st = dict(st)
    if str(np.asarray(st.get("format@str", "")).item() or "") != FORMAT:
        raise ValueError(f"st: expected an env state of format {FORMAT!r}, got format "
                         f"{st.get('format@str')!r}. Fix: save it with purepg.env.envs.get_env_state.")
    live = {k: str(v) for k, v in get_env_state(vec_env).items() if k.endswith("@env")}
    saved = {k: str(v) for k, v in st.items() if k.endswith("@env")}
    if live != saved:
        diff = sorted(set(live.items()) ^ set(saved.items()))
        raise ValueError(
            f"st: expected the state of a vector env built like this one, got one whose envs differ "
            f"at {diff[:3]} ({len(diff)} in all). Fix: build the vector env with the same env, "
            f"num_envs and vectorization before calling set_env_state.")
    kinds, kids = {}, {}
    for key in st:
        path, kind = key.rsplit("@", 1)
        kinds[path] = kind
        if "." in path:
            parent, name = path.rsplit(".", 1)
            kids.setdefault(parent, []).append(name)
    _rebuild(vec_env, "vec", kinds, kids, st)
