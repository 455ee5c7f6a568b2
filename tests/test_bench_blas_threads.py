"""bench/blas_threads.py: the table runs end to end, one row per N, each ratio the larger time over "alone"."""
import os
import pathlib
import re
import sys

BENCH = pathlib.Path(__file__).parents[1] / "bench"
_env = dict(os.environ)
sys.path.insert(0, str(BENCH))
import blas_threads  # noqa: E402

os.environ.clear()
os.environ.update(_env)          # the script pins the thread variables at import; leave the session's as they were

ROW = r"^\| (\d+) \| ([\d.]+) us \| ([\d.]+) / ([\d.]+) us \| ([\d.]+) \| ([\d.]+) / ([\d.]+) us \| ([\d.]+) \|$"


def test_one_row_per_n_with_consistent_ratios(capsys):
    blas_threads.main(["--rows", "8,16", "--calls", "300"])
    out = capsys.readouterr().out
    assert re.search(r"SIMD: (AVX-512|AVX2|SSE)", out) and "OpenBLAS core" in out
    rows = re.findall(ROW, out, re.M)
    assert [r[0] for r in rows] == ["8", "16"]
    for _, alone, t1, t2, r_t, p1, p2, r_p in (map(float, r) for r in rows):
        assert abs(max(t1, t2) / alone - r_t) <= 0.05 * r_t + 0.02          # times printed to 0.1 us
        assert abs(max(p1, p2) / alone - r_p) <= 0.05 * r_p + 0.02
