"""How the ``purepg`` command ends: every error one line on stderr with an exit status, never a traceback.

=========================================================  ======================================
what happened                                              exit status
=========================================================  ======================================
the command succeeded                                      0
bad input: options, files of a run directory, a run        2 (:data:`EXIT_USAGE`)
directory another process writes, a full disk, NaN
SIGINT (Ctrl-C) or SIGTERM: training saved a checkpoint    128 + signal number (130, 143)
SIGINT or SIGTERM before training started                  128 + signal number; nothing was saved
=========================================================  ======================================

Set ``PUREPG_DEBUG=1`` to see the traceback of an error instead.
"""
from __future__ import annotations

import os
import signal
import sys

from purepg import _interrupts
from purepg._interrupts import Terminated  # noqa: F401  (part of this module's interface)

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


def one_line(e):
    return " ".join(str(e).split())


def interrupted_early(e):
    signum = signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT
    print(f"purepg: interrupted by {signum.name} before training started; nothing was saved", file=sys.stderr)
    return 128 + signum


def run(command, argv) -> int:
    """``command(argv)``'s exit status, with every error turned into one line on stderr."""
    with _interrupts.installed():
        try:
            return _run(command, argv)
        except KeyboardInterrupt as e:              # raised again while reporting another error
            return interrupted_early(e)


def _run(command, argv):
    try:
        import gymnasium

        from purepg.run.runner import Interrupted
        try:
            return command(argv)
        except Interrupted as e:
            print(f"purepg: {one_line(e)}", file=sys.stderr)
            return 128 + e.signum
        except (ValueError, TypeError, OSError, gymnasium.error.Error) as e:
            if _interrupts.arrived:                 # a library turned the signal into its own error
                return interrupted_early(_interrupts.exception(_interrupts.arrived[0]))
            if os.environ.get("PUREPG_DEBUG"):
                raise
            if isinstance(e, BrokenPipeError):      # e.g. purepg algos | head
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return 0
            print(f"purepg: error: {one_line(e)}", file=sys.stderr)
            return EXIT_USAGE
    except UsageError as e:
        print(one_line(e), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        return interrupted_early(e)
