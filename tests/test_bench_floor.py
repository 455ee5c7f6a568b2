"""bench/floor.py: the floor table runs end to end (one repeat, a short run) and its arithmetic is the printed one."""
import os
import pathlib
import re
import sys

BENCH = pathlib.Path(__file__).parents[1] / "bench"
_env = dict(os.environ)
sys.path.insert(0, str(BENCH))
import floor  # noqa: E402

os.environ.clear()
os.environ.update(_env)          # floor pins the thread variables at import; leave the session's as they were


def test_floor_table_rows_add_up(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    floor.main(["--repeats", "1", "--steps", "2048", "--sb3-ppo", "14.0", "--sb3-trpo", "16.0"])
    out = capsys.readouterr().out
    assert re.search(r"SIMD: (AVX-512|AVX2|SSE)", out) and "NumPy dispatch" in out and "OpenBLAS core" in out
    num = r"\s+([\d.]+)"
    rows = {m[0]: m[1:] for m in re.findall(r"^(PPO|TRPO)" + num * 6, out, re.M)}
    assert set(rows) == {"PPO", "TRPO"}
    assert "160 minibatch steps x" in out and "2 updates x" in out      # 2048 steps: 8 iterations x 20 epochs; 2
    for name, sb3 in (("PPO", 14.0), ("TRPO", 16.0)):
        prods, env, total, purepg, ratio, of_sb3 = map(float, rows[name])
        assert prods > 0 and env > 0 and total >= prods + env - 0.011     # acting products are in total only
        lo, hi = (purepg - 0.005) / (total + 0.005), (purepg + 0.005) / (total - 0.005)   # printed to 0.01 s
        assert lo - 0.006 <= ratio <= hi + 0.006
        assert abs(total / sb3 - of_sb3) <= 0.001
