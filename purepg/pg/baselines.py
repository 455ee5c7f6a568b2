r"""Baselines: constants subtracted from the return that leave the policy gradient unbiased.

The mean return (:func:`mean_baseline`) and the variance-optimal constant per parameter, for the total
return (:func:`optimal_baseline`) and for reward-to-go (:func:`optimal_baseline_rtg`).

Variance-optimal constant baseline
----------------------------------
Per parameter k, with ``g_k = sum_t d log pi(a_t|s_t) / d theta_k`` the estimator is
``X_k(b) = g_k (R - b)``. Because ``E[g_k] = 0`` (the score has mean zero, docs/math/reinforce.md), ``E[X_k(b)] = E[g_k R]`` for every b, so

    Var X_k(b) = E[g_k^2 (R - b)^2] - E[g_k R]^2,
    d Var / db = -2 E[g_k^2 (R - b)] = 0   =>   b_k = E[g_k^2 R] / E[g_k^2],             (1)

a minimum since ``d^2 Var / db^2 = 2 E[g_k^2] >= 0``. Written ``(sum grad log pi)^2`` (docs/math/baselines.md, eq. (3.2)), it is
this element-wise square, one b_k per parameter. If ``E[g_k^2] = 0`` then g_k = 0 almost surely,
X_k(b) = 0 for every b and any b is optimal: we return b_k = 0. With sample weights w the
expectations become weighted averages; (1) then minimises ``E_w[g_k^2 (R - b)^2]``, which is the
weighted variance up to a constant when ``E_w[g_k] = 0`` (true for exact enumeration weights).

Reward-to-go analogue: ``X_k(b) = sum_t g_tk (Q_t - b) = U_k - b S_k`` with ``S_k = sum_t g_tk`` and
``U_k = sum_t g_tk Q_t``. Again ``E[S_k] = 0``, so ``Var X_k(b) = E[(U_k - b S_k)^2] - E[U_k]^2`` and

    d Var / db = -2 E[S_k (U_k - b S_k)] = 0   =>   b_k = E[S_k U_k] / E[S_k^2].           (2)

If Q_t = R for every t, then U_k = S_k R and (2) reduces to (1).

Neither (1) nor (2) changes when ``g_k`` (or the weights) is multiplied by a constant, but their
products do leave float64's range where the scores are far from 1 (a score of 1e-161 squares to a
subnormal with 9 significant bits). Such parameters' scores, and weights, are first multiplied by the
power of two that brings their largest magnitude into [0.5, 1) -- exactly -- where it lies beyond
``2^+-250``; within that range the formulas run as written. ``tests/test_baselines.py`` checks both
against their exact rational values from 2^-1074 to 2^1000.

References
----------
Williams 1992, "Simple statistical gradient-following algorithms" (REINFORCE, baselines).
Greensmith, Bartlett & Baxter 2004, "Variance reduction techniques for gradient estimates in RL".
"""
import numpy as np

from purepg import _check
from purepg._floats import exponent, max_abs


def _weights(w, n):
    """Trajectory weights as given (not normalised): (n,), finite, >= 0, with a positive sum."""
    if w is None:
        return np.ones(n)
    w = _check.real_array(w, "weights", (1,))
    _check.same_shape(w, "weights", "the trajectory axis", (n,))
    if (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights: expected values >= 0 with a positive sum, got min {w.min()} and sum "
                         f"{w.sum()}. Fix: pass probabilities or counts of the trajectories.")
    return w


def mean_baseline(R, weights=None):
    """Mean return ``sum_i w_i R_i / sum_i w_i`` (plain mean without ``weights``); R is (n,), n >= 1."""
    R = _check.real_array(R, "R", (1,))
    if R.size == 0:
        raise ValueError("R: expected at least one return, got an empty array. Fix: pass one per trajectory.")
    w = _weights(weights, R.size)  # (n,)
    return float(w @ R / w.sum())


_FAR_EXPONENT = 250     # w g^2 R of magnitudes within 2^+-250 stays far inside float64's range


def _exponents_into_range(X, axis=0):
    """The power of two ``k`` per column of ``X`` (over ``axis``) that brings the column's largest magnitude
    into [0.5, 1) where it lies beyond ``2^+-250``, else 0 (:func:`purepg._floats.exponent`).

    (1) and (2) do not depend on the scale of ``g_k`` (nor of the weights): numerator and denominator
    scale alike. Their products ``w g^2 R`` underflow or overflow where ``w`` or ``|g_k|`` is far from 1,
    though -- a score of 1e-161 squares to a subnormal with 9 significant bits -- so such columns are
    rescaled first (:func:`_rescaled`), by a power of two: exactly. Within ``2^+-250`` nothing is done, and
    the results are eq. (1) and (2) as written, bit for bit."""
    e = exponent(X, axis)
    return np.where(np.abs(e) > _FAR_EXPONENT, -e, 0)


def _rescaled(X, k):
    """``X * 2^k`` (``k`` per column, exact), or ``X`` itself where every ``k`` is 0."""
    return np.ldexp(X, k) if k.any() else X


def _ratio_or_zero(num, den):
    """``num / den`` per parameter, and 0 where ``den == 0`` (the score is identically 0: any b is optimal)."""
    b = np.zeros_like(den)  # (P,)
    nz = den > 0
    b[nz] = num[nz] / den[nz]
    return b


