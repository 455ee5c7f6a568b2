"""The command's start-up handler (purepg/_interrupts.py): a signal is reported as the interruption it
was even when the code it interrupts catches it, and the exit status it chose is the one the process
ends with. The random start-up signals of the real command are in test_faults.py; these tests make each
mechanism happen on purpose."""
import contextlib
import io
import signal
import subprocess
import sys

import pytest

from helpers import cli_process
from purepg import _interrupts
from purepg.cli import commands, errors

TRAIN = ["train", "--num-envs", "2", "--num-steps", "16", "--epochs", "1", "--minibatch-size", "16",
         "--hidden", "8", "--vf-hidden", "8", "--steps", "64", "--quiet"]
SIGNALS = pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGTERM, id="SIGTERM")
REPORT = "purepg: interrupted by {} before training started; nothing was saved"


def _caught_by_a_library(sig):
    """Deliver ``sig`` to this process and catch what the handler raises, as a library could."""
    try:
        signal.raise_signal(sig)
    except KeyboardInterrupt:
        return
    raise AssertionError(f"{sig.name} raised nothing")


def _main(args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = commands.main([str(a) for a in args])
    return rc, err.getvalue()


@pytest.mark.parametrize("sig", SIGNALS)
def test_the_handler_records_and_raises_the_signals_own_exception(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}   # SIG_IGN in a background job
    with _interrupts.installed():
        with pytest.raises(KeyboardInterrupt) as e:
            signal.raise_signal(sig)
        assert _interrupts.arrived == [sig]
    assert isinstance(e.value, _interrupts.Terminated) == (sig == signal.SIGTERM)
    assert {s: signal.getsignal(s) for s in before} == before                  # the old handlers are back


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_signal_a_library_caught_still_stops_training_before_it_starts(tmp_path, sig):
    out = tmp_path / "run"
    with _interrupts.installed():
        _caught_by_a_library(sig)
        rc, err = _main([*TRAIN, "--out", out])
    assert (rc, err.strip()) == (128 + sig, REPORT.format(sig.name))
    assert not out.exists()                                     # nothing half-made is left behind
    assert _main([*TRAIN, "--out", out])[0] == 0                # and the same command runs afterwards


@pytest.mark.parametrize("error", [ValueError, ImportError])
def test_an_error_a_library_made_of_the_signal_is_reported_as_the_interruption(monkeypatch, error):
    def command(argv):
        try:
            signal.raise_signal(signal.SIGTERM)
        except KeyboardInterrupt:
            raise error("cannot initialise module strings") from None   # what a Cython module's init does

    monkeypatch.setattr(commands, "main", lambda argv=None: errors.run(command, argv))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        from purepg.cli import main
        rc = main([])
    assert (rc, err.getvalue().strip()) == (143, REPORT.format("SIGTERM"))


CAUGHT_IN_EXEC = """
import sys
from purepg import _interrupts
with {}:
    try:
        exec("raise KeyboardInterrupt")      # leaves code run from a string: CPython notes it
    except KeyboardInterrupt:
        pass
sys.exit(130)
"""


def test_the_exit_status_survives_an_interrupt_caught_after_exec_code(tmp_path):
    """Under ``python -m``, CPython 3.11 ends a process by SIGINT (status -2) in place of its exit status
    if a KeyboardInterrupt ever left exec'd code, caught or not; leaving :func:`installed` undoes that."""
    def status(block):
        (tmp_path / "child.py").write_text(CAUGHT_IN_EXEC.format(block))
        return subprocess.run([sys.executable, "-m", "child"], cwd=tmp_path, env=cli_process.env(),
                              capture_output=True, timeout=60).returncode

    assert status("_interrupts.installed()") == 130
    without = status("open(__file__)")        # the same child without the handler: -2 where CPython does this
    assert without in (130, -signal.SIGINT)


class _SignalledWhenFinalised:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)      # the handler raises inside a finaliser: nothing can catch it


def test_a_signal_inside_a_finaliser_is_recorded_without_a_traceback(monkeypatch):
    printed = []                                 # what Python would print as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    with _interrupts.installed():
        _SignalledWhenFinalised()                # collected at once
        assert _interrupts.arrived == [signal.SIGINT]
    assert printed == []


def test_other_exceptions_in_a_finaliser_are_still_printed(monkeypatch):
    class Broken:
        def __del__(self):
            raise RuntimeError("a real defect")

    printed = []
    def hook(unraisable):
        printed.append(unraisable.exc_type)

    monkeypatch.setattr(sys, "unraisablehook", hook)
    with _interrupts.installed():
        Broken()
    assert printed == [RuntimeError] and sys.unraisablehook is hook          # and the hook is back
