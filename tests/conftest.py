"""Hypothesis profiles for the purepg suite.

Choose one with ``HYPOTHESIS_PROFILE=dev|ci|thorough`` (default ``dev``).

* ``dev``      -- fast local iteration (few examples).
* ``ci``       -- derandomized, so CI is reproducible; ``deadline=None`` because
                  Numba JIT compilation on the first call would count against a deadline.
* ``thorough`` -- many examples, for a pre-release sweep.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # see purepg/__init__.py: small arrays, one thread

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=15, **_common)
settings.register_profile("ci", max_examples=30, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=500, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
