"""Checkpoints: one ``.npz`` file written atomically, read back with field-by-field checks.

A checkpoint is a flat ``{key: ndarray}`` mapping stored as :func:`numpy.savez` stores it (no pickle, so a
checkpoint cannot execute code when loaded; written by :func:`purepg.run.npz.archive`, the same archive in
one pass). Nested state is flattened with ``/`` in keys, and a
:class:`purepg.optim.AdamState` (or any NamedTuple of arrays listed in :data:`NAMEDTUPLES`) is stored
as its fields under ``key:TypeName.field``.

Atomic write: the bytes go to a temporary file in the same directory, are flushed and ``fsync``-ed,
then ``os.replace`` renames it over the target (atomic on POSIX), and the directory is ``fsync``-ed.
A crash at any point leaves either the previous checkpoint or the new one, never a torn file; the
temporary file of a killed write (``.tmp-*``) is deleted by the next run (:func:`remove_temp_files`).
Periodic checkpoints are written on a background thread (:class:`BackgroundWriter`).
"""
from __future__ import annotations

import concurrent.futures
import errno
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

from purepg.optim import AdamState
from purepg.run import npz

FORMAT = "purepg-checkpoint-1"
TMP_PREFIX = ".tmp-"      # temporary files of atomic writes, in the target's directory
NAMEDTUPLES = {"AdamState": AdamState}


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or from another format."""


def _write_all(f, data: bytes):
    """``f.write(data)``: every write of a run directory goes through here (tests inject ENOSPC)."""
    f.write(data)


class DiskFullError(OSError):
    """A write that failed for lack of space, reported with the file, the size and the free space."""

    def __str__(self):
        return self.args[0]


def _size(n):
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


def write_error(path, nbytes, e):
    """:class:`DiskFullError` for an ``ENOSPC`` / ``EDQUOT`` error ``e`` of writing ``path``, else ``e``."""
    if getattr(e, "errno", None) not in (errno.ENOSPC, errno.EDQUOT):
        return e
    d = os.path.dirname(os.path.abspath(path))
    try:
        free = _size(shutil.disk_usage(d).free)
    except OSError:
        free = "unknown"
    return DiskFullError(f"disk full: writing {path} ({_size(nbytes)}) failed ({os.strerror(e.errno)}); free space "
                         f"on its filesystem: {free}. The previous version of the file is kept. Fix: free disk space "
                         f"there (or move the run directory to a larger disk), then run the command again; purepg "
                         f"resume {d} continues a run from its last checkpoint")


def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def file_mode(path):
    """The mode a file written at ``path`` gets: the existing file's, else ``0o666`` less the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename + directory fsync).

    The file keeps the mode of the file it replaces (a new one gets ``0o666`` less the umask, as
    ``open`` would give it), so rewriting never changes a run directory's modes. A write that fails
    for lack of space raises :class:`DiskFullError` naming the file and the free space.
    """
    d = os.path.dirname(os.path.abspath(path))
    mode = file_mode(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=TMP_PREFIX, suffix=os.path.basename(path))
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        err = write_error(path, len(data), e)
        if err is not e:
            raise err from None
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def append_bytes(path, data: bytes):
    """Append ``data`` to ``path`` (created if missing); lack of space raises :class:`DiskFullError`."""
    try:
        with open(path, "ab") as f:
            _write_all(f, data)
    except OSError as e:
        err = write_error(path, len(data), e)
        if err is not e:
            raise err from None
        raise


def remove_temp_files(d) -> list:
    """Delete the temporary files that writes killed before their rename left in ``d``; their names.

    Only call this while holding the directory's lock (:mod:`purepg.run.lock`), when no write is in flight.
    """
    gone = []
    for name in sorted(os.listdir(d)):
        if name.startswith(TMP_PREFIX):
            try:
                os.unlink(os.path.join(d, name))
                gone.append(name)
            except FileNotFoundError:
                pass
    return gone


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
    atomic_write_bytes(path, npz.archive(flat))          # numpy.savez's archive, in one pass


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


class BackgroundWriter:
    """Checkpoints written by :func:`save` on a background thread, one at a time, in order.

    A checkpoint costs a few milliseconds of ``fsync``, which training does not need to wait for:
    :meth:`submit` hands ``save(path, tree, meta)`` (a snapshot) to the thread after waiting for the
    previous write, so writes never overlap. :meth:`poll`, called once per iteration, re-raises the
    error of a finished write at once (a full disk is reported at the write that failed, not one
    interval later); :meth:`close` waits for the last write.
    """

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="purepg-checkpoint")
        self.pending = None

    def submit(self, path, tree, meta):
        self.wait()
        self.pending = self.pool.submit(save, path, tree, meta)

    def poll(self):
        if self.pending is not None and self.pending.done():
            self.wait()

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
