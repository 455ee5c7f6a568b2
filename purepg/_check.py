"""Input validation shared by every module: one place that turns bad input into a clear ValueError.

Each message names the argument, what was expected and what was received, and after ``Fix:`` how
to fix the call.
"""
from __future__ import annotations

import numpy as np


def _as_float(x, name):
    if type(x) is np.ndarray and x.dtype == np.float64:        # the common case: only finiteness to check
        if np.isfinite(x).all():
            return x
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name}: expected a numeric array, got dtype {arr.dtype}. Fix: "
                         f"pass real numbers (convert with np.asarray({name}, dtype=float))")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected real numbers, got complex dtype {arr.dtype}. Fix: "
                         f"pass {name}.real if the imaginary part is meant to be zero")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name}: expected finite values, got {arr[tuple(bad)]} at index "
                         f"{tuple(int(i) for i in bad)}. Fix: remove or replace NaN/inf entries before the call")
    return arr


def as_vector(x, size, name, hint=None):
    """A finite float64 vector of length ``size``; ``hint`` replaces the default fix in the message."""
    arr = _as_float(x, name)
    if arr.ndim != 1 or arr.shape[0] != size:
        fix = hint or f"pass a 1-D array of length {size}"
        raise ValueError(f"{name}: expected shape ({size},), got {arr.shape}. Fix: {fix}")
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
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}. Fix: {fix}")
    return arr


def as_actions_discrete(a, n, n_actions, name="act"):
    """Integer actions in ``[0, n_actions)`` of shape (n,)."""
    arr = np.asarray(a)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}. Fix: pass one action index per state")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name}: expected integer actions, got dtype {arr.dtype}. Fix: "
                             f"pass whole action indices (e.g. {name}.astype(np.int64))")
    if arr.size and (arr.min() < 0 or arr.max() >= n_actions):
        bad = arr[(arr < 0) | (arr >= n_actions)][0]
        raise ValueError(f"{name}: expected actions in [0, {n_actions}), got {int(bad)}. Fix: "
                         f"actions index the policy's {n_actions} outputs")
    return arr.astype(np.int64, copy=False)


def positive(x, name):
    if not (np.isfinite(x) and x > 0):
        raise ValueError(f"{name}: expected a finite value > 0, got {x!r}. Fix: pass a positive number")
    return x


def in_unit_interval(x, name):
    if not (np.isfinite(x) and 0.0 <= x <= 1.0):
        raise ValueError(f"{name}: expected a value in [0, 1], got {x!r}. Fix: pass a number between 0 and 1")
    return x


# ----- configuration fields (algorithm Configs validate themselves with these) -------------------------
def non_negative(x, name):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not (np.isfinite(x) and x >= 0):
        raise ValueError(f"{name}: expected a finite value >= 0, got {x!r}. Fix: pass zero or a positive number")
    return x


def positive_int(x, name):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {x!r}. Fix: pass a whole number such as 1 or 10")
    return x


def in_open_unit_interval(x, name):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not 0.0 < x < 1.0:
        raise ValueError(f"{name}: expected a value in (0, 1), got {x!r}. Fix: pass a number strictly between 0 and 1")
    return x


def one_of(x, name, options):
    if x not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, got {x!r}. Fix: pick one of those")
    return x


def layer_widths(x, name):
    ok = isinstance(x, tuple) and all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1
                                      for h in x)
    if not ok:
        raise ValueError(f"{name}: expected a tuple of layer widths >= 1, got {x!r}. Fix: e.g. (64, 64), or () "
                         f"for a linear map")
    return x


INIT_SCHEMES = ("orthogonal", "torch")     # purepg.model.nn, "Initialisation"


def init_scheme(x, name):
    """``x`` if it names an initialisation scheme of :mod:`purepg.model.nn`, else ValueError naming ``name``."""
    if x not in INIT_SCHEMES:
        raise ValueError(f"{name}: expected one of {INIT_SCHEMES}, got {x!r}. Fix: pick one of those")
    return x


def common_config(c):
    """The fields every algorithm Config shares (:class:`purepg.algos.common.BaseConfig`)."""
    positive_int(c.num_envs, "num_envs")
    positive_int(c.num_steps, "num_steps")
    layer_widths(c.hidden, "hidden")
    layer_widths(c.vf_hidden, "vf_hidden")
    one_of(c.activation, "activation", ("tanh", "relu"))
    boolean(c.normalize_obs, "normalize_obs")
    boolean(c.normalize_reward, "normalize_reward")
    if isinstance(c.log_std_init, bool) or not isinstance(c.log_std_init, (int, float)) or not np.isfinite(c.log_std_init):
        raise ValueError(f"log_std_init: expected a finite number, got {c.log_std_init!r}. Fix: pass e.g. 0.0 (sigma = 1)")
    in_unit_interval(number(c.gamma, "gamma"), "gamma")
    one_of(c.init, "init", INIT_SCHEMES)


def divides_batch(c, name):
    """``getattr(c, name)`` must divide the batch ``N = num_envs * num_steps`` of config ``c``."""
    M, N = getattr(c, name), c.num_envs * c.num_steps
    if N % M:
        raise ValueError(f"{name}: expected a divisor of the batch N = num_envs * num_steps = {N}, got {M}. "
                         f"Fix: pass a divisor of {N}, e.g. {N} (full batch)")
    return M


def number(x, name):
    """``x`` if it is a real number (not a bool), else a TypeError naming ``name``."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(x).__name__} {x!r}. Fix: pass a number")
    return x


def boolean(x, name):
    if not isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {x!r}. Fix: pass a bool")
    return bool(x)


def positive_or_none(x, name):
    """``None`` (the feature is off) or a finite value > 0."""
    if x is None:
        return x
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not (np.isfinite(x) and x > 0):
        raise ValueError(f"{name}: expected None (off) or a finite value > 0, got {x!r}. Fix: pass a positive "
                         f"number, or None to turn it off")
    return x
