"""The ``purepg`` command (:mod:`purepg.cli.commands`)."""
import signal

from purepg.cli import errors


def main(argv=None) -> int:
    """Entry point of ``purepg``: :func:`purepg.cli.commands.main`, imported here under the command's
    SIGINT / SIGTERM handling, so that a signal while the libraries load ends with one line."""
    old = signal.signal(signal.SIGTERM, errors.on_sigterm)
    try:
        from purepg.cli import commands
        return commands.main(argv)
    except KeyboardInterrupt as e:
        return errors.interrupted_early(e)
    finally:
        signal.signal(signal.SIGTERM, old)


__all__ = ["main"]
