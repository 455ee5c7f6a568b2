"""purepg.algos.fields: every Config field is documented once (symbol, meaning, range, source), and that
documentation is the docstring table, the command line's help and the check of the range."""
import dataclasses
import math
import re

import pytest

from purepg._check import _INTERVAL
from purepg.algos import ALGOS, fields, get_algo
from purepg.cli import commands as cli

CONFIGS = [get_algo(name).Config for name in ALGOS]


@pytest.mark.parametrize("Config", CONFIGS, ids=list(ALGOS))
def test_every_field_is_documented_in_the_docstring_table(Config):
    doc = Config.__doc__
    for f in dataclasses.fields(Config):
        d = f.metadata
        assert set(d) == set(fields.KEYS) and d["meaning"] and d["source"] and d["range"], f.name
        row = re.search(rf"^{f.name}\s+(\S+)\s+(\S+)\s+(.+)$", doc, re.M)
        assert row, f.name
        assert row[1] == (d["symbol"] or "--") and row[2] == (fields.show(f.default) or "()"), f.name
        assert d["range"] in row[3] and d["meaning"] in row[3] and d["source"] in row[3], f.name


def _numbers_around(lo, hi):
    """Values at and just beyond the ends of the interval lo .. hi (finite ends only)."""
    out = []
    for end in (lo, hi):
        if math.isfinite(end):
            out += [end, end - 1e-9 * max(1.0, abs(end)), end + 1e-9 * max(1.0, abs(end))]
    return out


@pytest.mark.parametrize("Config", CONFIGS, ids=list(ALGOS))
def test_the_documented_interval_is_the_one_checked(Config):
    """For every real field, a value is accepted iff the documented interval contains it."""
    for f in dataclasses.fields(Config):
        spec = f.metadata["range"].removeprefix("None or ")
        m = _INTERVAL.fullmatch(spec)
        if not m:
            continue
        lo, hi = float(m[2]), float(m[3])
        for x in _numbers_around(lo, hi):
            inside = (lo < x if m[1] == "(" else lo <= x) and (x < hi if m[4] == ")" else x <= hi)
            try:
                dataclasses.replace(Config(), **{f.name: x})
                accepted = True
            except ValueError as e:
                accepted = False
                if str(e).startswith("beta_init: expected a value in [beta_min, beta_max]"):
                    continue                                     # ppo-kl's check across three fields
                assert str(e).startswith(f"{f.name}: expected ") and ". Fix: " in str(e)
            assert accepted == inside, (f.name, x)


@pytest.mark.parametrize("Config", CONFIGS, ids=list(ALGOS))
def test_choices_and_integers_follow_the_documented_range(Config):
    for f in dataclasses.fields(Config):
        spec = f.metadata["range"]
        if spec.startswith("integer >= "):
            lo = int(spec.split(">= ")[1])
            with pytest.raises(ValueError, match=rf"^{f.name}: expected an integer >= {lo}, got {lo - 1}\. Fix: "):
                dataclasses.replace(Config(), **{f.name: lo - 1})
        elif " | " in spec and spec != fields._check.BOOLEAN:
            for choice in spec.split(" | "):
                assert getattr(dataclasses.replace(Config(), **{f.name: choice}), f.name) == choice
            with pytest.raises(ValueError, match=rf"^{f.name}: expected one of "):
                dataclasses.replace(Config(), **{f.name: "nonsense"})


def test_help_and_algos_show_the_metadata(capsys):
    """``purepg train --algo X --help`` and ``purepg algos X`` print each field's symbol, meaning and range."""
    from purepg.algos import trpo_lagrangian
    nu = trpo_lagrangian.Config.__dataclass_fields__["nu_init"].metadata
    with pytest.raises(SystemExit):
        cli.main(["train", "--algo", "trpo-lagrangian", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"--nu_init FLOAT, --nu-init FLOAT nu_0: {nu['meaning']}; {nu['range']} ({nu['source']})" in text
    assert cli.main(["algos", "trpo-lagrangian"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"--nu_init\s+1\.0\s+nu_0: {re.escape(nu['meaning'])}; \[0, inf\)", out)


def test_a_config_without_metadata_still_works():
    """A third-party Config of plain dataclass fields: no table rows, no range checks, empty help."""
    @fields.configclass
    class Plain:
        """A plain config."""
        x: int = 3

    assert Plain.__doc__.startswith("A plain config.") and Plain().x == 3
    fields.check(Plain(x=-1))
    assert cli.config_options(Plain) == [("x", 3, "int", False, "")]
