"""``python -m purepg``: the same command as ``purepg`` (see :mod:`purepg.cli`)."""
import sys

from purepg.cli import main

sys.exit(main())
