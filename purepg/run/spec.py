"""A sweep specification: which runs to train, checked in full before any of them starts.

A spec is a TOML table (or the same dict from Python or the command line)::

    algo = ["ppo", "trpo"]            # one name or a list
    env = ["CartPole-v1", "Acrobot-v1"]
    seeds = "0-9"                     # "0-4", "0,2,5" or a list of integers
    steps = 100_000                   # per run; or a table per environment: {"CartPole-v1" = 1e5, ...}
    checkpoint_every = 10

    [config]                          # fixed fields for every algorithm ...
    num_envs = 4
    [config.ppo]                      # ... and for one algorithm only
    clip = 0.2

    [grid]                            # a list per field: every combination is a cell
    gamma = [0.99, 0.999]
    [grid.trpo]
    max_kl = [0.01, 0.02]

    [[cells]]                         # or (also) a list of cells, each any of algo, env and fields
    algo = "ppo"
    lr = 1e-3

The cells are ``algo x env x grid x cells`` (``cells`` absent counts as one empty entry; an entry's
``algo`` / ``env`` replace the top-level lists); each cell is trained for every seed. A cell is named
by its algorithm, environment and the grid / cells fields it sets (``ppo-CartPole-v1-gamma=0.99``);
its runs are ``SWEEP_DIR/CELL/seed-S``.
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import re
import tomllib
from typing import NamedTuple

import numpy as np

KEYS = ("out", "algo", "env", "seeds", "steps", "checkpoint_every", "config", "grid", "cells")


class SpecError(ValueError):
    """A spec that cannot be run; the message is one line naming the file, the field and the fix."""


class Run(NamedTuple):
    """One planned run: a cell's configuration for one seed."""

    cell: str             # directory name of the cell
    algo: str
    env_id: str
    seed: int
    fields: dict          # the grid / cells fields that name the cell
    config: dict          # every field of the algorithm's Config (JSON-able, as config.json stores it)
    total_steps: int
    run_dir: str          # relative to the sweep directory: CELL/seed-S


# ----- seeds text ----------------------------------------------------------------------------------
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
    return check_seeds(out, text)


def check_seeds(seeds, shown):
    """``seeds`` as a list of distinct ints >= 0, else ValueError quoting ``shown``."""
    if len(seeds) == 0:
        raise ValueError(f"seeds: expected at least one seed, got {shown!r}. Fix: pass e.g. '0-4'")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"seeds: expected integers >= 0, got {s!r} in {shown!r}. Fix: use seeds 0, 1, 2, ...")
    dup = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if dup:
        raise ValueError(f"seeds: expected each seed once, got {dup[0]} more than once in {shown!r}. Fix: drop the "
                         f"repeat (a seed's run is deterministic, a repeat adds nothing)")
    return [int(s) for s in seeds]


