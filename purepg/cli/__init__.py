"""The ``purepg`` command (:mod:`purepg.cli.commands`)."""
from purepg.cli.commands import main

__all__ = ["main"]
