"""What every benchmark reports about the machine it ran on (one place, imported by the scripts here).

Three libraries pick SIMD code for purepg's float64 work at run time, and each can be held back by an
environment variable, so every report says what was in force:

* the CPU's own SIMD level (AVX-512 if ``/proc/cpuinfo`` lists ``avx512f``, else AVX2, else older);
* NumPy's dispatch: the groups it was built for (``__cpu_dispatch__``) and those the CPU runs
  (``__cpu_features__``), less any that ``NPY_DISABLE_CPU_FEATURES`` turned off. NumPy's float64
  ``tanh`` has a SIMD version only in its AVX-512 groups (elsewhere one C-library call per element);
* Numba's target (``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES``, else the host), which sets the vector
  width of purepg's kernels;
* OpenBLAS's kernel for the products (``OPENBLAS_CORETYPE``, else its own choice), read back from the
  library NumPy loaded.

The AVX2 case can be run on an AVX-512 machine with
``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=""
OPENBLAS_CORETYPE=Haswell`` (:data:`AVX2_ENV`); :func:`simd_level` then reports "AVX2 (emulated on AVX-512)".
Where PyTorch runs beside purepg (the Stable-Baselines3 comparisons) three more variables hold it back,
and :func:`torch_simd` reports them: ``ATEN_CPU_CAPABILITY=avx2`` (its own kernels),
``MKL_ENABLE_INSTRUCTIONS=AVX2`` (its products: MKL chooses its code by the CPU alone, so without this a
1500^3 float32 product here took 51 ms, with it 112 ms) and ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN).
"""
import ctypes
import glob
import os
import platform
import sys

import numpy as np

AVX2_ENV = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "NUMBA_CPU_NAME": "haswell",
            "NUMBA_CPU_FEATURES": "", "OPENBLAS_CORETYPE": "Haswell"}
#: The same for PyTorch, where it runs beside purepg: ATen's kernels, MKL's products, oneDNN.
TORCH_AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _cpuinfo(key):
    """The first ``key`` line of /proc/cpuinfo (``""`` where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), "")
    except OSError:
        return ""


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, else ``platform.processor()``."""
    return _cpuinfo("model name") or platform.processor() or "unknown"


def numpy_dispatch() -> tuple:
    """NumPy's ``(built-for groups, groups in force)``: ``__cpu_dispatch__`` and those of them it runs."""
    try:
        from numpy._core import _multiarray_umath as mu
    except ImportError:                                          # NumPy < 2
        from numpy.core import _multiarray_umath as mu
    built = list(getattr(mu, "__cpu_dispatch__", []))
    return built, [g for g in built if mu.__cpu_features__.get(g)]


def simd_level() -> str:
    """The SIMD level the run used: the CPU's, or AVX2 emulated when AVX-512 is switched off everywhere."""
    flags = set(_cpuinfo("flags").split())
    cpu = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE/AVX (no AVX2)"
    if cpu == "AVX-512" and not any(g.startswith(("X86_V4", "AVX512")) for g in numpy_dispatch()[1]) \
            and os.environ.get("NUMBA_CPU_NAME") == "haswell":
        return "AVX2 (emulated on AVX-512)"
    return cpu


def numba_target() -> str:
    """Numba's target CPU and features: the ``NUMBA_CPU_*`` overrides or the host."""
    from numba.core import config
    import llvmlite.binding as ll
    name = config.CPU_NAME or ll.get_host_cpu_name()
    feats = config.CPU_FEATURES
    return f"{name}" + ("" if feats is None else f" (features {feats!r})")


def blas_kernel() -> str:
    """The OpenBLAS core NumPy's library runs (asked from the library), and the override if any."""
    core = "unknown"
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*.so*"))
    for lib in libs:
        try:
            dll = ctypes.CDLL(lib)
            fn = next(getattr(dll, n) for n in ("scipy_openblas_get_corename64_", "openblas_get_corename")
                      if hasattr(dll, n))
            fn.restype = ctypes.c_char_p
            core = fn().decode()
        except (OSError, StopIteration):
            continue
    override = os.environ.get("OPENBLAS_CORETYPE")
    return f"OpenBLAS core {core}" + (f" (OPENBLAS_CORETYPE={override})" if override else "")


def torch_simd() -> str:
    """PyTorch's SIMD in this process, if it is loaded: ATen's capability and the MKL / oneDNN limits set
    (``""`` without PyTorch). MKL and oneDNN choose by the CPU unless their variable holds them back."""
    torch = sys.modules.get("torch")
    if torch is None:
        return ""
    try:
        aten = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        aten = "unknown"
    mkl = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "the CPU's (MKL_ENABLE_INSTRUCTIONS unset)")
    dnn = os.environ.get("ONEDNN_MAX_CPU_ISA", "the CPU's (ONEDNN_MAX_CPU_ISA unset)")
    return f"torch {torch.__version__}: ATen {aten}, MKL {mkl}, oneDNN {dnn}"


def info() -> dict:
    """CPU, SIMD level, dispatch, cores, platform, interpreter, NumPy and the BLAS kernel."""
    built, active = numpy_dispatch()
    return {"cpu": cpu_model(), "simd": simd_level(), "numpy_dispatch": active, "numpy_built": built,
            "numba_target": numba_target(), "logical_cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "blas": blas_kernel()}


def summary() -> str:
    """:func:`info` on two lines."""
    m = info()
    return (f"{m['platform']}, {m['cpu']}, {m['logical_cores']} cores, Python {m['python']}, NumPy {m['numpy']}\n"
            f"SIMD: {m['simd']}; NumPy dispatch {'/'.join(m['numpy_dispatch']) or 'baseline only'} "
            f"(built for {'/'.join(m['numpy_built'])}); Numba target {m['numba_target']}; {m['blas']}"
            + (f"\n{torch_simd()}" if torch_simd() else ""))


def command() -> str:
    """This process's command line."""
    return " ".join([sys.executable, *sys.argv])
