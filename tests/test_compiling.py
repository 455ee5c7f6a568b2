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


class _Kernel:
    """The attributes of a ``cache=True`` Numba function that :func:`compiling.cached` reads."""

    def __init__(self, index_path, signatures=()):
        self._cache = type("C", (), {"_cache_file": type("F", (), {"_index_path": str(index_path)})()})()
        self.signatures = list(signatures)


def test_cached_means_compiled_here_or_indexed_on_disk(tmp_path):
    index = tmp_path / "kernel.nbi"
    assert compiling.cached(_Kernel(index)) is False
    assert compiling.cached(_Kernel(index, ["(float64,)"])) is True             # compiled in this process
    index.write_text("")
    assert compiling.cached(_Kernel(index)) is True                             # Numba's index file
    assert compiling.cached(object()) is True                                   # another layout: compile when called


def test_cached_reads_this_numbas_layout():
    """The fallback above would say True for every kernel if Numba moved the index path: this Numba has it."""
    from purepg.kernels import returns
    assert isinstance(returns._gae_numba._cache._cache_file._index_path, str)
