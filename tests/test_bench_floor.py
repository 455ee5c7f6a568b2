"""bench/floor.py: the floor table runs end to end (one repeat) and its arithmetic is the printed one."""
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


def test_floor_table_rows_add_up(capsys):
    floor.main(["--repeats", "1", "--sb3-ppo", "14.0", "--sb3-trpo", "16.0"])
    out = capsys.readouterr().out
    assert "OPENBLAS_CORETYPE" in out or "OpenBLAS kernels chosen" in out        # the kernel is reported
    rows = {m[0]: m[1:] for m in re.findall(r"^(PPO|TRPO)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)}
    assert set(rows) == {"PPO", "TRPO"}
    for name, sb3 in (("PPO", 14.0), ("TRPO", 16.0)):
        upd, roll, total, ratio = map(float, rows[name])
        assert upd > 0 and roll > 0 and abs(upd + roll - total) <= 0.011
        assert abs(total / sb3 - ratio) <= 0.001
