"""The trust-region step: the natural-gradient direction scaled to a KL radius, and the backtracking line search.

4. The natural-gradient step (Kakade 2002; Schulman et al. 2015, appendix C)
----------------------------------------------------------------------------
Expand ``KL(pi_theta || pi_{theta+d})`` around ``d = 0``: its value and gradient vanish there (a minimum)
and its Hessian is the Fisher ``F``, so ``KL ~ 1/2 d^T F d``. Maximise the linear model of the
objective inside that ellipsoid: ``max_d g^T d  s.t.  1/2 d^T F d <= delta``. The Lagrangian
``g^T d - mu (1/2 d^T F d - delta)`` is stationary at ``d = F^{-1} g / mu``; the objective is linear,
so the constraint is active, ``1/(2 mu^2) g^T F^{-1} g = delta``, ``mu = sqrt(g^T F^{-1} g / (2 delta))``::

    d = sqrt(2 delta / g^T F^{-1} g) F^{-1} g,     g^T d = sqrt(2 delta g^T F^{-1} g)     (N1)

Here ``x ~ (F + c I)^{-1} g`` comes from Cholesky or CG, and the scale uses ``x^T (F + c I) x``. For an
exact solve that is ``g^T x``; for a CG iterate too, in exact arithmetic (``r_k`` is orthogonal to the
Krylov space holding ``x_k``, so ``x_k^T (b - A x_k) = 0``). In float64 CG's loss of orthogonality makes
the two differ (by up to 1e-3 relative at condition 1e4, measured), and only ``x^T (F + c I) x`` keeps
``1/2 d^T (F + c I) d = delta`` to rounding. It costs one more ``matvec``, and it is what sb3-contrib's
TRPO does (``sb3_contrib/trpo/trpo.py`` divides by ``x^T (H + c I) x``), so steps can be compared.

5. Backtracking line search (Nocedal & Wright 2006, Algorithm 3.1)
------------------------------------------------------------------
(N1) trusts a quadratic KL model and a linear objective model. Both are checked on the true functions at
``theta + ratio^j d``, ``j = 0, 1, ...``: the first fraction whose mean KL is ``<= delta`` and whose
surrogate improves (by at least ``accept_ratio * ratio^j * g^T d`` when that prediction is given) wins.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from purepg import _check
from purepg._floats import exponent
from purepg.optim.cg import conjugate_gradient

# ----------------------------------------------------------------------------- 5. natural step


class NaturalStep(NamedTuple):
    """Outcome of :func:`natural_step`. On failure ``ok`` is False, ``step`` is zero and ``reason`` says why."""

    step: np.ndarray  # (P,)  d of (N1)
    x: np.ndarray  # (P,)  (F + c I)^{-1} g
    gFg: float  # g^T x
    expected_improve: float  # g^T step = sqrt(2 delta g^T F^-1 g) for an exact solve
    ok: bool
    reason: str
    solver: str  # "cholesky" or "cg"
    iterations: int  # CG steps (0 for Cholesky)
    residual: float  # ||g - (F + c I) x||_2 (CG: the recursive residual)


def _substitute(L, y, lower):
    """Solve ``L z = y`` for triangular ``L`` with positive diagonal (forward or back substitution)."""
    n = y.shape[0]
    z = np.zeros(n)  # (n,)
    order = range(n) if lower else range(n - 1, -1, -1)
    for i in order:
        z[i] = (y[i] - L[i] @ z) / L[i, i]  # z[i] is still 0 and L[i] is 0 off the triangle
    return z


def _spd_matrix(F, P):
    F = np.asarray(F, dtype=np.float64)
    fix = "pass the (P, P) Fisher matrix of pol.fisher(theta, obs)"
    if F.shape != (P, P):
        _check.fail("F", f"shape ({P}, {P}) to match g", F.shape, fix)
    if not np.all(np.isfinite(F)):
        _check.fail("F", "finite values", "non-finite entries", fix)
    # 1e-10 relative: far above the rounding of a sum of outer products, far below a real asymmetry.
    if np.max(np.abs(F - F.T), initial=0.0) > 1e-10 * np.max(np.abs(F), initial=0.0):
        _check.fail("F", "a symmetric matrix", f"max |F - F^T| = {np.max(np.abs(F - F.T)):.3e}", fix)
    return F


def solve_spd(F, g, damping=0.0) -> np.ndarray:
    """``x = (F + damping I)^{-1} g`` by Cholesky ``F + c I = L L^T``, then two triangular solves.

    Raises ``numpy.linalg.LinAlgError`` if ``F + damping I`` is not positive definite, ``ValueError`` on
    bad input (non-square, asymmetric, non-finite ``F``; non-finite ``g``; ``damping < 0``).
    """
    g = _check.as_vector(g, None, "g", fix="pass the finite policy gradient")
    F = _spd_matrix(F, g.size)
    damping = _check.real(damping, "damping", 0.0, np.inf, fix="pass 0.0, or a small positive value such as 1e-3")
    try:
        L = np.linalg.cholesky(F + damping * np.eye(g.size))  # (P, P) lower
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(f"F + {damping} I is not positive definite (Cholesky failed); "
                                    "increase damping") from None
    return _substitute(L.T, _substitute(L, g, lower=True), lower=False)  # (P,)


def _failed(g, reason, solver, iterations=0, x=None, residual=None):
    zero = np.zeros_like(g)  # (P,)
    res = float(np.linalg.norm(g)) if residual is None else residual
    return NaturalStep(zero, zero.copy() if x is None else x, 0.0, 0.0, False, reason, solver, iterations, res)


def natural_step(g, F_or_fvp, delta, *, damping=0.0, solver=None, cg_iters=10, cg_tol=1e-10, cg_x0=None,
                 cg_stop="relative") -> NaturalStep:
    """The natural-gradient step (N1) ``d = sqrt(2 delta / x^T (F + c I) x) x``, ``x = (F + c I)^{-1} g``.

    ``g`` is the gradient of the objective to MAXIMISE. ``F_or_fvp`` is the (P, P) Fisher (solved by
    Cholesky, or by CG with ``solver="cg"``) or a callable ``v -> F v`` (solved by CG). The result
    satisfies ``1/2 d^T (F + c I) d = delta``. If ``F + c I`` is not positive definite (Cholesky
    fails, CG meets non-positive curvature, or ``g^T x <= 0``), or ``g = 0``, nothing is NaN: ``ok`` is
    False, ``step`` is zero and ``reason`` says why. CG stopping at ``cg_iters`` still gives ``ok=True``.

    ``cg_x0`` and ``cg_stop`` are :func:`purepg.optim.conjugate_gradient`'s ``x0`` and ``stop``.

    A gradient whose largest entry is beyond ``2^+-500`` is first multiplied by the power of two that brings
    it into [0.5, 1) (exact): ``x`` would otherwise underflow (a subnormal ``g``: ``F^-1 g`` rounds to 0)
    or overflow, and (N1) does not depend on the scale of ``g``. ``x``, ``gFg``, ``expected_improve`` and
    ``residual`` are reported for ``g`` itself. Within that range nothing is rescaled.

    Raises ``ValueError`` for ``delta <= 0``, ``damping < 0``, an unknown solver, or a callable with
    ``solver="cholesky"``.
    """
    g = _check.as_vector(g, None, "g", fix="pass the finite policy gradient (a NaN usually means a NaN in the batch)")
    delta = _check.real(delta, "delta", 0.0, np.inf, fix="use a positive KL radius such as 0.01", lo_open=True)
    damping = _check.real(damping, "damping", 0.0, np.inf, fix="pass 0.0, or a small positive value such as 1e-3")
    solver = solver or ("cg" if callable(F_or_fvp) else "cholesky")
    _check.one_of(solver, "solver", ("cholesky", "cg"))
    if solver == "cholesky" and callable(F_or_fvp):
        _check.fail("solver", "'cg' for a callable F_or_fvp ('cholesky' needs the (P, P) matrix F)", "'cholesky'",
                    "pass solver='cg', or the matrix F")
    if callable(F_or_fvp):
        matvec = F_or_fvp
    else:
        F = _spd_matrix(F_or_fvp, g.size)
        matvec = lambda v: F @ v  # noqa: E731
    if not np.any(g):
        return _failed(g, "g is zero: there is no ascent direction", solver)
    e = exponent(g)
    if abs(e) > _FAR_EXPONENT:            # (N1) is scale free in g: solve for g 2^-e (exact), then report for g
        s = natural_step(np.ldexp(g, -e), F_or_fvp, delta, damping=damping, solver=solver, cg_iters=cg_iters,
                         cg_tol=cg_tol, cg_x0=cg_x0, cg_stop=cg_stop)
        x = np.ldexp(s.x, e)
        with np.errstate(over="ignore", under="ignore"):      # what g^T x is in float64: 0 or inf out there
            return s._replace(x=x, gFg=float(g @ x), expected_improve=float(g @ s.step),
                              residual=float(np.ldexp(s.residual, e)))
    if solver == "cholesky":
        try:
            x = solve_spd(F, g, damping)  # (P,)
        except np.linalg.LinAlgError as err:
            return _failed(g, str(err), solver)
        iterations, residual = 0, float(np.linalg.norm(g - F @ x - damping * x))
    else:
        cg = conjugate_gradient(matvec, g, iters=cg_iters, tol=cg_tol, damping=damping, x0=cg_x0, stop=cg_stop)
        if not cg.converged and not cg.reason.startswith("iteration limit"):
            return _failed(g, f"cg: {cg.reason}", solver, cg.iterations, cg.x, cg.residual)
        x, iterations, residual = cg.x, cg.iterations, cg.residual
    return _scale(g, x, np.asarray(matvec(x), dtype=np.float64) + damping * x, delta, solver, iterations, residual)


def _scale(g, x, Fx, delta, solver, iterations, residual) -> NaturalStep:
    """Apply (N1) given ``x`` and ``Fx = (F + c I) x``; report a non-positive or non-finite model.

    (N1) is scale free in ``x``, so ``x`` and ``Fx`` are first divided by the power of two that brings
    ``max |x|`` into [0.5, 1): exact in float64, so the step has the same bits, while a gradient as small
    as 1e-190 (whose ``x^T F x`` would underflow to 0) still gives its step.
    """
    e = exponent(x)
    xs, Fxs = np.ldexp(x, -e), np.ldexp(Fx, -e)                # x 2^-e, (F + c I) x 2^-e
    gFg, xFx = float(g @ x), float(xs @ Fxs)
    gx = float(np.ldexp(g, -exponent(g)) @ xs)                # the sign of g^T x, without underflow
    if not (np.isfinite(gx) and np.isfinite(xFx) and gx > 0.0 and xFx > 0.0):
        why = f"g^T x = {gFg:.3e}, x^T (F + c I) x = {float(x @ Fx):.3e}: F + c I is not positive definite along g"
        return _failed(g, why + "; increase damping", solver, iterations, x, residual)
    step = np.sqrt(2.0 * delta / xFx) * xs  # (P,)  (N1)
    return NaturalStep(step, x, gFg, float(g @ step), True, "ok", solver, iterations, residual)


_FAR_EXPONENT = 500     # natural_step rescales a gradient with max |g| outside [2^-500, 2^500]


# ----------------------------------------------------------------------------- 6. line search


class LineSearchResult(NamedTuple):
    """Outcome of :func:`backtracking_line_search`; ``trace`` holds ``(fraction, f, kl)`` per trial."""

    theta: np.ndarray  # (P,)
    step_fraction: float
    accepted: bool
    reason: str
    trace: tuple


def _scalar(value, name) -> float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        _check.fail(name, "a scalar return value", f"shape {arr.shape}", "return a float")
    return float(arr.reshape(()))


def _ls_args(f, theta, step, constraint, delta, expected_improve, ratio, max_steps, accept_ratio):
    _check.function(f, "f", "pass a function of theta")
    _check.function(constraint, "constraint", "pass a function of theta")
    theta = _check.as_vector(theta, None, "theta", fix="pass the current flat parameters")
    step = _check.as_vector(step, theta.size, "step", fix="pass the finite full step, e.g. natural_step(...).step")
    delta = _check.real(delta, "delta", 0.0, np.inf, fix="use a positive KL bound such as 0.01", lo_open=True)
    if expected_improve is not None:
        expected_improve = _check.real(expected_improve, "expected_improve", 0.0, lo_open=True,
                                       fix="pass g^T step > 0 (NaturalStep.expected_improve) or None")
    ratio = _check.real(ratio, "ratio", 0.0, 1.0, lo_open=True, hi_open=True,
                        fix="use a shrink factor in (0, 1) such as 0.5 or 0.8")
    max_steps = _check.integer(max_steps, "max_steps", 1, "TRPO uses 10 backtracking steps")
    accept_ratio = _check.real(accept_ratio, "accept_ratio", 0.0, 1.0, fix="use 0.0 (any improvement) or e.g. 0.1")
    return theta, step, delta, expected_improve, ratio, max_steps, accept_ratio


def backtracking_line_search(f, theta, step, *, constraint, delta, expected_improve=None, ratio=0.5,
                             max_steps=10, accept_ratio=0.0, strict=False) -> LineSearchResult:
    """Try ``theta + ratio^j step``, ``j = 0..max_steps-1``; accept the first feasible improvement.

    Trial ``j`` (fraction ``a = ratio^j``) is accepted iff ``f(theta')`` and ``constraint(theta')`` are
    finite, ``constraint(theta') <= delta``, ``f(theta') > f(theta)`` and, if ``expected_improve`` (the
    predicted gain of the full step, ``g^T step``) is given,
    ``f(theta') - f(theta) >= accept_ratio * expected_improve * a``.

    Parameters
    ----------
    f : callable, (P,) -> float, surrogate to maximise.  theta : (P,).  step : (P,) full step.
    constraint : callable, (P,) -> float, mean KL(pi_theta || pi_theta').  delta : float > 0 (delta).
    expected_improve : float > 0 or None.  ratio : float in (0, 1).  max_steps : int >= 1.
    accept_ratio : float in [0, 1].
    strict : bool, accept only ``constraint(theta') < delta`` (sb3-contrib ``trpo/trpo.py``) instead of ``<=``.

    Returns
    -------
    LineSearchResult(theta, step_fraction, accepted, reason, trace)
        On success the new ``theta`` and its fraction; on failure a copy of the ORIGINAL ``theta``,
        ``step_fraction = 0.0`` and a reason counting KL violations, non-improvements and non-finite
        trials. ``trace`` has one ``(fraction, f, kl)`` per trial made.
    """
    theta, step, delta, expected, ratio, max_steps, accept_ratio = _ls_args(
        f, theta, step, constraint, delta, expected_improve, ratio, max_steps, accept_ratio)
    f0 = _scalar(f(theta), "f")
    if not np.isfinite(f0):
        return LineSearchResult(theta.copy(), 0.0, False, f"f(theta) = {f0} is not finite", ())
    trace, counts = [], {"non-finite": 0, "KL above delta": 0, "no improvement": 0}
    for j in range(max_steps):
        a = ratio**j
        theta_new = theta + a * step  # (P,)
        f_new, kl = _scalar(f(theta_new), "f"), _scalar(constraint(theta_new), "constraint")
        trace.append((a, f_new, kl))
        if not (np.isfinite(f_new) and np.isfinite(kl)):
            counts["non-finite"] += 1
        elif kl > delta or (strict and kl == delta):
            counts["KL above delta"] += 1
        elif not f_new > f0 or (expected is not None and f_new - f0 < accept_ratio * expected * a):
            counts["no improvement"] += 1
        else:
            return LineSearchResult(theta_new, a, True, f"accepted at step {j} (fraction {a:.3g})", tuple(trace))
    why = ", ".join(f"{k}: {v}" for k, v in counts.items())
    return LineSearchResult(theta.copy(), 0.0, False, f"no step accepted in {max_steps} trials ({why})",
                            tuple(trace))
