"""The suite's Hypothesis strategies are purepg's public ones (:mod:`purepg.testing.strategies`)."""
from purepg.testing.strategies import *  # noqa: F401,F403
