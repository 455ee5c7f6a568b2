"""Property-based differential tests that a user points at their own policy-gradient implementation.

Each ``check_*`` function takes the user's callable (NumPy in, NumPy out), draws many cases with
Hypothesis (network shapes and weights, observation batches, discrete and Box actions, episode batches
with terminated and truncated flags, advantages, hyperparameters), compares with purepg, and on a
disagreement raises :class:`Mismatch` whose message is the smallest failing example found, written as
NumPy code that can be pasted into a regression test. :func:`suite` turns a set of callables into a
pytest test class, one test per quantity.

Importing this package needs only purepg's own dependencies; running a check needs Hypothesis
(``pip install "purepg[test]"``). Adapters for PyTorch and JAX networks are in
:mod:`purepg.testing.torch` and :mod:`purepg.testing.jax` (imported on use).

Example::

    from purepg.testing import PolicySpec, suite
    TestMyPPO = suite(profile="sb3", log_prob=my_log_prob, gae=my_gae, ppo_update=my_update)
"""
from purepg.testing.policy_checks import check_entropy, check_fvp, check_kl, check_log_prob, check_score
from purepg.testing.profiles import Conventions, conventions
from purepg.testing.report import Mismatch, Tolerance
from purepg.testing.solver_checks import check_cg, check_line_search, check_natural_step
from purepg.testing.spec import PolicySpec
from purepg.testing.suite import CHECKS, suite
from purepg.testing.update_checks import (check_gae, check_ppo_clip, check_ppo_kl_penalty, check_ppo_update,
                                          check_returns, check_value_loss)

__all__ = ["PolicySpec", "Mismatch", "Tolerance", "Conventions", "conventions", "suite", "CHECKS",
           "check_log_prob", "check_entropy", "check_kl", "check_score", "check_fvp", "check_gae", "check_returns",
           "check_ppo_clip", "check_ppo_kl_penalty", "check_value_loss", "check_ppo_update", "check_cg",
           "check_natural_step", "check_line_search"]
