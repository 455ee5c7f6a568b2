"""bench/profile_run.py: a short run's profile, its groups adding up to the profiled total, each function in one group."""
import os
import pathlib
import re
import sys

import numpy as np

BENCH = pathlib.Path(__file__).parents[1] / "bench"
_env = dict(os.environ)
sys.path.insert(0, str(BENCH))
import profile_run  # noqa: E402

os.environ.clear()
os.environ.update(_env)          # profile_run pins the thread variables at import; leave the session's as they were


def test_kernels_numpy_gymnasium_and_purepg_are_told_apart():
    from purepg.kernels import heads
    kernels = profile_run.kernel_sites()
    code = heads._half_mse_and_grad_numba.py_func.__code__
    site = (code.co_filename, code.co_firstlineno, code.co_name)
    assert site in kernels and len(kernels) > 20
    assert profile_run.group(site, kernels) == "compiled kernels"
    assert profile_run.group((np.__file__.replace("__init__.py", "_core/fromnumeric.py"), 1, "sum"), kernels) == "NumPy"
    assert profile_run.group(("~", 0, "<method 'reduce' of 'numpy.ufunc' objects>"), kernels) == "NumPy"
    assert profile_run.group(("~", 0, "<built-in method posix.stat>"), kernels) == "other"
    import gymnasium
    assert profile_run.group((gymnasium.__file__, 1, "make"), kernels) == "environment"
    assert profile_run.group((heads.__file__, 140, "half_mse_and_grad"), kernels) == "purepg Python"


def test_a_short_profile_prints_groups_that_add_up(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    profile_run.main(["--algo", "ppo", "--steps", "512", "--top", "5"])
    out = capsys.readouterr().out
    assert re.search(r"SIMD: (AVX-512|AVX2|SSE)", out)
    total = float(re.search(r"its own time in the functions: ([\d.]+) s", out)[1])
    groups = dict(re.findall(r"^(compiled kernels|NumPy|environment|purepg Python|other)\s+([\d.]+)", out, re.M))
    assert set(groups) == set(profile_run.GROUPS)
    assert abs(sum(map(float, groups.values())) - total) <= 0.03                      # printed to 0.01 s each
    assert len(re.findall(r"^\s+[\d.]+\s+[\d.]+%\s+\d+\s+[\d.]+  .+ \[", out, re.M)) == 5
