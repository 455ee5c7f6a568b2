"""The ``purepg`` command (:mod:`purepg.cli.commands`)."""
import sys


def main(argv=None) -> int:
    """Entry point of ``purepg``: :func:`purepg.cli.commands.main`, imported here so that Ctrl-C while
    the libraries load ends with one line instead of a traceback."""
    try:
        from purepg.cli import commands
    except KeyboardInterrupt:
        print("purepg: interrupted by SIGINT before training started; nothing was saved", file=sys.stderr)
        return 130
    return commands.main(argv)


__all__ = ["main"]
