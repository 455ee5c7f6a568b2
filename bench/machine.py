"""What every benchmark reports about the machine it ran on (one place, imported by the scripts here).

The BLAS kernel matters for purepg's float64 matrix products: OpenBLAS picks its kernels from the CPU
unless ``OPENBLAS_CORETYPE`` names one. On an AVX-512 CPU with ``OPENBLAS_CORETYPE=Haswell`` (AVX2), the
256 x 64 x 64 products of a PPO minibatch step take about 1.4x as long as with OpenBLAS's own choice,
so every report says which was in force.
"""
import os
import platform
import sys

import numpy as np


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, else ``platform.processor()``."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return model


def blas_kernel() -> str:
    """Which OpenBLAS kernels run: the ``OPENBLAS_CORETYPE`` override, or OpenBLAS's own choice."""
    core = os.environ.get("OPENBLAS_CORETYPE")
    return f"OPENBLAS_CORETYPE={core}" if core else "OpenBLAS kernels chosen for the CPU"


def info() -> dict:
    """CPU, cores, platform, interpreter, NumPy and the BLAS kernel (the scripts add their own versions)."""
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "numpy": np.__version__, "blas": blas_kernel()}


def summary() -> str:
    """:func:`info` on one line."""
    m = info()
    return (f"{m['platform']}, {m['cpu']}, {m['logical_cores']} cores, Python {m['python']}, NumPy {m['numpy']}, "
            f"{m['blas']}")


def command() -> str:
    """This process's command line."""
    return " ".join([sys.executable, *sys.argv])
