"""Run-directory mechanics: the writer's lock, file modes, disk-full reports, the progress line."""
import errno
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from purepg.run import checkpoint, lock, runner
from purepg.run.progress import ProgressLine
from test_runner import _interrupted_run, noop_registered  # noqa: F401  (a fixture)


# ------------------------------------------------------------------- lock, modes, disk ----
def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_the_lock_admits_one_writer_and_names_it(tmp_path):
    with lock.RunLock(tmp_path) as held:
        assert held.stale_pid is None
        assert (tmp_path / lock.LOCK_NAME).read_text() == f"{os.getpid()}\n"
        for attempt in (lambda: lock.RunLock(tmp_path).acquire(), lambda: lock.check_free(tmp_path)):
            with pytest.raises(lock.RunLockedError, match=rf"in use by process {os.getpid()}, which holds the lock "
                                                          rf"file .*; refusing a second writer\. Fix: wait"):
                attempt()
        os.pwrite(held.fd, f"{_dead_pid()}\n".encode().ljust(16), 0)      # held, by a process that is gone
        with pytest.raises(lock.RunLockedError, match=r"is no longer running: a process it started kept the lock "
                                                      r"\(a stale lock\)\. Fix: stop the leftover process \(fuser"):
            lock.RunLock(tmp_path).acquire()
    assert (tmp_path / lock.LOCK_NAME).read_bytes() == b""                 # released
    lock.check_free(tmp_path)


def test_a_lock_file_that_cannot_be_opened_is_one_line(tmp_path):
    with pytest.raises(lock.LockFileError, match=r"run directory .*nowhere: cannot open its lock file .*\.purepg\.lock "
                                                 r"\(No such file or directory\); .* Fix: use a directory you may write"):
        lock.RunLock(tmp_path / "nowhere").acquire()


def test_a_lock_left_by_a_killed_process_is_taken_over_and_reported(tmp_path):
    dead = _dead_pid()
    (tmp_path / lock.LOCK_NAME).write_text(f"{dead}\n")                    # what SIGKILL leaves: a PID, no flock
    with lock.RunLock(tmp_path) as held:
        assert held.stale_pid == dead
        assert re.fullmatch(rf"purepg: note: process {dead} stopped writing .* without releasing its lock \(it was "
                            rf"killed\); the stale lock was taken over", lock.stale_note(held))


def test_files_get_the_umask_mode_and_keep_their_mode_on_resume(tmp_path, noop_registered):
    old = os.umask(0o027)
    try:
        _interrupted_run(tmp_path / "r", 3, 64, 224)
        os.chmod(tmp_path / "r" / "checkpoint.npz", 0o600)
        modes = {n: os.stat(tmp_path / "r" / n).st_mode & 0o777 for n in os.listdir(tmp_path / "r")}
        assert modes == {"config.json": 0o640, "progress.csv": 0o640, "checkpoint.npz": 0o600, ".purepg.lock": 0o640}
        runner.resume(str(tmp_path / "r"), total_steps=256, verbose=False)
        assert {n: os.stat(tmp_path / "r" / n).st_mode & 0o777 for n in os.listdir(tmp_path / "r")} == modes
    finally:
        os.umask(old)


def test_a_full_disk_names_the_file_and_the_free_space_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    checkpoint.atomic_write_bytes(str(path), b"old")

    def full(f, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint, "_write_all", full)
    for write in (checkpoint.atomic_write_bytes, checkpoint.append_bytes):
        with pytest.raises(checkpoint.DiskFullError, match=rf"^disk full: writing {re.escape(str(path))} \(5 bytes\) "
                                                           r"failed \(No space left on device\); free space on its "
                                                           r"filesystem: [\d.]+ (bytes|kB|MB|GB)\. .* Fix: free disk"):
            write(str(path), b"new!!")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["checkpoint.npz"]


# ----------------------------------------------------------------------- progress line ----
class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def _show(tty, n=100, dt=0.5):
    clock = iter(np.arange(0, (n + 2) * dt, dt))
    s = _Stream(tty)
    line = ProgressLine(32 * n, 0, s, clock=lambda: float(next(clock)))
    for i in range(1, n + 1):
        line.update(32 * i, float(i))
    line.close()
    return s.getvalue()


def test_progress_is_one_line_in_place_on_a_terminal():
    out = _show(tty=True)
    assert out.count("\n") == 1 and out.endswith("\n") and out.count("\r") == 100
    last = out.split("\r")[-1].strip()
    assert last == "3200/3200 steps (100%)  return    100.00       64 steps/s  ETA 0:00"
    assert out.split("\r")[1].strip() == "32/3200 steps (  1%)  return      1.00        ? steps/s  ETA ?"
    assert out.split("\r")[2].strip() == "64/3200 steps (  2%)  return      2.00       64 steps/s  ETA 0:49"


def test_progress_in_a_file_is_a_newline_terminated_line_now_and_then():
    out = _show(tty=False)
    lines = out.splitlines()
    assert "\r" not in out and len(lines) == 11          # the first iteration, then every tenth of the run
    assert lines[-1] == "3200/3200 steps (100%)  return    100.00       64 steps/s  ETA 0:00"
    assert len(_show(tty=False, n=10, dt=40.0).splitlines()) == 10       # and at least every 30 s
