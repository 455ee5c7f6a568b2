"""Checks of a user's trust-region solvers: conjugate gradient, the natural step and the backtracking line
search, on dense symmetric positive definite systems with bounded condition number."""
from __future__ import annotations

import numpy as np

from purepg.optim import backtracking_line_search, conjugate_gradient, natural_step
from purepg.testing.report import Tolerance, as_output, call_user, compare, run_property

# Condition number <= 1e3 amplifies float64 rounding of the products to <= 1e-12 relative.
SOLVE_TOL = Tolerance(1e-8, 1e-10, "condition number <= 1e3 amplifies float64 rounding to <= 1e-12")


def _systems(with_ratio=False):
    """``(SPDSystem, iters or max_steps in [1, 10], delta in [1e-4, 0.1][, ratio in [0.3, 0.9]])``."""
    import purepg.testing.strategies as S
    from hypothesis import strategies as st
    parts = (S.spd_systems(), st.integers(1, 10), st.floats(1e-4, 0.1)) + ((st.floats(0.3, 0.9),) if with_ratio else ())
    return st.tuples(*parts)


def _run(quantity, fn, cases, max_examples, args, expected):
    def body(case):
        shown = args(case)
        want = expected(case)
        got = as_output("the output", quantity, call_user(quantity, fn, dict(shown), shown), want.shape, shown)
        compare(quantity, "the output", got, want, SOLVE_TOL, shown)
    run_property(quantity, cases, body, max_examples)


def check_cg(fn, *, max_examples=100):
    """``cg(matvec, b, iters) -> x``: ``iters`` conjugate-gradient iterations for ``A x = b`` from ``x_0 = 0``
    (stopping early only at an exactly zero residual). The report shows ``A``; ``matvec`` is ``A @``."""
    def args(c):
        (A, b), iters, _ = c
        return {"A": A, "matvec": lambda x: A @ x, "b": b, "iters": iters}
    _run("cg", lambda A, **kw: fn(**kw), _systems(), max_examples, args,
         lambda c: conjugate_gradient(lambda x: c[0].A @ x, c[0].b, iters=c[1], tol=0.0).x)


def check_natural_step(fn, *, max_examples=100):
    """``natural_step(g, F, delta) -> d = sqrt(2 delta / g^T F^-1 g) F^-1 g`` (an exact solve)."""
    _run("natural_step", fn, _systems(), max_examples,
         lambda c: {"g": c[0].b, "F": c[0].A, "delta": c[2]}, lambda c: natural_step(c[0].b, c[0].A, c[2]).step)


def check_line_search(fn, *, max_examples=100):
    """``line_search(f, kl, theta, step, delta, ratio, max_steps) -> theta_new``: the first of
    ``theta + ratio^j step`` (j = 0, 1, ...) with ``kl <= delta`` and ``f`` improved, else ``theta``.

    ``f`` is a concave quadratic and ``kl`` the quadratic model ``1/2 d^T A d`` of the drawn system, so
    acceptance is decided away from its boundary in all but measure-zero cases.
    """
    def args(c):
        (A, b), max_steps, delta, ratio = c
        f = lambda th: float(b @ th - 0.25 * th @ A @ th)           # noqa: E731
        kl = lambda th: float(0.5 * th @ A @ th)                     # noqa: E731
        return {"A": A, "b": b, "f": f, "kl": kl, "theta": np.zeros_like(b), "step": 4.0 * b, "delta": delta,
                "ratio": ratio, "max_steps": max_steps}

    def expected(c):
        a = args(c)
        return backtracking_line_search(a["f"], a["theta"], a["step"], constraint=a["kl"], delta=a["delta"],
                                        ratio=a["ratio"], max_steps=a["max_steps"]).theta
    _run("line_search", lambda A, b, **kw: fn(**kw), _systems(with_ratio=True), max_examples, args, expected)
