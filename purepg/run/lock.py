"""One writer per run directory: an OS-level lock on ``RUN_DIR/.purepg.lock``.

``purepg train`` and ``purepg resume`` hold an exclusive :func:`fcntl.flock` on this file for as long as
they write into the directory, so a second writer is refused (with the owner's PID) instead of
interleaving its rows with the first one's. The lock belongs to the open file: the kernel drops it when
the owning process ends in any way, SIGKILL included, so a killed run never leaves the directory locked.

While the lock is held the file holds the owner's PID; it is emptied on release. Hence

* a PID found in the file by the next owner names a process that ended without releasing (it was
  killed): the lock is taken over and that is reported (``RunLock.stale_pid``);
* a lock that is held while the PID in the file is no longer running means that a process started by
  the dead owner (which inherited the open file) still holds it: refused, naming that situation and
  how to find the process.

The lock is advisory and needs a local filesystem with ``flock`` support (ext4, xfs, btrfs, tmpfs; not
every network filesystem).
"""
from __future__ import annotations

import errno
import fcntl
import os

LOCK_NAME = ".purepg.lock"


class RunLockedError(ValueError):
    """The run directory is being written by another process."""


class LockFileError(ValueError):
    """The lock file cannot be opened (a directory this user may not write, a missing directory)."""


def _read_pid(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # exists, owned by another user
        return True
    return True


def _refusal(run_dir, path, pid):
    if pid is None:
        return RunLockedError(f"run directory {run_dir}: in use by another process (lock file {path}); refusing a "
                              f"second writer. Fix: wait for that run to finish, or write to another directory")
    if not _alive(pid):
        return RunLockedError(f"run directory {run_dir}: the lock file {path} is still held, but its owner, process "
                              f"{pid}, is no longer running: a process it started kept the lock (a stale lock). "
                              f"Fix: stop the leftover process (fuser -v {path} shows it), then retry")
    return RunLockedError(f"run directory {run_dir}: in use by process {pid}, which holds the lock file {path}; "
                          f"refusing a second writer. Fix: wait for process {pid} to finish (or stop it: "
                          f"kill {pid}), or write to another directory")


class RunLock:
    """The exclusive lock of ``run_dir``; a context manager (``with RunLock(d) as lock: ...``).

    Attributes
    ----------
    stale_pid : int or None
        After :meth:`acquire`: the PID of a previous owner that ended without releasing the lock.
    """

    def __init__(self, run_dir):
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK_NAME)
        self.fd = None
        self.stale_pid = None

    def acquire(self):
        """Take the lock or raise :class:`RunLockedError` naming the owner's PID; never blocks."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise LockFileError(f"run directory {self.run_dir}: cannot open its lock file {self.path} ({e.strerror}); "
                                f"a run is written only while holding it. Fix: use a directory you may write to "
                                f"(copy the run there if it is someone else's)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            pid = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _refusal(self.run_dir, self.path, pid) from None
            raise
        pid = _read_pid(fd)
        self.stale_pid = pid if pid is not None and pid != os.getpid() else None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self):
        """Empty the file and drop the lock (the file stays, so its mode never changes)."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)                # closing the last descriptor releases the flock

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def check_free(run_dir):
    """Raise :class:`RunLockedError` if a process holds the lock of ``run_dir`` (creates no file)."""
    path = os.path.join(os.fspath(run_dir), LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _refusal(os.fspath(run_dir), path, _read_pid(fd)) from None
        raise
    finally:
        os.close(fd)


def stale_note(lock):
    """The line reporting a taken-over stale lock, or ``None``."""
    if lock.stale_pid is None:
        return None
    return (f"purepg: note: process {lock.stale_pid} stopped writing {lock.run_dir} without releasing its lock "
            f"(it was killed); the stale lock was taken over")
