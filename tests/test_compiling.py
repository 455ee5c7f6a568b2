"""The first-compilation notice: one line on stderr at the first real compilation, none before, none after."""
from numba import njit

from purepg.kernels import compiling


def test_first_compilation_is_announced_once(capsys, monkeypatch):
    monkeypatch.setattr(compiling, "_state", {"installed": False, "said": False})
    compiling.announce()
    compiling.announce()                                         # idempotent: one listener
    plus_one, times_two = njit(lambda x: x + 1), njit(lambda x: x * 2)   # no cache: always compiled
    assert capsys.readouterr().err == ""                         # nothing until something compiles
    assert plus_one(1) == 2 and times_two(2.0) == 4.0 and plus_one(1.5) == 2.5
    err = capsys.readouterr().err
    assert err.count(compiling.MESSAGE) == 1 and err.strip() == compiling.MESSAGE
