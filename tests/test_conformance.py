"""The conformance suite: Stable-Baselines3's and sb3-contrib's own updates against purepg's (skipped
cleanly where the libraries are not installed: pip install -e ".[crosscheck]"), and the suite's own
reporting (no library needed)."""
import json

import numpy as np
import pytest

from purepg import cli
from purepg.verify import conformance


def _assert_rows(rows):
    bad = [f"{r.case}: {r.quantity} {r.error:.2e} > {r.tol:.0e}" for r in rows if not r.ok]
    assert rows and not bad, "\n".join(bad)


@pytest.mark.parametrize("i", range(3))
def test_sb3_ppo_update_is_reproduced(i):
    pytest.importorskip("torch")
    pytest.importorskip("stable_baselines3")
    from purepg.verify import conformance_ppo

    rows = conformance_ppo.CASES[i]()
    _assert_rows(rows)
    assert len([r for r in rows if r.tol == conformance.TOL]) >= 12        # every quantity at 1e-9


@pytest.mark.parametrize("i", range(4))
def test_sb3_contrib_trpo_update_is_reproduced(i):
    pytest.importorskip("torch")
    pytest.importorskip("sb3_contrib")
    from purepg.verify import conformance_trpo

    _assert_rows(conformance_trpo.CASES[i]())


def test_tianshou_ppo_update_is_reproduced():
    pytest.importorskip("torch")
    pytest.importorskip("tianshou")
    from purepg.verify import conformance_tianshou

    rows = conformance_tianshou.CASES[0]()
    _assert_rows(rows)
    assert all(r.tol in (0.0, conformance.TOL) for r in rows if "float64 ratio" in r.case)   # 1e-9 or exact


def test_rel_is_relative_to_the_library_value():
    assert conformance.rel([1.0, 2.0 + 2e-9], [1.0, 2.0]) == pytest.approx(1e-9)
    assert conformance.rel([1e-20], [0.0]) == 1e-20
    assert conformance.rel(np.zeros(2), np.zeros(3)) == np.inf


def test_a_missing_library_is_skipped_with_its_install_command(monkeypatch, capsys):
    import importlib

    real = importlib.import_module

    def fake(name, *a):
        if name in ("stable_baselines3", "sb3_contrib", "tianshou"):
            raise ImportError(name)
        return real(name, *a)
    monkeypatch.setattr(importlib, "import_module", fake)
    rows, skipped = conformance.run()
    assert rows == [] and skipped == conformance.INSTALL
    assert cli.main(["conformance", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped"]["sb3"].startswith("pip install torch==2.13.0")


def test_a_disagreement_fails_the_command(monkeypatch, capsys):
    rows = [conformance.Row("case", "quantity", 1e-3, 1e-9), conformance.Row("case", "other", 0.0, 1e-9)]
    monkeypatch.setattr(conformance, "run", lambda libraries=None: (rows, {}))
    assert cli.main(["conformance"]) == 1
    out = capsys.readouterr().out
    assert "NO" in out and "yes" in out
    assert cli.main(["conformance", "--library", "nope"]) == 2
