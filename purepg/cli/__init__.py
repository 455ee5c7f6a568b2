"""The ``purepg`` command (:mod:`purepg.cli.commands`)."""
from purepg import _interrupts
from purepg.cli import errors


def main(argv=None) -> int:
    """Entry point of ``purepg``: :func:`purepg.cli.commands.main`, imported and run under the command's
    SIGINT / SIGTERM handler (:mod:`purepg._interrupts`), so that a signal while the libraries load ends
    with one line.

    A signal that lands inside a library may surface as that library's error (a Cython module's
    ImportError), or be caught there and not surface at all; the handler records it, so it is reported
    as the interruption it was either way.
    """
    with _interrupts.installed():
        try:
            from purepg.cli import commands
            _interrupts.raise_if_arrived()           # an import caught the interrupt
            return commands.main(argv)
        except BaseException:                        # noqa: BLE001 -- only reported if a signal caused it
            if not _interrupts.arrived:
                raise
            return errors.interrupted_early(_interrupts.exception(_interrupts.arrived[0]))


__all__ = ["main"]
