"""Running the ``purepg`` command in a child process, as a user would: ``python -m purepg ARGS``.

One place for the child's environment (the repository on ``PYTHONPATH``, BLAS and Numba threads
pinned to 1) and for the spawn, shared by the command-line tests.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def env(extra_path=None):
    """This process's environment, with the repository (and ``extra_path``) importable, one thread."""
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    return {**os.environ, **{k: "1" for k in THREADS}, "PYTHONPATH": os.pathsep.join(paths)}


def _sigint_as_in_a_terminal():
    """SIGINT back to its default in the child, as a command typed in a terminal has it. A suite started
    as a background job (``cmd &`` in a script, nohup, some CI runners) inherits SIGINT ignored, and
    Python then leaves it ignored: a Ctrl-C test would test the launcher, not purepg."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen(args, cwd, extra_path=None, code=None, **kwargs):
    """Start ``python -m purepg ARGS`` (or ``python -c CODE ARGS``) in ``cwd``, text pipes for its output."""
    head = ["-c", code] if code else ["-m", "purepg"]
    return subprocess.Popen([sys.executable, *head, *args], cwd=cwd, env=env(extra_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_as_in_a_terminal, **kwargs)


def run(args, cwd, timeout=120, extra_path=None, code=None):
    """:func:`popen` to completion: ``(exit status, stdout, stderr)``."""
    p = popen(args, cwd, extra_path, code)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    return p.returncode, out, err
