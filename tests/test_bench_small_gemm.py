"""bench/small_gemm.py: the product table runs end to end, one row per N, the loops checked against matmul."""
import os
import pathlib
import re
import sys

BENCH = pathlib.Path(__file__).parents[1] / "bench"
_env = dict(os.environ)
sys.path.insert(0, str(BENCH))
import small_gemm  # noqa: E402

os.environ.clear()
os.environ.update(_env)          # the script pins the thread variables at import; leave the session's as they were


def test_one_row_per_n_with_consistent_ratios(capsys):
    small_gemm.main(["--rows", "2,8", "--blocks", "1"])
    out = capsys.readouterr().out
    assert re.search(r"SIMD: (AVX-512|AVX2|SSE)", out) and "OpenBLAS core" in out
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", out, re.M)
    assert [r[0] for r in rows] == ["2", "8"]
    for n, t_mm, rate, t_ikj, ikj_ratio, t_dot, dot_ratio in (map(float, r) for r in rows):
        assert abs(2 * n * 64 * 64 / (t_mm * 1e-6) / 1e9 - rate) <= 0.05 * rate + 0.1     # printed to 0.01 us
        assert abs(t_ikj / t_mm - ikj_ratio) <= 0.01 * ikj_ratio + 0.01 and abs(t_dot / t_mm - dot_ratio) <= 0.01 * dot_ratio + 0.01


def test_the_loops_compute_the_product():
    """Within the rounding bound of a length-K dot product summed in any order, K eps sum_k |h_ik W_jk|."""
    import numpy as np
    rng = np.random.default_rng(1)
    h, W = rng.standard_normal((5, 7)), rng.standard_normal((3, 7))
    ref, bound = h @ W.T, 2 * 7 * np.finfo(float).eps * (np.abs(h) @ np.abs(W).T)   # both sides' rounding
    assert np.all(np.abs(small_gemm.ikj(h, np.ascontiguousarray(W.T), np.empty((5, 3))) - ref) <= bound)
    assert np.all(np.abs(small_gemm.dot(h, W, np.empty((5, 3))) - ref) <= bound)