# ----- reading -------------------------------------------------------------------------------------
def load(path) -> dict:
    """The spec in the TOML file ``path`` (a dict); SpecError for a missing or malformed file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file. Fix: check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: not valid TOML ({e}). Fix: correct the file") from None


def _listed(spec, key, src, default=None):
    v = spec.get(key, default)
    v = [v] if isinstance(v, str) else v
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise SpecError(f"{src}: field {key!r}: expected a name or a non-empty list of names, got {v!r}. "
                        f"Fix: e.g. {key} = [\"{'ppo' if key == 'algo' else 'CartPole-v1'}\"]")
    return v


def _check_keys(spec, src):
    for k in spec:
        if k not in KEYS:
            close = difflib.get_close_matches(k, KEYS, n=2)
            raise SpecError(f"{src}: unknown field {k!r}.{' Did you mean ' + ', '.join(close) + '?' if close else ''} "
                            f"Fix: use only {', '.join(KEYS)}")


def _split(table, algos, src, name):
    """``[config]`` / ``[grid]``: (fields for all, {algo: fields}); a sub-table must name a swept algorithm."""
    if not isinstance(table, dict):
        raise SpecError(f"{src}: field {name!r}: expected a table of config fields, got {table!r}")
    common = {k: v for k, v in table.items() if not isinstance(v, dict)}
    per = {k: v for k, v in table.items() if isinstance(v, dict)}
    for a in per:
        if a not in algos:
            raise SpecError(f"{src}: table [{name}.{a}]: {a!r} is not an algorithm of this sweep ({', '.join(algos)}). "
                            f"Fix: add it to algo, or rename the table")
    if name == "grid":
        for k, v in itertools.chain(common.items(), *(t.items() for t in per.values())):
            if not isinstance(v, list) or not v:
                raise SpecError(f"{src}: grid field {k!r}: expected a non-empty list of values, got {v!r}. "
                                f"Fix: e.g. {k} = [a, b], or move it to [config] if it is one value")
    return common, per


def _steps(spec, envs, src):
    steps = spec.get("steps", 100_000)
    table = steps if isinstance(steps, dict) else {e: steps for e in envs}
    out = {}
    for e in envs:
        v = table.get(e)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"{src}: field 'steps' for {e}: expected an integer >= 1, got {v!r}. "
                            f"Fix: e.g. steps = 100000, or a table with every environment")
        out[e] = v
    return out


# ----- the plan ------------------------------------------------------------------------------------
def plan(spec, src="spec") -> list:
    """Every :class:`Run` of ``spec`` (a dict), each configuration built and checked; SpecError if any fails.

    ``src`` names the spec in messages (its file). The environments are built once each, so an unknown
    id fails here too. Nothing is written.
    """
    _check_keys(spec, src)
    algos, envs = _listed(spec, "algo", src, "ppo"), _listed(spec, "env", src, "CartPole-v1")
    try:
        seeds = parse_seeds(spec.get("seeds", "0-4")) if isinstance(spec.get("seeds", "0-4"), str) \
            else check_seeds(list(spec["seeds"]), spec["seeds"])
    except (TypeError, ValueError) as e:
        raise SpecError(f"{src}: field {e}") from None
    cells = spec.get("cells", [{}])
    if not isinstance(cells, list) or not cells or not all(isinstance(c, dict) for c in cells):
        raise SpecError(f"{src}: field 'cells': expected a non-empty list of tables ([[cells]]), got {cells!r}")
    all_algos = sorted({*algos, *(c["algo"] for c in cells if isinstance(c.get("algo"), str))})
    fixed = _split(spec.get("config", {}), all_algos, src, "config")
    grid = _split(spec.get("grid", {}), all_algos, src, "grid")
    cell_list = [c for entry in cells for c in _entry_cells(entry, algos, envs, fixed, grid, src)]
    steps = _steps(spec, sorted({c[1] for c in cell_list}), src)
    for e in sorted({c[1] for c in cell_list}):
        _check_env(e, src)
    named = _name_cells(cell_list, src)
    return [Run(name, a, e, s, fields, config, steps[e], f"{name}/seed-{s}")
            for name, (a, e, fields, config) in named for s in seeds]


def _entry_cells(entry, algos, envs, fixed, grid, src):
    """``(algo, env, fields, config)`` of one ``[[cells]]`` entry crossed with the grid."""
    from purepg.algos import get_algo

    own = {k: v for k, v in entry.items() if k not in ("algo", "env")}
    e_algos = _listed(entry, "algo", src, algos) if "algo" in entry else algos
    e_envs = _listed(entry, "env", src, envs) if "env" in entry else envs
    out = []
    for a in e_algos:
        try:
            algo = get_algo(a)
        except ValueError as e:
            raise SpecError(f"{src}: field 'algo': {e}") from None
        axes = {**grid[0], **grid[1].get(a, {})}
        for values in itertools.product(*axes.values()):
            fields = {**dict(zip(axes, values)), **own}
            d = {**fixed[0], **fixed[1].get(a, {}), **fields}
            config = _config(algo, a, d, src)
            out.extend((a, e, fields, config) for e in e_envs)
    return out


def _config(algo, name, d, src):
    from purepg.run.runner import config_from_dict, config_to_dict

    try:
        return config_to_dict(config_from_dict(algo.Config, d, algo=name))
    except (TypeError, ValueError) as e:
        raise SpecError(f"{src}: invalid configuration for {name} ({_show_fields(d)}): {' '.join(str(e).split())}") \
            from None


def _check_env(env_id, src):
    import gymnasium

    from purepg.env import envs
    try:
        envs.make_vec_env(env_id, 1, seed=0).close()
    except (gymnasium.error.Error, ValueError) as e:
        raise SpecError(f"{src}: field 'env': {env_id!r} cannot be built ({' '.join(str(e).split())})") from None


def _show(v):
    if isinstance(v, (list, tuple)):
        return "x".join(map(_show, v)) or "none"
    return format(v, "g") if isinstance(v, float) else str(v)


def _show_fields(d):
    return ", ".join(f"{k}={_show(v)}" for k, v in d.items()) or "defaults"


MAX_NAME = 255   # characters of a cell directory's name: the most a Linux or macOS file system allows


def cell_dir_name(algo, env_id, fields) -> str:
    """``algo-env[-field=value...]``, file-name safe; past :data:`MAX_NAME` characters, its first part and
    ``-`` and 12 hex digits of the SHA-1 of the whole name (the same spec gives the same name)."""
    name = "-".join([algo, env_id, *(f"{k}={_show(v)}" for k, v in fields.items())])
    name = re.sub(r"[^A-Za-z0-9._=+-]", "_", name)
    if len(name) <= MAX_NAME:
        return name
    return f"{name[:MAX_NAME - 13]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def _name_cells(cells, src):
    """``[(name, cell)]`` named by :func:`cell_dir_name`; two cells with one config is an error."""
    seen, out = {}, []
    for a, e, fields, config in cells:
        name = cell_dir_name(a, e, fields)
        key = (a, e, repr(sorted(config.items())))
        if key in seen:
            raise SpecError(f"{src}: cells {seen[key]} and {name} have the same algorithm, environment and "
                            f"configuration. Fix: drop the repeated grid value or cell")
        seen[key] = name
        out.append((name, (a, e, fields, config)))
    return out


def total_iterations(run: Run) -> int:
    """Iterations a finished run has done: ``ceil(total_steps / (num_envs * num_steps))``."""
    return math.ceil(run.total_steps / (run.config["num_envs"] * run.config["num_steps"]))
