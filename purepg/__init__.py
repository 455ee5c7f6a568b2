"""purepg: an autograd-free reference implementation of the policy-gradient family.

Every gradient is derived by hand (see each module's docstring), compiled with Numba where it is hot,
and checked against finite differences. float64 throughout; parameters are explicit flat vectors in
PyTorch's ``nn.Sequential`` layout.
"""
import os as _os

# purepg is single-threaded by design: its arrays are small (N x 64), where a multithreaded BLAS
# spends more time waking threads than computing (measured: a 128-row matmul takes ~15 ms instead of
# ~0.1 ms on a loaded 2-core machine). Effective only if numpy is not imported yet; set these
# variables yourself to override.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"

_MODEL = ("MLP", "Policy", "CategoricalPolicy", "GaussianPolicy", "ValueFunction")


def __getattr__(name):
    """The model classes (:mod:`purepg.model`), imported on first use: ``import purepg`` itself loads no
    NumPy or Numba, so the command can report a Ctrl-C during its start-up in one line."""
    if name in _MODEL:
        from purepg import model
        return getattr(model, name)
    raise AttributeError(f"module 'purepg' has no attribute {name!r}")


__all__ = ["MLP", "Policy", "CategoricalPolicy", "GaussianPolicy", "ValueFunction", "__version__"]
