"""Checkpoints: one ``.npz`` file written atomically, read back with field-by-field checks.

A checkpoint is a flat ``{key: ndarray}`` mapping stored with :func:`numpy.savez` (no pickle, so a
checkpoint cannot execute code when loaded). Nested state is flattened with ``/`` in keys, and a
:class:`purepg.optim.AdamState` (or any NamedTuple of arrays listed in :data:`NAMEDTUPLES`) is stored
as its fields under ``key:TypeName.field``.

Atomic write: the bytes go to a temporary file in the same directory, are flushed and ``fsync``-ed,
then ``os.replace`` renames it over the target (atomic on POSIX), and the directory is ``fsync``-ed.
A crash at any point leaves either the previous checkpoint or the new one, never a torn file.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import numpy as np

from purepg.optim import AdamState

FORMAT = "purepg-checkpoint-1"
NAMEDTUPLES = {"AdamState": AdamState}


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or from another format."""


def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename + directory fsync)."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def flatten(tree: dict, prefix="") -> dict:
    """``{"a": {"b": x}, "opt": AdamState(...)}`` -> ``{"a/b": x, "opt:AdamState.m": ..., ...}``."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "/"))
        elif isinstance(v, tuple) and type(v).__name__ in NAMEDTUPLES:
            for f in v._fields:
                out[f"{key}:{type(v).__name__}.{f}"] = np.asarray(getattr(v, f))
        else:
            out[key] = np.asarray(v)
    return out


def unflatten(flat: dict) -> dict:
    """Inverse of :func:`flatten`. 0-d arrays come back as Python scalars."""
    tree, tuples = {}, {}
    for key, v in flat.items():
        v = v.item() if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "biuf" else v
        if ":" in key:
            key, spec = key.split(":", 1)
            tname, field = spec.split(".", 1)
            tuples.setdefault((key, tname), {})[field] = v
            continue
        _put(tree, key, v)
    for (key, tname), fields in tuples.items():
        _put(tree, key, NAMEDTUPLES[tname](**fields))
    return tree


def _put(tree, key, v):
    *parents, last = key.split("/")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[last] = v


def save(path, tree: dict, meta: dict):
    """Save ``tree`` (nested dict of arrays / scalars / AdamState) and a JSON ``meta`` dict atomically."""
    flat = flatten(tree)
    flat["__format__"] = np.array(FORMAT)
    flat["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    buf = io.BytesIO()
    np.savez(buf, **flat)
    atomic_write_bytes(path, buf.getvalue())


def load(path, required=()) -> tuple[dict, dict]:
    """Read a checkpoint: ``(tree, meta)``. Raises :class:`CheckpointError` naming what is wrong.

    ``required`` lists top-level keys that must be present (e.g. ``("algo", "rollout")``).
    """
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path}: no such file; expected a run directory written by purepg train")
    try:
        with np.load(path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot be read ({type(e).__name__}: {e}); the file is "
                              f"truncated or corrupt. Fix: restore it from a backup or start a new run") from None
    fmt = str(flat.pop("__format__", np.array("<missing>")))
    if fmt != FORMAT:
        raise CheckpointError(f"checkpoint {path}: field __format__ is {fmt!r}, expected {FORMAT!r}; it was "
                              f"written by another purepg version whose format differs")
    try:
        meta = json.loads(str(flat.pop("__meta__")))
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {path}: field __meta__ is missing or corrupt ({e})") from None
    tree = unflatten(flat)
    for k in required:
        if k not in tree:
            raise CheckpointError(f"checkpoint {path}: field {k!r} is missing; found {sorted(tree)}")
    return tree, meta