def optimal_baseline(G, R, weights=None):
    """Variance-optimal constant baseline per parameter, ``b_k = E[g_k^2 R] / E[g_k^2]`` (eq. 1).

    Parameters
    ----------
    G : array_like, shape (n, P)
        Per trajectory, ``g = sum_t grad log pi(a_t|s_t)``.
    R : array_like, shape (n,)
        Per trajectory return.
    weights : array_like, shape (n,), optional
        Non-negative weights (e.g. exact trajectory probabilities); uniform if omitted.

    Returns
    -------
    b : ndarray, shape (P,)
        ``b_k = 0`` where ``E[g_k^2] = 0`` (then every b gives the same, zero, estimate).
    """
    G = _check.real_array(G, "G", (2,))
    R = _check.real_array(R, "R", (1,))
    _check.same_shape(R, "R", "G's trajectory axis", (G.shape[0],))
    if G.shape[0] == 0:
        raise ValueError("G: expected at least one trajectory, got none. Fix: pass a non-empty batch.")
    w = _weights(weights, G.shape[0])  # (n,)
    w = _rescaled(w, _exponents_into_range(w, None))  # exact; b does not depend on the scale of w
    G = _rescaled(G, _exponents_into_range(G))  # (n, P): g_k^2 neither underflows nor overflows
    G2 = G * G  # (n, P)
    return _ratio_or_zero(w @ (G2 * R[:, None]), w @ G2)


def _rtg_sums(scores, rtg):
    """Per trajectory ``S = sum_t g_t`` and ``U = sum_t g_t Q_t``, each (n, P), from a list or a padded array.

    Where some parameter's ``S`` lies beyond ``2^+-250`` (its scores are far from 1), the sums are made
    again from that parameter's scores rescaled by one power of two (:func:`_exponents_into_range`): (2)
    is unchanged, and ``S_k^2`` and ``g Q`` stay inside float64's range."""
    if isinstance(scores, (list, tuple)):
        if not isinstance(rtg, (list, tuple)) or len(rtg) != len(scores) or not scores:
            got = f"{len(rtg)} entries" if isinstance(rtg, (list, tuple)) else type(rtg).__name__
            raise ValueError(f"rtg: expected a list with one (T_i,) array per entry of scores "
                             f"({len(scores)} trajectories, at least 1), got {got}. Fix: pass matching lists.")
        gs, qs = [], []
        for i, (g, q) in enumerate(zip(scores, rtg)):
            gs.append(_check.real_array(g, f"scores[{i}]", (2,)))  # (T_i, P)
            qs.append(_check.real_array(q, f"rtg[{i}]", (1,)))  # (T_i,)
            _check.same_shape(qs[-1], f"rtg[{i}]", f"scores[{i}]'s time axis", (gs[-1].shape[0],))
        if len({g.shape[1] for g in gs}) > 1:
            raise ValueError(f"scores: expected one parameter count P in every trajectory, got "
                             f"{sorted({g.shape[1] for g in gs})}. Fix: pass scores of the same policy.")
        S, U = _sums(gs, qs)
        if np.any(_exponents_into_range(S)):           # extreme scores: rescale them, sum again
            k = _exponents_into_range(np.array([max_abs(g, 0) for g in gs]))
            S, U = _sums([_rescaled(g, k) for g in gs], qs)
        return S, U
    g = _check.real_array(scores, "scores", (3,))  # (n, T, P)
    q = _check.real_array(rtg, "rtg", (2,))  # (n, T)
    _check.same_shape(q, "rtg", "scores' first two axes", g.shape[:2])
    S, U = g.sum(axis=1), np.einsum("ntp,nt->np", g, q)
    if np.any(_exponents_into_range(S)):               # extreme scores: rescale them, sum again
        g = _rescaled(g, _exponents_into_range(g.reshape(-1, g.shape[2])))
        S, U = g.sum(axis=1), np.einsum("ntp,nt->np", g, q)
    return S, U


def _sums(gs, qs):
    """``(S (n, P), U (n, P))`` from the per-trajectory scores ``gs`` (T_i, P) and rewards-to-go ``qs`` (T_i,)."""
    S = [g.sum(axis=0) for g in gs]
    U = [q @ g for g, q in zip(gs, qs)]
    return np.array(S).reshape(len(S), -1), np.array(U).reshape(len(U), -1)


def optimal_baseline_rtg(scores, rtg, weights=None):
    """Variance-optimal constant baseline for the reward-to-go estimator, ``b_k = E[S_k U_k] / E[S_k^2]`` (eq. 2).

    Parameters
    ----------
    scores : list of (T_i, P) arrays, or array of shape (n, T, P)
        Per-step scores ``grad log pi(a_t|s_t)``. A padded array must hold zero rows on padding: a
        zero score contributes nothing to S or U, so no mask is needed.
    rtg : list of (T_i,) arrays, or array of shape (n, T)
        Reward-to-go Q_t (padding: any finite value).
    weights : array_like, shape (n,), optional

    Returns
    -------
    b : ndarray, shape (P,)
        ``b_k = 0`` where ``E[S_k^2] = 0``.
    """
    S, U = _rtg_sums(scores, rtg)  # (n, P), (n, P)
    if S.shape[0] == 0:
        raise ValueError("scores: expected at least one trajectory, got 0. Fix: pass a non-empty batch.")
    w = _weights(weights, S.shape[0])  # (n,)
    w = _rescaled(w, _exponents_into_range(w, None))  # exact; b does not depend on the scale of w
    return _ratio_or_zero(w @ (S * U), w @ (S * S))
