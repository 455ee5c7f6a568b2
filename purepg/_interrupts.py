"""SIGINT and SIGTERM before a training loop installs its own handlers.

The ``purepg`` command installs :func:`note_and_raise` for both signals as its first act
(:func:`installed`), and keeps it until it ends; a training loop replaces it while it runs (it saves a
checkpoint instead, :func:`purepg.run.runner.train`). The handler does two things:

1. it records the signal in :data:`arrived`;
2. it raises ``KeyboardInterrupt`` (SIGINT) or :class:`Terminated` (SIGTERM), so that a command
   stops where it is.

Raising from a signal handler alone is not reliable while libraries load and compile, which is where a
start-up signal lands. The record covers the two ways it fails:

- *The exception is caught by the code it interrupts.* A Cython module's initialisation turns it into
  its own ImportError; other code may catch it and go on. The command still knows a signal arrived: it
  reports the interruption whatever exception it sees, and a training loop that starts after the signal
  stops before its first iteration (:func:`raise_if_arrived`).
- *The exception is raised where nothing can catch it*: in a finaliser or a weak-reference callback
  (the import system has some). Python prints such an exception as "Exception ignored in ...", with its
  traceback. The signal is recorded, so :func:`installed` keeps these lines off the terminal, and the
  command reports it in its one line.
- *CPython ends the process by SIGINT after the command chose its exit status.* When a KeyboardInterrupt
  leaves code that ``exec`` or ``eval`` runs from a string (generated code, such as a dataclass's
  ``__init__`` or Numba's wrappers), CPython 3.11 sets an "unhandled KeyboardInterrupt" flag, even if
  the exception is caught later. Under ``python -m`` the flag survives to the end, and the interpreter
  then kills itself with SIGINT in place of the exit status. The next string ``exec`` resets the flag on
  entry, so :func:`installed` runs one (``exec("None")``) when the command is done.

This module imports nothing beyond the standard library: it must be usable before NumPy loads.
"""
from __future__ import annotations

import contextlib
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)

arrived: list[int] = []
"""Signal numbers that :func:`note_and_raise` received since :func:`installed` was entered, in order."""


class Terminated(KeyboardInterrupt):
    """SIGTERM outside a training loop (where it is handled like SIGINT, by saving a checkpoint)."""


def exception(signum: int) -> KeyboardInterrupt:
    """The exception for ``signum``: :class:`Terminated` for SIGTERM, else KeyboardInterrupt."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def note_and_raise(signum, frame):
    """Signal handler: record ``signum`` in :data:`arrived`, then raise :func:`exception` of it."""
    arrived.append(signum)
    raise exception(signum)


def raise_if_arrived():
    """Raise :func:`exception` of the first recorded signal, if one arrived and was caught on its way."""
    if arrived:
        raise exception(arrived[0])


@contextlib.contextmanager
def installed():
    """Within the block, SIGINT and SIGTERM go to :func:`note_and_raise`; :data:`arrived` starts empty.

    Re-entrant: inside a block that installed it already, it changes nothing. On leaving the outermost
    block the previous handlers come back and CPython's "unhandled KeyboardInterrupt" flag is reset (see
    the module docstring). Main thread only, as :func:`signal.signal` is.
    """
    if signal.getsignal(signal.SIGINT) is note_and_raise:
        yield
        return
    arrived.clear()
    old = {s: signal.signal(s, note_and_raise) for s in SIGNALS}
    old_hook, sys.unraisablehook = sys.unraisablehook, _quiet_when_recorded(sys.unraisablehook)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        sys.unraisablehook = old_hook
        exec("None")  # noqa: S102 -- resets the flag: a string exec clears it on entry (module docstring)


def _quiet_when_recorded(hook):
    """``sys.unraisablehook`` that drops the signal's own exception (it is recorded, and reported once by
    the command) and passes everything else to ``hook``."""
    def quiet(unraisable):
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and arrived):
            hook(unraisable)
    return quiet
