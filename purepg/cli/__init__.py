"""The ``purepg`` command (:mod:`purepg.cli.commands`)."""
import signal

from purepg.cli import errors


def main(argv=None) -> int:
    """Entry point of ``purepg``: :func:`purepg.cli.commands.main`, imported here under the command's
    SIGINT / SIGTERM handling, so that a signal while the libraries load ends with one line.

    A signal that lands inside a compiled extension's initialisation may surface as that module's
    ImportError, or not at all, rather than as KeyboardInterrupt; the handler records the signal, so it
    is reported as the interruption it was either way.
    """
    arrived = []

    def note(signum, frame):
        arrived.append(signum)
        raise _raised_by(signum)

    old = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        from purepg.cli import commands
        _preload()
    except BaseException as e:                       # noqa: BLE001 -- only reported if a signal caused it
        if not arrived:
            raise
        return errors.interrupted_early(e if isinstance(e, KeyboardInterrupt) else _raised_by(arrived[-1]))
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if arrived:                                      # the interrupt was swallowed by an extension's import
        return errors.interrupted_early(_raised_by(arrived[-1]))
    return main_loaded(commands, argv)


def _raised_by(signum):
    """The exception the start-up handler raises for ``signum``: Terminated (SIGTERM) or KeyboardInterrupt."""
    return errors.Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _preload():
    """Import under the start-up handler what training would otherwise import later, outside it: NumPy
    loads ``numpy.random`` (Cython extensions) only on first use, and a signal inside an extension's
    initialisation surfaces as that module's error instead of KeyboardInterrupt."""
    import gymnasium  # noqa: F401
    import numpy.random  # noqa: F401

    from purepg.run import runner  # noqa: F401


def main_loaded(commands, argv):
    """:func:`purepg.cli.commands.main` once the libraries are loaded."""
    old = signal.signal(signal.SIGTERM, errors.on_sigterm)
    try:
        return commands.main(argv)
    except KeyboardInterrupt as e:
        return errors.interrupted_early(e)
    finally:
        signal.signal(signal.SIGTERM, old)


__all__ = ["main"]
