"""Running one property against a user's callable, and the report of its smallest failing example.

A check draws cases with Hypothesis, computes purepg's answer and the user's, and compares them. On the
first disagreement Hypothesis shrinks the case; the report of the smallest one is raised as
:class:`Mismatch` (an ``AssertionError``), never as a Hypothesis traceback. The report names the quantity,
gives every input as paste-able NumPy (17 significant digits: float64 round-trips), both outputs and the
first entry outside the tolerance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


class Mismatch(AssertionError):
    """The user's implementation disagrees with purepg (or returned bad output); ``str()`` is the report."""


class _Disagreement(Exception):
    """Raised inside a Hypothesis example; carries the report of that example."""


@dataclass(frozen=True)
class Tolerance:
    """``|user - purepg| <= atol + rtol |purepg|`` entrywise; ``why`` justifies the numbers."""

    rtol: float
    atol: float
    why: str


def literal(x) -> str:
    """``x`` as Python source that rebuilds it exactly (arrays as ``np.array([...], dtype=...)``)."""
    if isinstance(x, np.ndarray):
        body = np.array2string(x, separator=", ", precision=17, floatmode="unique", threshold=10**9,
                               max_line_width=110)
        return f"np.array({body}, dtype=np.{x.dtype})"
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    if isinstance(x, (tuple, list)):
        inner = ", ".join(literal(v) for v in x)
        return f"({inner},)" if isinstance(x, tuple) and len(x) == 1 else (f"({inner})" if isinstance(x, tuple)
                                                                        else f"[{inner}]")
    return repr(x)


def _inputs(case: dict) -> str:
    return "\n".join(f"    {k} = {literal(v)}" for k, v in case.items() if not callable(v))


def as_output(name, quantity, got, shape, case):
    """The user's output as a float64 array of ``shape``, or a :class:`_Disagreement` saying what is wrong."""
    def bad(problem, fix):
        raise _Disagreement(f"{quantity}: {name} {problem}. Fix: {fix}\n  inputs:\n{_inputs(case)}")
    try:
        arr = np.asarray(got)
    except Exception as e:          # noqa: BLE001 -- anything np.asarray cannot read is reported as such
        bad(f"returned {type(got).__name__}, which NumPy cannot read ({e})", "return a NumPy array")
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        bad(f"returned dtype {arr.dtype}", "return a float64 NumPy array")
    if arr.dtype != np.float64:
        bad(f"returned dtype {arr.dtype}", "compute in float64 (torch: model.double(); JAX: enable x64), "
            "the comparison is at float64 precision")
    if arr.shape != tuple(shape):
        bad(f"returned shape {arr.shape}, expected {tuple(shape)}", f"return one value per entry, shape {tuple(shape)}")
    if not np.all(np.isfinite(arr)):
        i = tuple(int(j) for j in np.argwhere(~np.isfinite(arr))[0])
        bad(f"returned {arr[i]} at index {i}", "purepg's value there is finite: look for a log of 0, an "
            "overflowing exp or a division by a zero standard deviation")
    return arr


def call_user(quantity, fn, args: dict, case: dict):
    """``fn(**args)``, with an exception turned into a :class:`_Disagreement` naming the quantity and inputs."""
    args = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in args.items()}   # the user may write in place
    try:
        return fn(**args)
    except _Disagreement:
        raise
    except Exception as e:          # noqa: BLE001 -- the user's code may raise anything; it is reported
        raise _Disagreement(f"{quantity}: your function raised {type(e).__name__}: {e}. Fix: make it accept "
                            f"these inputs (purepg's {quantity} is defined for them)\n"
                            f"  inputs:\n{_inputs(case)}") from None


def compare(quantity, name, user, ref, tol: Tolerance, case: dict):
    """Raise :class:`_Disagreement` with the full report unless ``user`` equals ``ref`` within ``tol``."""
    excess = np.abs(user - ref) - (tol.atol + tol.rtol * np.abs(ref))
    if np.all(excess <= 0):
        return
    i = np.unravel_index(int(np.argmax(excess)), np.shape(ref)) if np.ndim(ref) else ()
    raise _Disagreement(
        f"{quantity}: {name} differs from purepg's beyond rtol={tol.rtol:g}, atol={tol.atol:g} ({tol.why}).\n"
        f"  first entry outside the tolerance: index {tuple(int(j) for j in i)}: yours {float(np.asarray(user)[i])!r}, "
        f"purepg {float(np.asarray(ref)[i])!r}\n"
        f"  inputs (smallest failing example found):\n{_inputs(case)}\n"
        f"  yours:  {literal(np.asarray(user))}\n  purepg: {literal(np.asarray(ref))}")


def run_property(quantity: str, cases, body: Callable[[Any], None], max_examples: int, seed=None):
    """Run ``body(case)`` over ``cases`` (a Hypothesis strategy); raise :class:`Mismatch` with the report of
    the smallest failing case."""
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings

    # no "explain" phase: the report says what differs; explaining which draws matter costs ten times the shrink
    phases = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)
    @settings(max_examples=max_examples, deadline=None, report_multiple_bugs=False, database=None, phases=phases,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(cases)
    def prop(case):
        body(case)

    if seed is not None:
        prop = hseed(seed)(prop)
    try:
        prop()
    except _Disagreement as e:
        raise Mismatch(str(e)) from None
