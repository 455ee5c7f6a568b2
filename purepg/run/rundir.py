"""The files of a run directory: checks of ``config.json``, ``progress.csv`` against the checkpoint, creation.

Every check raises :class:`RunDirError` (a ``ValueError``) with one line naming the file, the field or
row, and the fix. The contract of the directory is in :mod:`purepg.run.runner`.

``progress.csv`` on resume
--------------------------
A checkpoint at iteration ``I`` with ``S`` steps covers the header and rows ``1..I`` of ``progress.csv``
(rows after ``I``, written after the last checkpoint, are recomputed and dropped). Those rows must be
consecutive (row ``i`` has ``iteration == i``), have one value per column, and row ``I`` must have
``step == S``; the header must be the one the checkpoint recorded. A damaged header over intact rows is
repaired from the checkpoint; missing, repeated or damaged rows cannot be rebuilt, so the resume is refused.
"""
from __future__ import annotations

import csv
import io
import json
import os

from purepg.run import checkpoint, formats, lock
from purepg.run.lock import LOCK_NAME

RUN_FORMAT = formats.RUN_FORMAT   # the format written; older readable ones: purepg.run.formats
_TYPES = {"algo": (str,), "env_id": (str,), "seed": (int,), "total_steps": (int,), "config": (dict,),
          "purepg_version": (str,), "env_module": (str, type(None))}


class RunDirError(checkpoint.CheckpointError):
    """A run directory whose files are missing, damaged or inconsistent; or one that cannot be written."""


# --------------------------------------------------------------------------- config.json ----
def read_config(run_dir) -> dict:
    """``config.json`` of a run directory, with a clear error if it is missing or malformed."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise RunDirError(f"run directory {run_dir}: config.json is missing; expected a directory written by "
                          f"purepg train. Fix: check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"run directory {run_dir}: config.json is corrupt ({e}). Fix: restore it from a "
                          f"backup, or train the run again") from None
    except IsADirectoryError:
        raise RunDirError(f"run directory {run_dir}: config.json is a directory. Fix: check the path") from None
    if not isinstance(meta, dict):
        raise RunDirError(f"run directory {run_dir}: config.json holds a JSON {type(meta).__name__}, expected an "
                          f"object of fields (algo, env_id, seed, config, ...). Fix: restore it from a backup")
    try:
        meta = formats.upgrade(meta, run_dir)
    except ValueError as e:
        raise RunDirError(str(e)) from None
    meta.setdefault("env_module", None)
    for k, types in _TYPES.items():
        if k not in meta:
            raise RunDirError(f"run directory {run_dir}: config.json has no field {k!r}. Fix: restore it from a backup")
        if not isinstance(meta[k], types) or isinstance(meta[k], bool) or (k in ("seed", "total_steps") and meta[k] < 0):
            want = " or ".join("null" if t is type(None) else {"str": "a string", "int": "an integer >= 0",
                                                              "dict": "an object"}[t.__name__] for t in types)
            raise RunDirError(f"run directory {run_dir}: config.json field {k!r} is {json.dumps(meta[k])}, "
                              f"expected {want}. Fix: restore config.json from a backup")
    return meta


def write_config(run_dir, meta):
    checkpoint.atomic_write_bytes(os.path.join(run_dir, "config.json"),
                                  (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())


def check_same_run(ck, meta, run_dir):
    """The checkpoint's ``algo``, ``env_id`` and ``seed`` are those of ``config.json``."""
    for k in ("algo", "env_id", "seed"):
        if ck.get(k) != meta[k]:
            raise RunDirError(f"checkpoint {run_dir}/checkpoint.npz: field {k!r} is {ck.get(k)!r} but config.json "
                              f"says {meta[k]!r}; the files are from different runs. Fix: put the checkpoint back in "
                              f"its own run directory, or restore this run's checkpoint.npz")


# ------------------------------------------------------------------------------ creation ----
def _entries(d):
    return [n for n in os.listdir(d) if n != LOCK_NAME and not n.startswith(checkpoint.TMP_PREFIX)]


