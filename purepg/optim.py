r"""Optimisers on flat float64 vectors: Adam, clipping, schedules, CG, natural step, line search.

Everything here acts on a parameter vector ``theta`` (P,) and on callables, never on a network, so each
routine is tested on dense matrices and then reused by every algorithm in :mod:`purepg.algos`.

1. Adam (Kingma & Ba 2015, Algorithm 1)
---------------------------------------
With gradient ``g_t`` at step ``t = 1, 2, ...`` and ``m_0 = v_0 = 0``::

    m_t = beta1 m_{t-1} + (1 - beta1) g_t                                        (A1)
    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2                                      (A2)
    theta_t = theta_{t-1} - lr * mhat_t / (sqrt(vhat_t) + eps),
    mhat_t = m_t / (1 - beta1^t),  vhat_t = v_t / (1 - beta2^t)                  (A3)

Unrolling (A1) gives ``m_t = (1 - beta1) sum_{i=1..t} beta1^(t-i) g_i``, whose weights sum to
``1 - beta1^t``: with a constant gradient ``m_t = (1 - beta1^t) g``, so dividing by ``1 - beta1^t``
removes the bias towards the zero start; likewise for ``v_t``. ``eps`` is Adam's own hyperparameter.
``adam_step`` DESCENDS along ``g``; pass ``-g`` to ascend.

2. Global-norm clipping: ``g <- g * min(1, c / ||g||_2)`` (Pascanu et al. 2013, Algorithm 1).

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

4. The natural-gradient step (Kakade 2002; Schulman et al. 2015, appendix C)
----------------------------------------------------------------------------
Expand ``KL(pi_theta || pi_{theta+d})`` around ``d = 0``: its value and gradient vanish there (a minimum)
and its Hessian is the Fisher ``F``, so ``KL ~ 1/2 d^T F d``. Maximise the linear model of the
objective inside that ellipsoid: ``max_d g^T d  s.t.  1/2 d^T F d <= epsilon``. The Lagrangian
``g^T d - mu (1/2 d^T F d - epsilon)`` is stationary at ``d = F^{-1} g / mu``; the objective is linear,
so the constraint is active, ``1/(2 mu^2) g^T F^{-1} g = epsilon``, ``mu = sqrt(g^T F^{-1} g / (2 epsilon))``::

    d = sqrt(2 epsilon / g^T F^{-1} g) F^{-1} g,     g^T d = sqrt(2 epsilon g^T F^{-1} g)     (N1)

Here ``x ~ (F + c I)^{-1} g`` comes from Cholesky or CG, and the scale uses ``x^T (F + c I) x``. For an
exact solve that is ``g^T x``; for a CG iterate too, in exact arithmetic (``r_k`` is orthogonal to the
Krylov space holding ``x_k``, so ``x_k^T (b - A x_k) = 0``). In float64 CG's loss of orthogonality makes
the two differ (by up to 1e-3 relative at condition 1e4, measured), and only ``x^T (F + c I) x`` keeps
``1/2 d^T (F + c I) d = epsilon`` to rounding. It costs one more ``matvec``, and it is what sb3-contrib's
TRPO does (``sb3_contrib/trpo/trpo.py`` divides by ``x^T (H + c I) x``), so steps can be compared.

5. Backtracking line search (Nocedal & Wright 2006, Algorithm 3.1)
------------------------------------------------------------------
(N1) trusts a quadratic KL model and a linear objective model. Both are checked on the true functions at
``theta + ratio^j d``, ``j = 0, 1, ...``: the first fraction whose mean KL is ``<= max_kl`` and whose
surrogate improves (by at least ``accept_ratio * ratio^j * g^T d`` when that prediction is given) wins.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from purepg import kernels

# ----------------------------------------------------------------------------- validation helpers


def _vector(x, name, fix, size=None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    want = f"({size},)" if size is not None else "(P,)"
    if arr.ndim != 1 or (size is not None and arr.shape[0] != size):
        raise ValueError(f"{name}: expected a vector of shape {want}, got shape {arr.shape}; {fix}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: expected finite values, got {arr[bad]} at index {bad}; {fix}")
    return arr


def _real(x, name, lo, hi, fix, lo_open=False, hi_open=False) -> float:
    ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) and np.isfinite(x)
    ok = ok and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: expected a finite number in {rng}, got {x!r}; {fix}")
    return float(x)


def _int(x, name, lo, fix) -> int:
    if not isinstance(x, (int, np.integer)) or isinstance(x, bool) or x < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {x!r}; {fix}")
    return int(x)


def _callable(f, name):
    if not callable(f):
        raise TypeError(f"{name}: expected a callable, got {type(f).__name__}; pass a function of theta")


# ----------------------------------------------------------------------------- 1. Adam


class AdamState(NamedTuple):
    """Adam's moments after ``t`` steps: ``m`` (P,) and ``v`` (P,) of (A1)-(A2)."""

    m: np.ndarray  # (P,)
    v: np.ndarray  # (P,)
    t: int


