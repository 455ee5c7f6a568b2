"""One line on stderr when a run compiles Numba kernels, instead of a silent pause.

purepg's kernels are compiled on their first call and cached on disk (``cache=True``; Numba's cache
directory, ``NUMBA_CACHE_DIR`` if set). Only the kernels a run calls are compiled, so the first run of
an algorithm on a machine pauses for a few seconds in its first iteration; later runs load the machine
code from the cache. :func:`announce` subscribes to Numba's ``numba:compile`` event, which fires only
when a function is actually compiled (not when it is loaded from the cache), and prints one line the
first time it fires in the process.
"""
from __future__ import annotations

import os
import sys

MESSAGE = ("purepg: compiling the Numba kernels this run uses (once per machine; later runs load them "
           "from the cache)")
_state = {"installed": False, "said": False}


def _say_once(stream):
    if not _state["said"]:
        _state["said"] = True
        print(MESSAGE, file=stream if stream is not None else sys.stderr, flush=True)


def announce(stream=None):
    """From now on, print :data:`MESSAGE` to ``stream`` (stderr) before the first compilation; idempotent."""
    if _state["installed"]:
        return
    from numba.core import event

    class _FirstCompile(event.Listener):
        def on_start(self, ev):
            _say_once(stream)

        def on_end(self, ev):
            pass

    event.register("numba:compile", _FirstCompile())
    _state["installed"] = True


def cached(kernel):
    """Whether the ``cache=True`` Numba function ``kernel`` runs without compiling: compiled in this process,
    or its index file in Numba's on-disk cache (Numba writes one per function). True where Numba lays its
    cache out otherwise (the kernel is then compiled when called, as without this test)."""
    try:
        return bool(kernel.signatures) or os.path.exists(kernel._cache._cache_file._index_path)
    except AttributeError:
        return True