def check_new_dir(out_dir, force, locked=False):
    """Refuse an ``out_dir`` that is a file, a directory another process writes, or a non-empty one without ``force``.

    ``locked``: the caller holds the directory's lock (so it is not probed again).
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RunDirError(f"out_dir {out_dir}: exists and is a file, not a directory. Fix: choose another path "
                          f"for the run directory (--out)")
    if os.path.isdir(out_dir) and not locked:
        lock.check_free(out_dir)        # a run in progress is named as such, with its PID
    if os.path.isdir(out_dir) and _entries(out_dir) and not force:
        stopped = os.path.exists(os.path.join(out_dir, "config.json")) and \
            not os.path.exists(os.path.join(out_dir, "checkpoint.npz"))
        what = ("holds a run stopped before its first checkpoint, so nothing of it can be resumed" if stopped
                else "exists and is not empty; refusing to overwrite a run")
        raise RunDirError(f"out_dir {out_dir}: {what}. Fix: choose another directory, or pass --force to start over")


def clear_run_files(out_dir):
    """Delete the run files of ``out_dir`` (for ``force``); other files stay."""
    for name in ("progress.csv", "checkpoint.npz", "config.json"):
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            os.unlink(p)


def undo_new_dir(out_dir, created):
    """Remove what a run that failed before its first checkpoint wrote (and the directory if it made it)."""
    if os.path.exists(os.path.join(out_dir, "checkpoint.npz")):
        return
    clear_run_files(out_dir)
    checkpoint.remove_temp_files(out_dir)
    if created and not _entries(out_dir):
        lock = os.path.join(out_dir, LOCK_NAME)
        if os.path.exists(lock):
            os.unlink(lock)
        os.rmdir(out_dir)


def missing_checkpoint(run_dir):
    """The error of resuming a run directory that has ``config.json`` but no ``checkpoint.npz``."""
    rows = read_lines(os.path.join(run_dir, "progress.csv"))
    done = f" after {len(rows) - 1} logged iterations" if len(rows) > 1 else ""
    return RunDirError(f"run directory {run_dir}: checkpoint.npz is missing: the run was stopped{done} before its first "
                       f"checkpoint, so there is nothing to resume. Fix: start it again with purepg train --out "
                       f"{run_dir} --force (and the same options), with a smaller --checkpoint-every if runs get killed")


# ------------------------------------------------------------------------- progress.csv ----
def read_lines(path):
    try:
        with open(path, newline="") as f:
            return f.read().splitlines(keepends=True)
    except FileNotFoundError:
        return []


def format_row(header, row) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow([_fmt(row.get(k, float("nan"))) for k in header])
    return buf.getvalue().encode()


def _fmt(v):
    return repr(v) if isinstance(v, float) else str(v)


def append_progress(out_dir, row, header):
    """Append ``row`` to progress.csv (writing ``header`` first if it is None); return the header."""
    path = os.path.join(out_dir, "progress.csv")
    if header is None:
        header = list(row)
        checkpoint.atomic_write_bytes(path, _line(header))
    checkpoint.append_bytes(path, format_row(header, row))
    return header


def _line(values) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue().encode()


def _check_rows(path, header, lines, iteration, step):
    """Raise unless rows ``1..iteration`` of ``lines`` are consecutive, complete and end at ``step``."""
    i_col, s_col = header.index("iteration"), header.index("step")
    for i, text in enumerate(lines[1:1 + iteration], start=1):
        values = next(csv.reader([text]), [])
        ok = len(values) == len(header) and values[i_col].strip() == str(i)
        if not ok or (i == iteration and values[s_col].strip() != str(step)):
            got = values[i_col] if len(values) == len(header) else f"{len(values)} values for {len(header)} columns"
            want = f"iteration {i}" + (f" at step {step}" if i == iteration else "")
            raise RunDirError(f"{path}: row {i} does not match the checkpoint (expected {want}, got {got!r}): rows are "
                              f"missing, repeated or damaged and cannot be rebuilt. Fix: restore progress.csv from a "
                              f"backup, or start over with purepg train --force")
    if len(lines) - 1 < iteration:
        raise RunDirError(f"{path}: has {len(lines) - 1} rows but the checkpoint is at iteration {iteration}; rows "
                          f"{len(lines)}..{iteration} are missing and cannot be rebuilt. Fix: restore progress.csv "
                          f"from a backup, or start over with purepg train --force")


def check_progress(run_dir, iteration, step, header_ck, algo):
    """Validate progress.csv against a checkpoint at ``iteration`` / ``step``; keep the rows it covers.

    The columns of older run formats are renamed (:func:`purepg.run.formats.upgrade_columns` of ``algo``).

    Returns ``(header, note)``: the header to continue with (None if no row was written yet) and a line
    saying what was repaired or dropped (or None). Raises :class:`RunDirError` if rows cannot be trusted.
    """
    path = os.path.join(run_dir, "progress.csv")
    lines = read_lines(path)
    if iteration == 0:                            # stopped before the first iteration: keep no row
        header = formats.upgrade_columns(algo, next(csv.reader(lines[:1]))) if lines else None
        if lines:
            checkpoint.atomic_write_bytes(path, _line(header))
        return header, None
    if not lines:
        raise RunDirError(f"{path}: missing or empty but the checkpoint is at iteration {iteration}. Fix: restore "
                          f"progress.csv from a backup, or start over with purepg train --force")
    header, note = formats.upgrade_columns(algo, next(csv.reader(lines[:1]), [])), None
    if header_ck is not None and header != list(header_ck):
        header, note = list(header_ck), f"purepg: note: {path}: the header was damaged; repaired from the checkpoint"
    elif "iteration" not in header or "step" not in header:
        raise RunDirError(f"{path}: the header has no 'iteration' and 'step' columns (got {lines[0].strip()[:60]!r}). "
                          f"Fix: restore progress.csv from a backup")
    _check_rows(path, header, lines, iteration, step)
    checkpoint.atomic_write_bytes(path, _line(header) + "".join(lines[1:1 + iteration]).encode())
    extra = len(lines) - 1 - iteration
    if extra > 0 and note is None:
        note = (f"purepg: note: {path}: dropped the {extra} row(s) logged after the checkpoint (iteration "
                f"{iteration}); they are computed again")
    return header, note
