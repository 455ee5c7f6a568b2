"""bench/cold_start.py: a cold and a warm run of purepg train, each row's times in the order they arrive."""
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "bench"))
import cold_start  # noqa: E402


def test_cold_run_announces_compiling_and_warm_run_does_not(capsys):
    cold_start.main(["--algo", "ppo"])
    out = capsys.readouterr().out
    assert re.search(r"SIMD: (AVX-512|AVX2|SSE)", out)
    rows = re.findall(r"^\| ppo \| (cold|warm) \| (--|[\d.]+ s) \| ([\d.]+) s \|$", out, re.M)
    assert [r[0] for r in rows] == ["cold", "warm"]
    (_, notice, first), (_, warm_notice, _) = rows
    assert notice != "--" and float(notice[:-2]) < float(first)     # the notice comes before the first line
    assert warm_notice == "--"                                       # the cache the cold run wrote is used
