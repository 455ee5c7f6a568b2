"""The pytest entry point: a test class with one test per quantity the user implements."""
from __future__ import annotations

import inspect

from purepg import _check
from purepg.testing import policy_checks as pc, solver_checks as sc, update_checks as uc

# quantity -> check function; the user passes their callable under the quantity's name
CHECKS = {
    "log_prob": pc.check_log_prob, "entropy": pc.check_entropy, "kl": pc.check_kl, "score": pc.check_score,
    "fvp": pc.check_fvp, "gae": uc.check_gae, "returns": uc.check_returns, "ppo_clip": uc.check_ppo_clip,
    "ppo_kl_penalty": uc.check_ppo_kl_penalty, "value_loss": uc.check_value_loss,
    "ppo_update": uc.check_ppo_update, "cg": sc.check_cg, "natural_step": sc.check_natural_step,
    "line_search": sc.check_line_search,
}


def _options(check, profile, specs, kl_direction, max_examples):
    """The keyword arguments ``check`` accepts among the suite's options."""
    given = {"profile": profile, "specs": specs, "direction": kl_direction, "max_examples": max_examples}
    accepted = inspect.signature(check).parameters
    return {k: v for k, v in given.items() if k in accepted and v is not None}


def suite(*, profile="purepg", specs=None, kl_direction="old_new", max_examples=None, **implementations):
    """A pytest test class (assign it to a name starting with ``Test``) with ``test_<quantity>`` for each
    callable given, e.g. ``TestMine = suite(profile="sb3", log_prob=f, gae=g)``.

    Parameters
    ----------
    profile : str or dict
        The conventions the implementation follows (:mod:`purepg.testing.profiles`).
    specs : list of PolicySpec, optional
        Restrict the drawn policy structures (for code built for one network).
    kl_direction : {"old_new", "new_old"}
        Which KL the ``kl`` callable computes.
    max_examples : int, optional
        Examples per quantity (each check has its own default).
    **implementations
        ``quantity=callable`` for quantities in :data:`CHECKS`.
    """
    unknown = sorted(set(implementations) - set(CHECKS))
    if unknown:
        _check.fail("suite", f"quantities among {sorted(CHECKS)}", f"unknown {unknown}", "use those names")

    def make(name, fn):
        check = CHECKS[name]
        kw = _options(check, profile, specs, kl_direction, max_examples)

        def test(self):
            check(fn, **kw)
        test.__name__ = test.__qualname__ = f"test_{name}"
        test.__doc__ = f"{name} agrees with purepg ({check.__doc__.splitlines()[0]})"
        return test
    body = {f"test_{name}": make(name, fn) for name, fn in implementations.items()}
    return type("PurepgDifferentialSuite", (), {"__test__": True, **body})