def adam_init(P: int) -> AdamState:
    """The state before the first step: ``m = v = 0`` (P,), ``t = 0``."""
    P = _int(P, "P", 1, "pass the number of parameters, e.g. pol.num_params")
    return AdamState(np.zeros(P), np.zeros(P), 0)


def adam_step(theta, g, state: AdamState, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, check=True):
    """One bias-corrected Adam step that descends along ``g``, eqs. (A1)-(A3).

    Parameters
    ----------
    theta : (P,) parameters.  g : (P,) gradient of the loss to minimise (pass ``-g`` to ascend).
    state : AdamState from :func:`adam_init` or a previous step.
    lr, beta1, beta2, eps : Kingma & Ba 2015, Algorithm 1 (``alpha``, ``beta_1``, ``beta_2``, ``epsilon``).
    check : ``False`` skips the validation of the arguments (a training loop that validated its state
        once per iteration and steps once per minibatch; a non-finite ``g`` then reaches ``theta``).

    Returns
    -------
    theta_new : (P,) new array.  state_new : AdamState with ``t + 1``.
    """
    if check:
        theta, state, (lr, beta1, beta2, eps) = _adam_args(theta, state, lr, beta1, beta2, eps)
        g = _gradient(g, theta.size)
    return _adam_update(theta, g, state.m, state.v, state.t + 1, lr, beta1, beta2, eps)


def _adam_args(theta, state, lr, beta1, beta2, eps):
    """Validated ``(theta, state, (lr, beta1, beta2, eps))`` of an Adam step."""
    theta = _vector(theta, "theta", "pass the flat parameter vector")
    fix = "pass the state returned by adam_init(P) or by the previous adam_step"
    state = AdamState(_vector(state.m, "state.m", fix, theta.size), _vector(state.v, "state.v", fix, theta.size),
                      _int(state.t, "state.t", 0, fix))
    lr = _real(lr, "lr", 0.0, np.inf, "use a positive learning rate such as 3e-4", lo_open=True)
    beta1 = _real(beta1, "beta1", 0.0, 1.0, "the usual value is 0.9", hi_open=True)
    beta2 = _real(beta2, "beta2", 0.0, 1.0, "the usual value is 0.999", hi_open=True)
    eps = _real(eps, "eps", 0.0, np.inf, "the usual value is 1e-8 (PyTorch) or 1e-5 (SB3 PPO)", lo_open=True)
    return theta, state, (lr, beta1, beta2, eps)


def _gradient(g, size):
    return _vector(g, "g", "a non-finite gradient would poison Adam's moments; skip this update", size)


def _adam_update(theta, g, m, v, t, lr, beta1, beta2, eps):
    """(A1)-(A3) on validated arguments, one pass (:func:`purepg.kernels.adam_update`); ``t`` is the new step count."""
    theta_new, m, v = kernels.adam_update(theta, g, m, v, t, lr, beta1, beta2, eps)   # (P,) each
    return theta_new, AdamState(m, v, t)


# ----------------------------------------------------------------------------- 2. clipping


