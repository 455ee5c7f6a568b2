"""bench/machine.py: the PyTorch line of a benchmark's machine summary names what PyTorch computes with."""
import pathlib
import sys
import types

BENCH = pathlib.Path(__file__).parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import machine  # noqa: E402


def _fake_torch(capability=None):
    """A module with what ``torch_simd`` reads: the version and, unless None, ATen's capability."""
    torch = types.ModuleType("torch")
    torch.__version__ = "9.9.9+cpu"
    if capability is not None:
        torch.backends = types.SimpleNamespace(cpu=types.SimpleNamespace(get_cpu_capability=lambda: capability))
    return torch


def test_no_torch_line_without_torch(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert machine.torch_simd() == ""
    assert "torch" not in machine.summary()


def test_torch_line_names_aten_and_the_limits_set(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", _fake_torch("AVX2"))
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    line = "torch 9.9.9+cpu: ATen AVX2, MKL AVX2, oneDNN the CPU's (ONEDNN_MAX_CPU_ISA unset)"
    assert machine.torch_simd() == line
    assert machine.summary().endswith("\n" + line)


def test_torch_without_the_capability_query_says_unknown(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", _fake_torch())
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    assert machine.torch_simd() == ("torch 9.9.9+cpu: ATen unknown, MKL the CPU's (MKL_ENABLE_INSTRUCTIONS unset), "
                                    "oneDNN AVX2")
