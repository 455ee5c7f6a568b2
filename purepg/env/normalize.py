"""Running mean and variance of observations, the normalisation they define, and reward scaling.

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

Reward scaling
--------------
Rewards are not normalised like observations: subtracting a mean reward would change which policy is
optimal (a constant per step rewards long or short episodes). They are *scaled*: each copy ``e`` keeps
the discounted return of its running episode, and every reward is divided by the running standard
deviation of those returns::

    R_t^e = gamma R_{t-1}^e + r_t^e         (R = 0 at the start of each episode)              (5)
    sigma_t^2 = var of every R_s^e, s <= t  (the statistics above, d = 1, merged each step)   (6)
    r~_t^e = clip(r_t^e / sqrt(sigma_t^2 + VAR_FLOOR), -clip, clip)                           (7)

so the returns the critic regresses on stay near unit scale whatever the reward's units ("reward
scaling", Engstrom et al. 2020, "Implementation matters in deep policy gradients", sec. 3 and
appendix A.2; ``VecNormalize(norm_reward=True)`` in OpenAI Baselines and Stable-Baselines3). Dividing
by a constant does not change the optimal policy; ``sigma`` does drift while it learns, which is the
price of the method. The order within a step is that of ``VecNormalize``: update (5), merge into (6),
scale by (7), then set ``R^e = 0`` for the copies whose episode ended (terminated or truncated).
``VecNormalize`` starts its statistics at ``count = 1e-4``, ``var = 1``; purepg uses the exact
statistics of the returns seen (``count = 0``), so the first scales differ slightly.

References
----------
Engstrom, L., Ilyas, A., Santurkar, S., Tsipras, D., Janoos, F., Rudolph, L., Madry, A. (2020).
Implementation matters in deep RL: a case study on PPO and TRPO. ICLR 2020.

Chan, T. F., Golub, G. H., LeVeque, R. J. (1979). Updating formulae and a pairwise algorithm for
computing sample variances. Stanford report STAN-CS-79-773, eqs. 1.5a-1.5b.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from purepg import _check

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
    _check.positive_int(dim, "dim", "pass obs_dim (the observation size), e.g. init(4)")
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
            _check.fail("normaliser state", "the keys count, mean, var", sorted(d),
                        "save it with purepg.env.normalize.to_dict")
    count = np.asarray(d["count"])
    mean, var = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["var"], dtype=np.float64)
    if count.shape != () or not np.issubdtype(count.dtype, np.integer) or count < 0:
        _check.fail("normaliser state: count", "an integer >= 0", repr(count),
                    "the checkpoint is corrupt; save it again with purepg.env.normalize.to_dict")
    if mean.ndim != 1 or var.shape != mean.shape or mean.size == 0:
        _check.fail("normaliser state: mean, var", "one equal shape (d,)", f"{mean.shape} and {var.shape}",
                    "the checkpoint is corrupt; save it again")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
        _check.fail("normaliser state: mean, var", "finite values with var >= 0", "non-finite or negative values",
                    "the checkpoint is corrupt; save it again")
    return RunningStats(int(count), mean.copy(), var.copy())


# ----------------------------------------------------------------------------- reward scaling
class ReturnScale(NamedTuple):
    """State of reward scaling, eqs. (5)-(7).

    Attributes
    ----------
    stats : RunningStats
        Statistics (d = 1) of every discounted return ``R_t^e`` seen so far, eq. (6).
    ret : ndarray, shape (E,)
        ``R^e`` of each copy's running episode, eq. (5).
    gamma : float
        The discount of eq. (5) (the algorithm's ``gamma``).
    """
    stats: RunningStats
    ret: np.ndarray
    gamma: float


def return_scale_init(num_envs, gamma):
    """Reward scaling before any step: no statistics, ``R^e = 0`` for ``num_envs`` copies."""
    _check.positive_int(num_envs, "num_envs", "pass the number of environment copies")
    _check.in_unit_interval(gamma, "gamma", "pass the algorithm's discount factor")
    return ReturnScale(init(1), np.zeros(int(num_envs)), float(gamma))


def scale_rewards(rs, r, done, clip=10.0, frozen=False):
    """One step of eqs. (5)-(7): ``(new ReturnScale, scaled rewards (E,))``.

    Parameters
    ----------
    rs : ReturnScale
    r : ndarray, shape (E,)
        Raw rewards of this step, one per copy.
    done : ndarray of bool, shape (E,)
        Copies whose episode ended at this step (terminated or truncated): their ``R`` restarts at 0
        after this step's rewards are scaled.
    clip : float
        Bound of eq. (7).
    frozen : bool
        Scale by the statistics as they are, without merging this step's returns (e.g. evaluation).
    """
    r = np.asarray(r, dtype=np.float64)
    if r.shape != rs.ret.shape or np.shape(done) != rs.ret.shape:
        raise ValueError(f"r, done: expected shape {rs.ret.shape} (one per copy), got {r.shape} and "
                         f"{np.shape(done)}. Fix: pass one reward and one done flag per environment copy.")
    ret = rs.gamma * rs.ret + r                                      # (E,)  eq. (5)
    stats = rs.stats if frozen else update(rs.stats, ret[:, None])  # eq. (6)
    scaled = np.clip(r / np.sqrt(stats.var[0] + VAR_FLOOR), -clip, clip)   # (E,)  eq. (7)
    return ReturnScale(stats, np.where(done, 0.0, ret), rs.gamma), scaled


def return_scale_to_dict(rs):
    """:class:`ReturnScale` as arrays for a checkpoint (``numpy.savez``-able)."""
    return {**to_dict(rs.stats), "ret": rs.ret.copy(), "gamma": np.array(rs.gamma)}


def return_scale_from_dict(d):
    """Inverse of :func:`return_scale_to_dict`; ``ValueError`` naming a missing or invalid field."""
    for key in ("ret", "gamma"):
        if key not in d:
            _check.fail("reward-scaling state", "the keys ret, gamma", sorted(d),
                        "the checkpoint is corrupt; save it with purepg.env.normalize.return_scale_to_dict")
    stats, ret = from_dict(d), np.asarray(d["ret"], dtype=np.float64)
    if stats.mean.shape != (1,) or ret.ndim != 1 or not np.all(np.isfinite(ret)):
        raise ValueError(f"reward-scaling state: expected 1-D statistics and a finite (E,) field 'ret', got "
                         f"{stats.mean.shape} and {ret.shape}. Fix: the checkpoint is corrupt; save it again.")
    return ReturnScale(stats, ret.copy(), float(np.asarray(d["gamma"])))
