"""Run-directory formats: what each ``run_format`` of ``config.json`` means, and how older ones are read.

========================  ===========================================================================
run_format                names in config.json, the algorithm state and progress.csv
========================  ===========================================================================
``purepg-run-1``          the first names: ``lam`` (GAE), ``normalize_adv``, ``epsilon`` / ``delta``
                          by algorithm, ``lam`` for the multiplier of trpo-lagrangian, ...
``purepg-run-2``          the vocabulary of :mod:`purepg.algos` (one name per concept)
========================  ===========================================================================

A run directory of format 1 is read as format 2: its config fields are renamed by
:data:`RENAMED_FIELDS` (one line on stderr says which), and on resume the algorithm state and the
progress.csv header are renamed too (:func:`upgrade_state`, :data:`RENAMED_COLUMNS`), so the resumed
run continues exactly and its directory is format 2 from then on. Any other ``run_format`` is refused.
"""
from __future__ import annotations

import sys

from purepg import _check

RUN_FORMAT = "purepg-run-2"   # bump when config.json / progress.csv / checkpoint.npz change meaning
READABLE = ("purepg-run-1", RUN_FORMAT)

_PPO = {"lam": "gae_lambda", "normalize_adv": "normalize_advantage", "target_kl": "kl_stop", "clip_vf": "vf_clip"}
RENAMED_FIELDS = {          # format 1 -> 2, by algorithm: config field -> today's name (applied at once)
    "ppo": _PPO,
    "ppo-kl": {**_PPO, "d_targ": "target_kl"},
    "npg": {"epsilon": "delta"},
    "trpo": {"cg_damping": "damping"},
    "trpo-lagrangian": {"lam_init": "nu_init", "lam_lr": "nu_lr", "pi_lr": "lr", "pi_steps": "epochs"},
    "offpolicy": {"updates_per_batch": "epochs"},
}
RENAMED_STATE = {"trpo-lagrangian": {"lam": "nu"}}                           # algorithm state keys
RENAMED_COLUMNS = {"trpo-lagrangian": {"lam": "nu", "lam_next": "nu_next"}}  # progress.csv columns


def renamed(d, names):
    """``d`` (a dict) with its keys renamed by ``names``, in the same order."""
    return {names.get(k, k): v for k, v in d.items()}


def upgrade(meta, run_dir):
    """``meta`` of ``run_dir``'s config.json read as :data:`RUN_FORMAT`; ValueError for an unknown format.

    For an older format the config fields are renamed and one line on stderr says which.
    """
    fmt = meta.get("run_format")
    if fmt not in READABLE:
        _check.fail(f"run_format of {run_dir}/config.json", f"one of {', '.join(map(repr, READABLE))}",
                    f"{fmt!r} (purepg {meta.get('purepg_version', 'unknown')})", "the run was written by a purepg "
                    "version whose format differs; use that version to resume or evaluate it")
    if fmt == RUN_FORMAT or not isinstance(meta.get("config"), dict):
        return meta
    names = {k: v for k, v in RENAMED_FIELDS.get(meta.get("algo"), {}).items() if k in meta["config"]}
    if names:
        print(f"purepg: {run_dir}: config.json of run_format {fmt} read as {RUN_FORMAT}; renamed fields: "
              f"{', '.join(f'{a} -> {b}' for a, b in names.items())}", file=sys.stderr)
    return {**meta, "run_format": RUN_FORMAT, "config": renamed(meta["config"], names)}


def upgrade_state(algo, state):
    """The algorithm state of a checkpoint with the keys of older formats renamed (idempotent)."""
    names = RENAMED_STATE.get(algo, {})
    return renamed(state, names) if isinstance(state, dict) and names.keys() & state.keys() else state


def upgrade_columns(algo, header):
    """A progress.csv header with the columns of older formats renamed (idempotent)."""
    names = RENAMED_COLUMNS.get(algo, {})
    return [names.get(h, h) for h in header]


def new_name(algo, name):
    """Today's name of ``algo``'s config field ``name`` of an older format, else None."""
    return RENAMED_FIELDS.get(algo, {}).get(name)
