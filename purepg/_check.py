"""Input validation shared by every module: one place that turns bad input into a clear error.

Every message has one form, :func:`message`::

    ARG: expected EXPECTED, got RECEIVED. Fix: FIX

naming the argument (or config field), what was expected, what was received and how to fix the call.
A value of the wrong kind (a string where a real number belongs) raises TypeError, every other bad
value ValueError. :func:`field` checks a config field against the range written in its metadata
(:mod:`purepg.algos.fields`), so the documented range and the check are one string.
"""
from __future__ import annotations

import re

import numpy as np


def _as_float(x, name, fix=None):
    if type(x) is np.ndarray and x.dtype == np.float64:        # the common case: only finiteness to check
        if np.isfinite(x).all():
            return x
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        fail(name, "a numeric array", f"dtype {arr.dtype}",
             f"pass real numbers (convert with np.asarray({name}, dtype=float))")
    if np.issubdtype(arr.dtype, np.complexfloating):
        fail(name, "real numbers", f"complex dtype {arr.dtype}",
             f"pass {name}.real if the imaginary part is meant to be zero")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        fail(name, "finite values", f"{arr[bad]} at index {bad[0] if len(bad) == 1 else bad}",
             fix or "remove or replace NaN/inf entries before the call")
    return arr


def as_vector(x, size, name, hint=None, fix=None):
    """A finite float64 vector of length ``size`` (any length if None); ``hint`` replaces the default fix
    of a wrong shape, ``fix`` that of every error."""
    arr = _as_float(x, name, fix)
    if arr.ndim != 1 or (size is not None and arr.shape[0] != size):
        fail(name, f"shape ({'P' if size is None else size},)", arr.shape,
             fix or hint or f"pass a 1-D array of length {'P' if size is None else size}")
    return arr


def as_matrix(x, cols, name, rows=None):
    """A finite float64 matrix with ``cols`` columns (and ``rows`` rows if given)."""
    arr = _as_float(x, name)
    if arr.ndim != 2 or arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows):
        want = f"({rows if rows is not None else 'N'}, {cols})"
        if arr.ndim == 1 and arr.shape[0] == cols and rows in (None, 1):
            fix = f"for a single sample pass {name}[None], of shape (1, {cols})"
        elif rows is not None:
            fix = f"pass one row per sample of the batch ({rows} rows) and {cols} columns"
        else:
            fix = f"pass a 2-D array with one row per sample and {cols} columns"
        fail(name, f"shape {want}", arr.shape, fix)
    return arr


def as_actions_discrete(a, n, n_actions, name="act"):
    """Integer actions in ``[0, n_actions)`` of shape (n,)."""
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.shape[0] != n:
        fail(name, f"shape ({n},)", arr.shape, "pass one action index per state")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            fail(name, "integer actions", f"dtype {arr.dtype}",
                 f"pass whole action indices (e.g. {name}.astype(np.int64))")
    if arr.size and (arr.min() < 0 or arr.max() >= n_actions):
        bad = arr[(arr < 0) | (arr >= n_actions)][0]
        fail(name, f"actions in [0, {n_actions})", int(bad), f"actions index the policy's {n_actions} outputs")
    return arr.astype(np.int64, copy=False)


# ----- the message, and scalars ----------------------------------------------------------------------
def message(name, expected, got, fix):
    """``"ARG: expected EXPECTED, got RECEIVED. Fix: FIX"``: the one form of every input error."""
    return f"{name}: expected {expected}, got {got}. Fix: {fix}"


def fail(name, expected, got, fix, error=ValueError):
    """Raise ``error`` (ValueError, or TypeError for a value of the wrong kind) with :func:`message`."""
    raise error(message(name, expected, got, fix))


_REAL = (int, float, np.integer, np.floating)


def _condition(lo, hi, lo_open, hi_open):
    """``"> 0"``, ``">= 0"``, ``"<= 1"``, ``"in (0, 1]"`` or ``""`` (any finite number)."""
    if lo == -np.inf and hi == np.inf:
        return ""
    if hi == np.inf:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if lo == -np.inf:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def real(x, name, lo=-np.inf, hi=np.inf, *, lo_open=False, hi_open=False, fix=None, none_ok=False):
    """``float(x)`` for a finite real ``x`` in the interval ``lo .. hi`` (open ends as given).

    A non-number (or a bool) raises TypeError, a number outside the interval ValueError. With
    ``none_ok``, ``None`` (the feature is off) passes and is returned.
    """
    off = "None (off) or " if none_ok else ""
    if none_ok and x is None:
        return None
    cond = _condition(lo, hi, lo_open, hi_open)
    want = f"{off}a finite number{' ' + cond if cond else ''}"
    fix = fix or f"pass a number{' ' + cond if cond else ''}{', or None to turn it off' if none_ok else ''}"
    if isinstance(x, bool) or not isinstance(x, _REAL):
        fail(name, want, f"{type(x).__name__} {x!r}", fix, TypeError)
    if not (np.isfinite(x) and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)):
        fail(name, want, repr(x), fix)
    return float(x)


