"""Conformance: purepg's update against other libraries' own update code, from one state and one rollout.

Each case (``purepg.verify.conformance_ppo``, ``conformance_trpo``, ``conformance_tianshou``) builds a float64 copy of purepg's
initial parameters inside the library's policy, lets the library collect one real rollout and run its
own ``train()`` (the minibatch rows, gradients, Adam moments and parameters recorded around it), then
runs purepg's update from the same state and rollout with the matching convention profile and the
library's minibatch order. Every quantity is compared as a relative error
``max |purepg - library| / max |library|``.

Tolerance: 1e-9 where the computation is well conditioned (both sides float64; rounding ~1e-15).
Where it is not -- the conjugate-gradient solve behind TRPO's step amplifies rounding -- the library's
own sensitivity is measured (its update rerun with the rollout's advantages moved by one ulp) and the
agreement is judged against ``max(1e-9, 10 x sensitivity)``; the row says so.

A library that is not installed is skipped with its install command; a library version other than the
one the cases were written for is named in the row notes (its semantics may have changed: a quantity
that then disagrees is reported with both versions).
"""
from __future__ import annotations

import importlib
import json
from typing import NamedTuple

import numpy as np

from purepg import _check

TOL = 1e-9
INSTALL = {"sb3": "pip install torch==2.13.0 stable-baselines3==2.9.2",
           "sb3-contrib": "pip install torch==2.13.0 stable-baselines3==2.9.2 sb3-contrib==2.9.2",
           "tianshou": "pip install torch==2.13.0 tianshou==2.0.1"}
TESTED = {"stable_baselines3": "2.9.2", "sb3_contrib": "2.9.2", "tianshou": "2.0.1", "torch": "2.13.0"}
LIBRARIES = {"sb3": ("stable_baselines3",), "sb3-contrib": ("stable_baselines3", "sb3_contrib"),
             "tianshou": ("tianshou",)}


class Row(NamedTuple):
    """One compared quantity of one case."""

    case: str
    quantity: str
    error: float        # relative error (nan: not compared)
    tol: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.error <= self.tol)


def rel(ours, theirs) -> float:
    """``max |ours - theirs| / max |theirs|`` (absolute if ``theirs`` is all zero)."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    err = float(np.max(np.abs(a - b))) if b.size else 0.0
    return err / scale if scale > 0 else err


def rel_steps(ours, theirs, key) -> float:
    """The largest :func:`rel` of ``key`` over the recorded steps (inf if the step counts differ)."""
    if len(ours) != len(theirs):
        return float("inf")
    return max((rel(a[key], b[key]) for a, b in zip(ours, theirs)), default=0.0)


def missing(library) -> str | None:
    """The install command if a module ``library`` needs is missing, else None."""
    for mod in ("torch", *LIBRARIES[library]):
        try:
            importlib.import_module(mod)
        except ImportError:
            return INSTALL[library]
    return None


def version_notes() -> str:
    """Versions differing from those the cases were written for, as one note (empty if none)."""
    notes = []
    for mod, want in TESTED.items():
        try:
            have = importlib.import_module(mod).__version__.split("+")[0]
        except ImportError:
            continue
        if have != want:
            notes.append(f"{mod} {have} (cases written for {want})")
    return "; ".join(notes)


def run(libraries=None) -> tuple[list[Row], dict]:
    """Run the cases of ``libraries`` (default all); returns ``(rows, skipped {library: install command})``."""
    from purepg.verify import conformance_ppo, conformance_tianshou, conformance_trpo

    cases = {"sb3": conformance_ppo.CASES, "sb3-contrib": conformance_trpo.CASES, "tianshou": conformance_tianshou.CASES}
    rows, skipped = [], {}
    for lib in libraries or list(cases):
        if lib not in cases:
            _check.one_of(lib, "library", tuple(cases))
        why = missing(lib)
        if why:
            skipped[lib] = why
            continue
        for case in cases[lib]:
            rows.extend(case())
    return rows, skipped


def report(rows, skipped, as_json=False) -> str:
    """The table (or JSON) of ``rows`` and the skipped libraries."""
    if as_json:
        return json.dumps({"rows": [r._asdict() | {"ok": r.ok} for r in rows], "skipped": skipped,
                           "versions": version_notes()}, indent=2)
    lines = [f"{'case':<30} {'quantity':<38} {'rel. error':>10} {'tol':>8}  ok"]
    for r in rows:
        lines.append(f"{r.case:<30} {r.quantity:<38} {r.error:>10.2e} {r.tol:>8.0e}  {'yes' if r.ok else 'NO'}"
                     + (f"  ({r.note})" if r.note else ""))
    for lib, cmd in skipped.items():
        lines.append(f"{lib}: skipped, not installed ({cmd})")
    if version_notes():
        lines.append(f"versions: {version_notes()}")
    return "\n".join(lines)