def clip_grad_norm(g, max_norm, *, offset=0.0, check=True):
    """Global-norm clipping: ``g * min(1, max_norm / (||g||_2 + offset))``.

    ``offset = 0`` is the textbook rule; ``offset = 1e-6`` reproduces ``torch.nn.utils.clip_grad_norm_``,
    which divides by ``total_norm + 1e-6`` (torch/nn/utils/clip_grad.py). The division only happens when
    ``||g|| + offset > max_norm > 0``, so a zero gradient is returned unchanged.
    ``check=False`` skips the validation of the arguments; a non-finite norm is reported either way
    (so a clipped gradient is always finite).

    Returns
    -------
    g_clipped : (P,) new array.  norm : float, ``||g||_2`` before clipping.
    """
    if check:
        g = _vector(g, "g", "a non-finite gradient cannot be clipped; skip this update")
        max_norm = _real(max_norm, "max_norm", 0.0, np.inf, "use a positive bound such as 0.5", lo_open=True)
        offset = _real(offset, "offset", 0.0, np.inf, "use 0.0, or 1e-6 to match PyTorch")
    with np.errstate(over="ignore", invalid="ignore"):
        norm = float(np.linalg.norm(g))
    if not np.isfinite(norm):
        raise ValueError(f"g: its 2-norm overflows float64 or is NaN: expected a finite norm, got {norm} (max |g_i| = "
                         f"{np.abs(g).max()}). Fix: rescale the loss; a NaN or inf entry means it diverged (lower the step)")
    if norm + offset > max_norm:
        return g * (max_norm / (norm + offset)), norm  # (P,)
    return g.copy(), norm


# ----------------------------------------------------------------------------- 3. schedules and minibatches


def linear_schedule(start, end, progress) -> float:
    """``start + progress * (end - start)``: ``start`` at progress 0, ``end`` at progress 1."""
    start = _real(start, "start", -np.inf, np.inf, "pass the value at progress 0")
    end = _real(end, "end", -np.inf, np.inf, "pass the value at progress 1")
    p = _real(progress, "progress", 0.0, 1.0, "pass the fraction of training done, schedule_progress(step, total)")
    return start + p * (end - start)


def schedule_progress(step, total_steps) -> float:
    """Fraction of training done, ``min(step / total_steps, 1)``: the last batch may overshoot the total."""
    total_steps = _int(total_steps, "total_steps", 1, "pass the total number of environment steps")
    step = _int(step, "step", 0, "pass the number of environment steps taken so far")
    return min(step / total_steps, 1.0)


def minibatch_indices(n, batch_size, rng: np.random.Generator) -> list[np.ndarray]:
    """A random permutation of ``range(n)`` cut into consecutive minibatches of ``batch_size``.

    Every index appears exactly once; when ``batch_size`` does not divide ``n`` the last minibatch holds
    the ``n mod batch_size`` remaining indices.
    """
    n = _int(n, "n", 1, "pass the number of samples in the batch")
    batch_size = _int(batch_size, "batch_size", 1, "pass a positive minibatch size")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected numpy.random.Generator, got {type(rng).__name__}; "
                        "pass numpy.random.default_rng(seed)")
    perm = rng.permutation(n)  # (n,)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def adam_fit(loss_grad, theta, state: AdamState, n, *, epochs, batch_size, lr, rng, max_grad_norm=None,
             beta1=0.9, beta2=0.999, eps=1e-8):
    """Minibatch Adam on ``loss_grad(theta, idx) -> (loss, g)`` (e.g. a value-function regression).

    Each epoch draws :func:`minibatch_indices` and takes one :func:`adam_step` (with ``lr``, ``beta1``,
    ``beta2``, ``eps``) per minibatch, after optional :func:`clip_grad_norm`. Returns
    ``(theta, state, losses)``, ``losses`` (epochs * n_batches,) holding each minibatch's loss before its step.
    The arguments are validated once, before the first step; each gradient ``g`` is checked (finite, (P,)).
    """
    _callable(loss_grad, "loss_grad")
    epochs = _int(epochs, "epochs", 1, "pass the number of passes over the data")
    theta, state, hyper = _adam_args(theta, state, lr, beta1, beta2, eps)
    if max_grad_norm is not None:
        max_grad_norm = _real(max_grad_norm, "max_grad_norm", 0.0, np.inf, "use a positive bound such as 0.5",
                              lo_open=True)
    losses = []
    for _ in range(epochs):
        for idx in minibatch_indices(n, batch_size, rng):
            loss, g = loss_grad(theta, idx)
            g = _gradient(g, theta.size)
            if max_grad_norm is not None:
                g, _ = clip_grad_norm(g, max_grad_norm, check=False)
            theta, state = adam_step(theta, g, state, **dict(zip(("lr", "beta1", "beta2", "eps"), hyper)), check=False)
            losses.append(float(loss))
    return theta, state, np.asarray(losses)


# ----------------------------------------------------------------------------- 4. conjugate gradient


