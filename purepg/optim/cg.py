"""Conjugate gradient on a matrix seen only through its products.

3. Conjugate gradient for ``A x = b`` (Hestenes & Stiefel 1952; Nocedal & Wright 2006, ch. 5)
---------------------------------------------------------------------------------------------
For symmetric positive definite ``A`` the solution minimises ``phi(x) = 1/2 x^T A x - b^T x``, whose
gradient is ``A x - b = -r``. Directions ``p_0, ..., p_{n-1}`` are *A-conjugate* if
``p_i^T A p_j = 0`` for ``i != j``; they are then linearly independent, and writing
``x* = sum_i a_i p_i`` and multiplying ``A x* = b`` by ``p_j^T`` gives every coefficient on its own:
``a_j = p_j^T b / p_j^T A p_j``. Minimising ``phi`` exactly along ``p_0``, then ``p_1``, ... picks
exactly these coefficients (the cross terms vanish by conjugacy), so after ``k`` steps ``x_k``
minimises ``phi`` over ``span{p_0..p_{k-1}}`` and after ``n`` steps over all of R^n: ``x_n = x*``.
That is why CG is exact in ``n`` steps in exact arithmetic. The directions are built on the fly from
``x_0 = 0``, ``r_0 = p_0 = b``::

    alpha_k = r_k^T r_k / p_k^T A p_k                                            (C1)
    x_{k+1} = x_k + alpha_k p_k,   r_{k+1} = r_k - alpha_k A p_k                 (C2)
    beta_k = r_{k+1}^T r_{k+1} / r_k^T r_k,   p_{k+1} = r_{k+1} + beta_k p_k     (C3)

Why (C1) and (C3): as ``x_{k+1}`` minimises ``phi`` on the span of ``p_0..p_k``, the gradient
``-r_{k+1}`` is orthogonal to that span, which also contains ``r_0..r_k``; so residuals are mutually
orthogonal and ``p_k^T r_k = r_k^T r_k``, which turns the exact line minimiser ``p_k^T r_k / p_k^T A p_k``
into (C1). Requiring ``p_{k+1}^T A p_k = 0`` gives ``beta_k = -r_{k+1}^T A p_k / p_k^T A p_k``, and
``A p_k = (r_k - r_{k+1}) / alpha_k`` with orthogonality turns it into (C3). Conjugacy to older ``p_j``
holds since ``A p_j`` lies in the span already orthogonal to ``r_{k+1}``.
*Curvature*: (C1) needs ``p_k^T A p_k > 0``. If it is ``<= 0``, ``phi`` is flat or unbounded below
along ``p_k`` and has no minimiser: ``A`` is not positive definite, and we stop and say so.
In floating point the directions slowly lose conjugacy, so ``n`` steps are exact only up to rounding.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from purepg import _check

# ----------------------------------------------------------------------------- 4. conjugate gradient


class CGResult(NamedTuple):
    """Outcome of :func:`conjugate_gradient`; see its docstring for the contract."""

    x: np.ndarray  # (n,)
    iterations: int
    converged: bool
    residual: float
    reason: str


def _cg_args(matvec, b, iters, tol, damping):
    _check.function(matvec, "matvec", "pass a function v -> A v")
    b = _check.as_vector(b, None, "b", fix="pass a finite right-hand side (a NaN in g usually means a NaN in the batch)")
    iters = _check.integer(iters, "iters", 1, "CG needs at least one iteration; TRPO uses 10")
    tol = _check.real(tol, "tol", 0.0, np.inf, fix="pass a relative tolerance such as 1e-10 (0 runs all iterations)")
    damping = _check.real(damping, "damping", 0.0, np.inf, fix="pass 0.0, or a small positive value such as 1e-3")
    return b, iters, tol, damping


CG_STOPS = ("relative", "absolute")


def conjugate_gradient(matvec: Callable, b, *, iters=10, tol=1e-10, damping=0.0, x0=None,
                       stop="relative") -> CGResult:
    """Solve ``(A + damping I) x = b`` by conjugate gradient, eqs. (C1)-(C3), from ``x_0 = 0`` or ``x0``.

    ``A`` is seen only through ``matvec(v) = A @ v``; it must be symmetric, and positive definite once
    damped, for CG to apply -- this is checked along every search direction.

    Stopping test: after each step, stop with ``converged=True`` as soon as
    ``||r_k||_2 <= tol * ||b||_2``, where ``r_k`` is the recursively updated residual (C2), equal to
    ``b - (A + damping I) x_k`` in exact arithmetic (no extra ``matvec``). The test is relative so that
    rescaling ``A`` and ``b`` (a Fisher averaged over N states, a normalised advantage) does not change
    how far CG goes. ``b = 0`` returns ``x = 0`` with ``converged=True`` and 0 iterations.

    Conventions (both as sb3-contrib ``common/utils.py`` ``conjugate_gradient_solver``): ``x0`` starts
    from a given point (sb3-contrib draws ``1e-4 * randn``), ``r_0 = b - (A + c I) x0``;
    ``stop="absolute"`` stops when ``||r_k||^2 < tol`` (squared, absolute: sb3-contrib's
    ``residual_tol``), also before the first step, instead of the relative test.

    Parameters
    ----------
    matvec : callable, (n,) -> (n,), ``v -> A v`` (e.g. ``lambda v: pol.fvp(theta, obs, v)``).
    b : (n,) finite right-hand side.  iters : int >= 1, maximum number of CG steps.
    tol : float >= 0, relative tolerance of the test above.  damping : float >= 0, ``c`` in ``A + c I``.
    x0 : (n,) start, optional (default zeros).  stop : ``"relative"`` (default) or ``"absolute"``.

    Returns
    -------
    CGResult(x, iterations, converged, residual, reason)
        x : (n,) the last iterate (never NaN). iterations : completed updates of ``x``.
        converged : True iff the stopping test passed. residual : ``||r_k||_2`` of the returned ``x``.
        reason : why CG stopped -- converged; iteration limit reached; non-positive curvature
        ``p^T (A + c I) p <= 0`` at step k (``A + c I`` is not positive definite: ``x`` is the iterate
        before that step); or ``matvec`` returned non-finite values.

    Raises
    ------
    ValueError : iters < 1, tol < 0, damping < 0, b not a finite vector, matvec returning a wrong shape.
    """
    b, iters, tol, damping = _cg_args(matvec, b, iters, tol, damping)
    if stop not in CG_STOPS:
        _check.fail("stop", f"one of {', '.join(CG_STOPS)}", repr(stop), "pick one of those; 'relative' is purepg's test")
    x, r = _start(matvec, b, damping, x0)  # (n,), (n,)  r_0 = b - (A + c I) x_0
    p = r.copy()  # (n,)
    rr = float(r @ r)
    threshold = tol * np.sqrt(rr) if stop == "relative" else np.sqrt(tol)
    if rr == 0.0 or (stop == "absolute" and rr < tol):
        return CGResult(x, 0, True, np.sqrt(rr), "converged: the start solves the system within tol")
    for k in range(iters):
        Ap = np.asarray(matvec(p), dtype=np.float64)  # (n,)
        if Ap.shape != b.shape:
            _check.fail("matvec", f"a vector of shape {b.shape}", Ap.shape, "it must return A @ v")
        Ap = Ap + damping * p  # (n,)
        if not np.all(np.isfinite(Ap)):
            return CGResult(x, k, False, np.sqrt(rr), f"matvec returned non-finite values at step {k}")
        pAp = float(p @ Ap)
        if pAp <= 0.0:
            return CGResult(x, k, False, np.sqrt(rr), f"non-positive curvature p^T (A + c I) p = {pAp:.3e} "
                            f"at step {k}: the matrix is not positive definite; increase damping")
        alpha = rr / pAp  # (C1)
        x = x + alpha * p  # (n,)  (C2)
        r = r - alpha * Ap  # (n,)
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= threshold if stop == "relative" else rr_new < tol:
            return CGResult(x, k + 1, True, np.sqrt(rr_new), f"converged: ||r|| <= tol ||b|| after {k + 1} steps")
        p = r + (rr_new / rr) * p  # (n,)  (C3); rr > 0 since the test above failed
        rr = rr_new
    return CGResult(x, iters, False, np.sqrt(rr), f"iteration limit reached ({iters} steps)")




def _start(matvec, b, damping, x0):
    """``(x_0, r_0)``: zeros and ``b``, or ``x0`` and ``b - (A + c I) x0``."""
    if x0 is None:
        return np.zeros_like(b), b.copy()
    x0 = _check.as_vector(x0, b.size, "x0", fix="pass a finite start of the shape of b, or None for zeros")
    return x0.copy(), b - (np.asarray(matvec(x0), dtype=np.float64) + damping * x0)
