"""Running mean and variance of observations, and the normalisation they define.

Statistics of a set
-------------------
For observations ``x_1, ..., x_n`` in ``R^d`` keep, per coordinate,

    n,   mean = (1/n) sum_i x_i,   var = (1/n) sum_i (x_i - mean)^2        (population variance)

as a :class:`RunningStats` ``(count, mean, var)``. The empty set is ``count = 0``; its ``mean`` and
``var`` are then placeholders (0 and 1) that carry no weight in the merge below.

Merging two sets (Chan, Golub & LeVeque 1979)
---------------------------------------------
Let set ``A`` have ``(n_a, mean_a, var_a)`` and set ``B`` have ``(n_b, mean_b, var_b)``, and write
``M2 = n * var`` for the sum of squared deviations. With ``n = n_a + n_b`` and
``delta = mean_b - mean_a``:

    mean = mean_a + delta * n_b / n                                                    (1)
    M2   = M2_a + M2_b + delta^2 * n_a * n_b / n                                       (2)
    var  = M2 / n                                                                      (3)

(1) is the weighted mean ``(n_a mean_a + n_b mean_b) / n`` rewritten around ``mean_a``. For (2), split
``sum_{i in A} (x_i - mean)^2 = M2_a + n_a (mean_a - mean)^2`` and likewise for ``B``; by (1),
``mean_a - mean = -delta n_b / n`` and ``mean_b - mean = delta n_a / n``, so the two extra terms add
up to ``delta^2 (n_a n_b^2 + n_b n_a^2) / n^2 = delta^2 n_a n_b / n``. Nothing is subtracted from a
large sum of squares, so the formula stays accurate when ``|mean| >> std`` (unlike
``E[x^2] - E[x]^2``). If ``n_a = 0``, (1)-(3) give exactly ``(n_b, mean_b, var_b)``: the placeholder
statistics of the empty set drop out. :func:`update` merges the statistics of a new batch into the
running ones, so folding batches one at a time equals computing over all of them at once.

Normalisation
-------------
    z = clip((x - mean) / sqrt(var + VAR_FLOOR), -clip, clip)                           (4)

``VAR_FLOOR = 1e-8`` is part of the definition, not a hidden safeguard: a coordinate that has been
constant so far has ``var = 0`` exactly (e.g. a flag that has not yet changed), and (4) must still
be finite; with the floor it maps that coordinate to ``(x - mean) * 1e4``, i.e. to 0 while it stays
constant and to ``+-clip`` once it moves. The value is the ``epsilon`` of OpenAI Baselines'
``RunningMeanStd`` / ``VecNormalize`` (and Stable-Baselines3's), so normalised observations match
those implementations given the same statistics. The clip (default 10) bounds what the policy sees
when an observation is far outside everything seen so far.

References
----------
Chan, T. F., Golub, G. H., LeVeque, R. J. (1979). Updating formulae and a pairwise algorithm for
computing sample variances. Stanford report STAN-CS-79-773, eqs. 1.5a-1.5b.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

VAR_FLOOR = 1e-8


class RunningStats(NamedTuple):
    """Statistics of the observations seen so far.

    Attributes
    ----------
    count : int
        ``n``, number of observations merged.
    mean : ndarray, shape (d,)
    var : ndarray, shape (d,)
        Population variance ``M2 / n`` (1 before any observation).
    """
    count: int
    mean: np.ndarray
    var: np.ndarray


def init(dim):
    """Statistics of the empty set in ``R^dim``: ``(0, zeros, ones)``."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim: expected an integer >= 1 (the observation size), got {dim!r}. "
                         f"Fix: pass obs_dim, e.g. init(4).")
    return RunningStats(0, np.zeros(int(dim)), np.ones(int(dim)))


def _check_x(state, x, name):
    x = np.asarray(x, dtype=np.float64)
    d = state.mean.shape[0]
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"{name}: expected shape (N, {d}) to match the statistics, got shape "
                         f"{x.shape}. Fix: pass a batch of observations, one per row.")
    return x


def merge(a, b):
    """Statistics of the union of two sets, eqs. (1)-(3).

    Parameters
    ----------
    a, b : RunningStats
        Same dimension ``d``.

    Returns
    -------
    RunningStats
    """
    n = a.count + b.count
    if n == 0:
        return a
    delta = b.mean - a.mean                                          # (d,)
    mean = a.mean + delta * (b.count / n)                            # (d,)  eq. (1)
    M2 = a.var * a.count + b.var * b.count + delta**2 * (a.count * b.count / n)  # (d,)  eq. (2)
    return RunningStats(n, mean, M2 / n)                             # eq. (3)


def update(state, x_batch):
    """Merge the statistics of ``x_batch`` (N, d) into ``state``; ``N = 0`` returns ``state``."""
    x = _check_x(state, x_batch, "x_batch")                          # (N, d)
    if x.shape[0] == 0:
        return state
    mean_b = x.mean(axis=0)                                          # (d,)
    var_b = ((x - mean_b) ** 2).mean(axis=0)                         # (d,)  two-pass, exact centring
    return merge(state, RunningStats(x.shape[0], mean_b, var_b))


def normalize(state, x, clip=10.0):
    """Eq. (4): ``clip((x - mean) / sqrt(var + VAR_FLOOR), -clip, clip)``.

    Parameters
    ----------
    state : RunningStats
    x : ndarray, shape (..., d)
    clip : float or None
        Positive bound; ``None`` disables clipping.

    Returns
    -------
    ndarray, shape (..., d), float64
    """
    if clip is not None and not (isinstance(clip, (int, float, np.floating)) and clip > 0):
        raise ValueError(f"clip: expected a positive number or None, got {clip!r}. "
                         f"Fix: use clip=10.0 (the default) or None to disable clipping.")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] != state.mean.shape[0]:
        raise ValueError(f"x: expected shape (..., {state.mean.shape[0]}), got {x.shape}. "
                         f"Fix: pass observations of the size the statistics were built for.")
    z = (x - state.mean) / np.sqrt(state.var + VAR_FLOOR)           # (..., d)
    return z if clip is None else np.clip(z, -clip, clip)


def to_dict(state):
    """``{"count", "mean", "var"}`` as arrays, for a checkpoint (``numpy.savez``-able)."""
    return {"count": np.array(state.count, dtype=np.int64), "mean": state.mean.copy(),
            "var": state.var.copy()}


def from_dict(d):
    """Inverse of :func:`to_dict`; ``ValueError`` naming the field if it is missing or invalid."""
    for key in ("count", "mean", "var"):
        if key not in d:
            raise ValueError(f"normaliser state: field {key!r} is missing, expected keys count, mean, "
                             f"var, got {sorted(d)}. Fix: save it with purepg.normalize.to_dict.")
    count = np.asarray(d["count"])
    mean, var = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["var"], dtype=np.float64)
    if count.shape != () or not np.issubdtype(count.dtype, np.integer) or count < 0:
        raise ValueError(f"normaliser state: field 'count' must be an integer >= 0, got {count!r}. "
                         f"Fix: the checkpoint is corrupt; save it again with purepg.normalize.to_dict.")
    if mean.ndim != 1 or var.shape != mean.shape or mean.size == 0:
        raise ValueError(f"normaliser state: fields 'mean' and 'var' must have one equal shape (d,), "
                         f"got {mean.shape} and {var.shape}. Fix: the checkpoint is corrupt; save it again.")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
        raise ValueError("normaliser state: fields 'mean' and 'var' must be finite with var >= 0, "
                         "got non-finite or negative values. Fix: the checkpoint is corrupt; save it again.")
    return RunningStats(int(count), mean.copy(), var.copy())
