"""The one error of every kernel wrapper: a backend that is neither the kernel nor its reference."""


def unknown_backend(backend, choices=("numba", "numpy")):
    """The ValueError for an unknown ``backend`` name (to raise)."""
    names = " or ".join(", ".join(repr(c) for c in choices).rsplit(", ", 1))
    return ValueError(f"backend: expected {names}, got {backend!r}. Fix: pick one of those")