class CGResult(NamedTuple):
    """Outcome of :func:`conjugate_gradient`; see its docstring for the contract."""

    x: np.ndarray  # (n,)
    iterations: int
    converged: bool
    residual: float
    reason: str


def _cg_args(matvec, b, iters, tol, damping):
    _callable(matvec, "matvec")
    b = _vector(b, "b", "pass a finite right-hand side (a NaN in g usually means a NaN in the batch)")
    iters = _int(iters, "iters", 1, "CG needs at least one iteration; TRPO uses 10")
    tol = _real(tol, "tol", 0.0, np.inf, "pass a relative tolerance such as 1e-10 (0 runs all iterations)")
    damping = _real(damping, "damping", 0.0, np.inf, "pass 0.0, or a small positive value such as 1e-3")
    return b, iters, tol, damping


def conjugate_gradient(matvec: Callable, b, *, iters=10, tol=1e-10, damping=0.0) -> CGResult:
    """Solve ``(A + damping I) x = b`` by conjugate gradient, eqs. (C1)-(C3), from ``x_0 = 0``.

    ``A`` is seen only through ``matvec(v) = A @ v``; it must be symmetric, and positive definite once
    damped, for CG to apply -- this is checked along every search direction.

    Stopping test: after each step, stop with ``converged=True`` as soon as
    ``||r_k||_2 <= tol * ||b||_2``, where ``r_k`` is the recursively updated residual (C2), equal to
    ``b - (A + damping I) x_k`` in exact arithmetic (no extra ``matvec``). The test is relative so that
    rescaling ``A`` and ``b`` (a Fisher averaged over N states, a normalised advantage) does not change
    how far CG goes. ``b = 0`` returns ``x = 0`` with ``converged=True`` and 0 iterations.

    Parameters
    ----------
    matvec : callable, (n,) -> (n,), ``v -> A v`` (e.g. ``lambda v: pol.fvp(theta, obs, v)``).
    b : (n,) finite right-hand side.  iters : int >= 1, maximum number of CG steps.
    tol : float >= 0, relative tolerance of the test above.  damping : float >= 0, ``c`` in ``A + c I``.

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
    x = np.zeros_like(b)  # (n,)
    r = b.copy()  # (n,)  r_0 = b - A x_0
    p = r.copy()  # (n,)
    rr = float(r @ r)
    threshold = tol * np.sqrt(rr)
    if rr == 0.0:
        return CGResult(x, 0, True, 0.0, "converged: b = 0, so x = 0 solves exactly")
    for k in range(iters):
        Ap = np.asarray(matvec(p), dtype=np.float64)  # (n,)
        if Ap.shape != b.shape:
            raise ValueError(f"matvec: expected a vector of shape {b.shape}, got {Ap.shape}; it must return A @ v")
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
        if np.sqrt(rr_new) <= threshold:
            return CGResult(x, k + 1, True, np.sqrt(rr_new), f"converged: ||r|| <= tol ||b|| after {k + 1} steps")
        p = r + (rr_new / rr) * p  # (n,)  (C3); rr > 0 since the test above failed
        rr = rr_new
    return CGResult(x, iters, False, np.sqrt(rr), f"iteration limit reached ({iters} steps)")


# ----------------------------------------------------------------------------- 5. natural step


class NaturalStep(NamedTuple):
    """Outcome of :func:`natural_step`. On failure ``ok`` is False, ``step`` is zero and ``reason`` says why."""

    step: np.ndarray  # (P,)  d of (N1)
    x: np.ndarray  # (P,)  (F + c I)^{-1} g
    gFg: float  # g^T x
    expected_improve: float  # g^T step = sqrt(2 epsilon g^T F^-1 g) for an exact solve
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
        raise ValueError(f"F: expected shape ({P}, {P}) to match g, got {F.shape}; {fix}")
    if not np.all(np.isfinite(F)):
        raise ValueError(f"F: expected finite values, got non-finite entries; {fix}")
    # 1e-10 relative: far above the rounding of a sum of outer products, far below a real asymmetry.
    if np.max(np.abs(F - F.T), initial=0.0) > 1e-10 * np.max(np.abs(F), initial=0.0):
        raise ValueError(f"F: expected a symmetric matrix, got max |F - F^T| = {np.max(np.abs(F - F.T)):.3e}; {fix}")
    return F


def solve_spd(F, g, damping=0.0) -> np.ndarray:
    """``x = (F + damping I)^{-1} g`` by Cholesky ``F + c I = L L^T``, then two triangular solves.

    Raises ``numpy.linalg.LinAlgError`` if ``F + damping I`` is not positive definite, ``ValueError`` on
    bad input (non-square, asymmetric, non-finite ``F``; non-finite ``g``; ``damping < 0``).
    """
    g = _vector(g, "g", "pass the finite policy gradient")
    F = _spd_matrix(F, g.size)
    damping = _real(damping, "damping", 0.0, np.inf, "pass 0.0, or a small positive value such as 1e-3")
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


def natural_step(g, F_or_fvp, epsilon, *, damping=0.0, solver=None, cg_iters=10, cg_tol=1e-10) -> NaturalStep:
    """The natural-gradient step (N1) ``d = sqrt(2 epsilon / x^T (F + c I) x) x``, ``x = (F + c I)^{-1} g``.

    ``g`` is the gradient of the objective to MAXIMISE. ``F_or_fvp`` is the (P, P) Fisher (solved by
    Cholesky, or by CG with ``solver="cg"``) or a callable ``v -> F v`` (solved by CG). The result
    satisfies ``1/2 d^T (F + c I) d = epsilon``. If ``F + c I`` is not positive definite (Cholesky
    fails, CG meets non-positive curvature, or ``g^T x <= 0``), or ``g = 0``, nothing is NaN: ``ok`` is
    False, ``step`` is zero and ``reason`` says why. CG stopping at ``cg_iters`` still gives ``ok=True``.

    Raises ``ValueError`` for ``epsilon <= 0``, ``damping < 0``, an unknown solver, or a callable with
    ``solver="cholesky"``.
    """
    g = _vector(g, "g", "pass the finite policy gradient (a NaN usually means a NaN in the batch)")
    epsilon = _real(epsilon, "epsilon", 0.0, np.inf, "use a positive KL radius such as 0.01", lo_open=True)
    damping = _real(damping, "damping", 0.0, np.inf, "pass 0.0, or a small positive value such as 1e-3")
    solver = solver or ("cg" if callable(F_or_fvp) else "cholesky")
    if solver not in ("cholesky", "cg"):
        raise ValueError(f"solver: expected 'cholesky' or 'cg', got {solver!r}; pick one of the two")
    if solver == "cholesky" and callable(F_or_fvp):
        raise ValueError("solver: 'cholesky' needs the (P, P) matrix F, got a callable; pass solver='cg'")
    if callable(F_or_fvp):
        matvec = F_or_fvp
    else:
        F = _spd_matrix(F_or_fvp, g.size)
        matvec = lambda v: F @ v  # noqa: E731
    if not np.any(g):
        return _failed(g, "g is zero: there is no ascent direction", solver)
    if solver == "cholesky":
        try:
            x = solve_spd(F, g, damping)  # (P,)
        except np.linalg.LinAlgError as err:
            return _failed(g, str(err), solver)
        iterations, residual = 0, float(np.linalg.norm(g - F @ x - damping * x))
    else:
        cg = conjugate_gradient(matvec, g, iters=cg_iters, tol=cg_tol, damping=damping)
        if not cg.converged and not cg.reason.startswith("iteration limit"):
            return _failed(g, f"cg: {cg.reason}", solver, cg.iterations, cg.x, cg.residual)
        x, iterations, residual = cg.x, cg.iterations, cg.residual
    return _scale(g, x, np.asarray(matvec(x), dtype=np.float64) + damping * x, epsilon, solver, iterations, residual)


def _scale(g, x, Fx, epsilon, solver, iterations, residual) -> NaturalStep:
    """Apply (N1) given ``x`` and ``Fx = (F + c I) x``; report a non-positive or non-finite model."""
    gFg, xFx = float(g @ x), float(x @ Fx)
    if not (np.isfinite(gFg) and np.isfinite(xFx) and gFg > 0.0 and xFx > 0.0):
        why = f"g^T x = {gFg:.3e}, x^T (F + c I) x = {xFx:.3e}: F + c I is not positive definite along g"
        return _failed(g, why + "; increase damping", solver, iterations, x, residual)
    step = np.sqrt(2.0 * epsilon / xFx) * x  # (P,)  (N1)
    return NaturalStep(step, x, gFg, float(g @ step), True, "ok", solver, iterations, residual)


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
        raise ValueError(f"{name}: expected a scalar return value, got shape {arr.shape}; return a float")
    return float(arr.reshape(()))


def _ls_args(f, theta, step, constraint, max_kl, expected_improve, ratio, max_steps, accept_ratio):
    _callable(f, "f")
    _callable(constraint, "constraint")
    theta = _vector(theta, "theta", "pass the current flat parameters")
    step = _vector(step, "step", "pass the finite full step, e.g. natural_step(...).step", theta.size)
    max_kl = _real(max_kl, "max_kl", 0.0, np.inf, "use a positive KL bound such as 0.01", lo_open=True)
    if expected_improve is not None:
        expected_improve = _real(expected_improve, "expected_improve", 0.0, np.inf,
                                 "pass g^T step > 0 (NaturalStep.expected_improve) or None", lo_open=True)
    ratio = _real(ratio, "ratio", 0.0, 1.0, "use a shrink factor in (0, 1) such as 0.5 or 0.8",
                  lo_open=True, hi_open=True)
    max_steps = _int(max_steps, "max_steps", 1, "TRPO uses 10 backtracking steps")
    accept_ratio = _real(accept_ratio, "accept_ratio", 0.0, 1.0, "use 0.0 (any improvement) or e.g. 0.1")
    return theta, step, max_kl, expected_improve, ratio, max_steps, accept_ratio


def backtracking_line_search(f, theta, step, *, constraint, max_kl, expected_improve=None, ratio=0.5,
                             max_steps=10, accept_ratio=0.0) -> LineSearchResult:
    """Try ``theta + ratio^j step``, ``j = 0..max_steps-1``; accept the first feasible improvement.

    Trial ``j`` (fraction ``a = ratio^j``) is accepted iff ``f(theta')`` and ``constraint(theta')`` are
    finite, ``constraint(theta') <= max_kl``, ``f(theta') > f(theta)`` and, if ``expected_improve`` (the
    predicted gain of the full step, ``g^T step``) is given,
    ``f(theta') - f(theta) >= accept_ratio * expected_improve * a``.

    Parameters
    ----------
    f : callable, (P,) -> float, surrogate to maximise.  theta : (P,).  step : (P,) full step.
    constraint : callable, (P,) -> float, mean KL(pi_theta || pi_theta').  max_kl : float > 0 (delta).
    expected_improve : float > 0 or None.  ratio : float in (0, 1).  max_steps : int >= 1.
    accept_ratio : float in [0, 1].

    Returns
    -------
    LineSearchResult(theta, step_fraction, accepted, reason, trace)
        On success the new ``theta`` and its fraction; on failure a copy of the ORIGINAL ``theta``,
        ``step_fraction = 0.0`` and a reason counting KL violations, non-improvements and non-finite
        trials. ``trace`` has one ``(fraction, f, kl)`` per trial made.
    """
    theta, step, max_kl, expected, ratio, max_steps, accept_ratio = _ls_args(
        f, theta, step, constraint, max_kl, expected_improve, ratio, max_steps, accept_ratio)
    f0 = _scalar(f(theta), "f")
    if not np.isfinite(f0):
        return LineSearchResult(theta.copy(), 0.0, False, f"f(theta) = {f0} is not finite", ())
    trace, counts = [], {"non-finite": 0, "KL above max_kl": 0, "no improvement": 0}
    for j in range(max_steps):
        a = ratio**j
        theta_new = theta + a * step  # (P,)
        f_new, kl = _scalar(f(theta_new), "f"), _scalar(constraint(theta_new), "constraint")
        trace.append((a, f_new, kl))
        if not (np.isfinite(f_new) and np.isfinite(kl)):
            counts["non-finite"] += 1
        elif kl > max_kl:
            counts["KL above max_kl"] += 1
        elif not f_new > f0 or (expected is not None and f_new - f0 < accept_ratio * expected * a):
            counts["no improvement"] += 1
        else:
            return LineSearchResult(theta_new, a, True, f"accepted at step {j} (fraction {a:.3g})", tuple(trace))
    why = ", ".join(f"{k}: {v}" for k, v in counts.items())
    return LineSearchResult(theta.copy(), 0.0, False, f"no step accepted in {max_steps} trials ({why})",
                            tuple(trace))