def integer(x, name, lo=1, fix=None, lo_is=""):
    """``int(x)`` for an integer ``x >= lo`` (not a bool), else ValueError; ``lo_is`` says what ``lo`` is."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < lo:
        fail(name, f"an integer >= {lo_is + ' = ' if lo_is else ''}{lo}", repr(x),
             fix or f"pass a whole number >= {lo}, such as {max(lo, 1)} or 10")
    return int(x)


def positive(x, name, fix=None):
    """A finite real ``x > 0``."""
    return real(x, name, 0.0, lo_open=True, fix=fix)


def non_negative(x, name, fix=None):
    """A finite real ``x >= 0``."""
    return real(x, name, 0.0, fix=fix)


def in_unit_interval(x, name, fix=None):
    """A real ``x`` in [0, 1] (a discount, a GAE parameter, a probability)."""
    return real(x, name, 0.0, 1.0, fix=fix)


def positive_int(x, name, fix=None):
    """An integer ``x >= 1``."""
    return integer(x, name, 1, fix)


def boolean(x, name):
    if not isinstance(x, (bool, np.bool_)):
        fail(name, "True or False", repr(x), "pass a bool")
    return bool(x)


def one_of(x, name, options):
    if x not in options:
        fail(name, f"one of {', '.join(map(repr, options))}", repr(x), "pick one of those")
    return x


def generator(rng, name="rng"):
    """``rng`` if it is a ``numpy.random.Generator`` (every random function takes one), else TypeError."""
    if not isinstance(rng, np.random.Generator):
        fail(name, "a numpy.random.Generator", type(rng).__name__, "pass numpy.random.default_rng(seed)", TypeError)
    return rng


def function(f, name, fix):
    """``f`` if it is callable, else TypeError."""
    if not callable(f):
        fail(name, "a callable", type(f).__name__, fix, TypeError)
    return f


def per_sample(x, name, n=None, like="logp_new"):
    """A finite float64 vector of one entry per sample: length ``n`` (that of ``like``), or any N >= 1."""
    arr = _as_float(x, name)
    if arr.ndim != 1 or arr.shape[0] == 0 or (n is not None and arr.shape[0] != n):
        want = "shape (N,) with N >= 1" if n is None else f"shape ({n},), one entry per sample like {like}"
        fail(name, want, arr.shape, f"pass a flat per-sample array (e.g. {name}.reshape(-1)) of matching length")
    return arr


# ----- configuration fields (algorithm Configs validate themselves with these) -------------------------
def layer_widths(x, name):
    ok = isinstance(x, tuple) and all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1
                                      for h in x)
    if not ok:
        fail(name, "a tuple of layer widths >= 1", repr(x), "e.g. (64, 64), or () for a linear map")
    return x


INIT_SCHEMES = ("orthogonal", "torch")     # purepg.model.nn, "Initialisation"


def init_scheme(x, name):
    """``x`` if it names an initialisation scheme of :mod:`purepg.model.nn`, else ValueError naming ``name``."""
    if x not in INIT_SCHEMES:
        fail(name, f"one of {INIT_SCHEMES}", repr(x), "pick one of those")
    return x


_INTERVAL = re.compile(r"([\[(])\s*([^,]+?)\s*,\s*([^\])]+?)\s*([\])])")
_INTEGER = re.compile(r"integer >= (-?\d+)")
BOOLEAN, WIDTHS = "true | false", "layer widths >= 1"


def field(x, name, spec, default=None):
    """Check config field ``name`` against its documented range ``spec`` (:mod:`purepg.algos.fields`).

    ``spec`` is one of: an interval ``"(0, 1]"``, ``"[0, inf)"`` (real numbers; ``inf`` allowed as an
    open end), ``"integer >= 1"``, ``"true | false"``, ``"layer widths >= 1"``, a choice ``"a | b | c"``,
    or any of them after ``"None or "`` (``None`` turns the feature off).
    """
    none_ok = spec.startswith("None or ")
    spec = spec[len("None or "):] if none_ok else spec
    if none_ok and x is None:
        return x
    if (m := _INTERVAL.fullmatch(spec)):
        lo, hi = float(m[2]), float(m[3])
        cond = _condition(lo, hi, m[1] == "(", m[4] == ")")
        fix = f"pass a number {cond}{', or None to turn it off' if none_ok else ''} (default {default!r})"
        return real(x, name, lo, hi, lo_open=m[1] == "(", hi_open=m[4] == ")", fix=fix, none_ok=none_ok)
    if (m := _INTEGER.fullmatch(spec)):
        return integer(x, name, int(m[1]))
    if spec == BOOLEAN:
        return boolean(x, name)
    if spec == WIDTHS:
        return layer_widths(x, name)
    if " | " in spec:
        return one_of(x, name, tuple(spec.split(" | ")))
    raise AssertionError(f"field {name}: range {spec!r} is not one purepg.algos.fields can check")


def divides_batch(c, name):
    """``getattr(c, name)`` must divide the batch ``N = num_envs * num_steps`` of config ``c``."""
    M, N = getattr(c, name), c.num_envs * c.num_steps
    if N % M:
        fail(name, f"a divisor of the batch N = num_envs * num_steps = {N}", M,
             f"pass a divisor of {N}, e.g. {N} (full batch)")
    return M


def real_array(x, name, ndims):
    """float64 array with ``ndim`` in ``ndims`` and only finite entries, else an error naming ``name``."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected an array of real numbers, got dtype {a.dtype}. "
                        "Fix: pass a float64 array.")
    if a.ndim not in ndims:
        raise ValueError(f"{name}: expected {' or '.join(map(str, ndims))} dimension(s), "
                         f"got shape {a.shape}. Fix: reshape it to the documented layout.")
    a = np.ascontiguousarray(a, dtype=np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: expected finite values, got {a[idx]} at index {idx}. Fix: remove or "
                         "replace non-finite entries (check the environment or the value network).")
    return a


def same_shape(a, name, ref_name, shape):
    """An error naming ``name`` unless ``a.shape == shape`` (the shape of ``ref_name``)."""
    if a.shape != shape:
        raise ValueError(f"{name}: expected the shape of {ref_name}, {shape}, got {a.shape}. "
                         f"Fix: pass one entry per entry of {ref_name}.")
