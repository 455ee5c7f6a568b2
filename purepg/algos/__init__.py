"""The algorithms, one short module each; :func:`get_algo` finds one by its command-line name.

Each module defines ``NAME``, ``Config``, ``init`` and ``update`` (the interface is documented in
:mod:`purepg.run.runner`), and reads like the pseudocode of its paper, importing every primitive.
"""
from __future__ import annotations

import difflib
import importlib

# command-line name -> module
ALGOS = {
    "reinforce": "purepg.algos.reinforce",
    "ppo": "purepg.algos.ppo",
    "ppo-kl": "purepg.algos.ppo_kl",
    "npg": "purepg.algos.npg",
    "trpo": "purepg.algos.trpo",
    "trpo-lagrangian": "purepg.algos.trpo_lagrangian",
    "offpolicy": "purepg.algos.offpolicy",
}


def _load(name):
    try:
        return importlib.import_module(ALGOS[name])
    except ModuleNotFoundError as e:
        if e.name == ALGOS[name]:
            return None
        raise


def available():
    """Names of the algorithms whose modules are present."""
    return [name for name in ALGOS if _load(name) is not None]


def get_algo(name):
    """The algorithm module for ``name``; ValueError with close matches if unknown."""
    mod = _load(name) if name in ALGOS else None
    if mod is None:
        close = difflib.get_close_matches(str(name), available(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown algorithm {name!r}.{hint} Available: {', '.join(available())}")
    return mod
