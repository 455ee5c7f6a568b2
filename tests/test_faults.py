"""Faults a run directory must survive, injected into real ``purepg`` processes and in-process runs.

SIGKILL in the middle of any write (checkpoints included) or at a random moment, SIGINT and SIGTERM,
Ctrl-C during start-up, two writers on one directory, a full disk, and each kind of damaged file.
Every fault ends either in a resume whose ``progress.csv`` equals the uninterrupted run's (wall-time
columns aside) or in one line naming the problem and the fix, exit status 2, no traceback.

The child processes of every scenario start together (:func:`faults`), so the module costs about one
child's start-up and training time, not their sum.
"""
import contextlib
import csv
import errno
import io
import json
import os
import re
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from helpers import cli_process
from purepg.cli import commands as cli
from purepg.run import checkpoint, rundir, runner

TINY = ["--num-envs", "2", "--num-steps", "16", "--epochs", "2", "--minibatch-size", "16", "--hidden", "8",
        "--vf-hidden", "8"]
STEPS, EVERY = 640, 3                       # 20 iterations, a checkpoint every 3
RUN = [*TINY, "--seed", "2", "--steps", str(STEPS), "--checkpoint-every", str(EVERY), "--quiet"]
# The start-up signals land 0-1 s after NumPy loads: RUN can finish by then on an idle machine (and the
# signal then finds no process), so they interrupt a run that takes far longer than the window.
LONG_RUN = [*TINY, "--seed", "2", "--steps", "20000", "--checkpoint-every", str(EVERY), "--quiet"]  # ~5 s
# A child that kills itself (SIGKILL) after writing half the bytes of its n-th write to the run directory:
# of any file ("all") or of checkpoints only ("checkpoint", told apart by the zip magic of .npz).
KILL_AT_WRITE = '''
import os, signal, sys
from purepg.run import checkpoint
n, kind, seen = int(sys.argv[1]), sys.argv[2], []
real = checkpoint._write_all
def write(f, data):
    if kind == "all" or data[:2] == b"PK":
        seen.append(1)
        if len(seen) == n:
            real(f, data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    real(f, data)
checkpoint._write_all = write
from purepg.cli import main
sys.exit(main(sys.argv[3:]))
'''
RECOVERABLE = r"checkpoint\.npz is missing: the run was stopped|config\.json is missing"


def _main(args):
    """``purepg ARGS`` in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main([str(a) for a in args])
    return rc, err.getvalue()


def _rows(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, h in enumerate(rows[0]) if h not in runner.WALL_COLUMNS]
    return [[r[i] for i in keep] for r in rows]


def _n_rows(d):
    try:
        return len((d / "progress.csv").read_bytes().splitlines()) - 1
    except FileNotFoundError:
        return -1


def _started(p, t, wait, seen={}):
    """Whether ``wait`` seconds passed since child ``p`` started running purepg's code.

    A signal before that (while Python itself starts up and imports ``site``) is Python's to report,
    not purepg's; purepg's first import of NumPy, seen in the child's memory maps, marks the start.
    """
    if p.pid not in seen:
        try:
            with open(f"/proc/{p.pid}/maps") as f:
                loaded = "numpy" in f.read()
        except OSError:
            loaded = t >= 2.0
        if not loaded:
            return False
        seen[p.pid] = t
    return t - seen[p.pid] >= wait


def _scenarios(root, rng):
    """``{name: (args, code, trigger)}``; a trigger is ``(when, action)``: when(elapsed_s) -> bool."""
    s = {}
    for n in sorted(rng.choice(np.arange(1, 31), 3, replace=False)):     # any write: config, rows, checkpoints
        s[f"write-{n}"] = ([str(n), "all", "train", *RUN, "--out", root / f"write-{n}"], KILL_AT_WRITE, None)
    for n in (1, 3):                                                      # inside the 1st and 3rd checkpoint
        s[f"ckpt-{n}"] = ([str(n), "checkpoint", "train", *RUN, "--out", root / f"ckpt-{n}"], KILL_AT_WRITE, None)
    for name, sig in (("kill", signal.SIGKILL), ("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM)):
        k, d = int(rng.integers(3, 11)), root / name
        s[name] = (["train", *RUN, "--out", d], None, (lambda t, p, d=d, k=k: _n_rows(d) >= k, sig))
    for name, sig in (("startup-int", signal.SIGINT), ("startup-term", signal.SIGTERM)):
        wait = float(rng.uniform(0.0, 1.0))
        s[name] = (["train", *LONG_RUN, "--out", root / name], None, (lambda t, p, w=wait: _started(p, t, w), sig))
    w = root / "writer"
    s["writer"] = (["train", *TINY, "--steps", "100000", "--out", w, "--quiet"], None,
                   (lambda t, p: _n_rows(w) >= 1, "second-writer"))
    s["pair-a"] = (["train", *RUN, "--out", root / "pair"], None, None)
    s["pair-b"] = (["train", *RUN, "--out", root / "pair"], None, None)
    return s


def _drive(root, scenarios, timeout=180):
    """Start every scenario's child, fire the triggers, wait: ``{name: (status, stderr)}`` and the refusals."""
    procs = {name: cli_process.popen([str(a) for a in args], root, code=code)
             for name, (args, code, _) in scenarios.items()}
    t0, fired, refusals = time.monotonic(), set(), []
    while any(p.poll() is None for p in procs.values()) and time.monotonic() - t0 < timeout:
        for name, (_, _, trigger) in scenarios.items():
            p = procs[name]
            if trigger and name not in fired and p.poll() is None and trigger[0](time.monotonic() - t0, p):
                fired.add(name)
                if trigger[1] == "second-writer":
                    d = root / "writer"
                    refusals = [_main(a) for a in (["train", *RUN, "--out", d], ["train", *RUN, "--out", d, "--force"],
                                                   ["resume", d])]
                    p.send_signal(signal.SIGTERM)
                else:
                    p.send_signal(trigger[1])
        time.sleep(0.005)
    out = {}
    for name, p in procs.items():
        if p.poll() is None:
            p.kill()
        err = p.communicate()[1]
        out[name] = (p.returncode, err)
    return out, refusals


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    ref = root / "reference"                    # first: it also loads in this process what the refusals need
    assert _main(["train", *RUN, "--out", ref]) == (0, "")
    results, refusals = _drive(root, _scenarios(root, np.random.default_rng(20261130)))
    if (root / "sigint").exists():
        shutil.copytree(root / "sigint", root / "interrupted")            # a resumable run for the damage tests
    return root, results, refusals, _rows(ref / "progress.csv")


def _recover(d, reference):
    """Resume ``d`` (or, if it never reached a checkpoint, train it again): it must equal the reference.

    Returns the notes printed (a stale lock taken over); anything else on stderr fails the test.
    """
    rc, err = _main(["resume", d, "--quiet"])
    if rc != 0:
        lines = [ln for ln in err.splitlines() if not ln.startswith("purepg: note:")]
        assert rc == 2 and len(lines) == 1 and re.search(RECOVERABLE, lines[0]), err
        rc, more = _main(["train", *RUN, "--out", d, "--force"])
        assert rc == 0, more
        err = "\n".join(ln for ln in err.splitlines() if ln.startswith("purepg: note:")) + more
    assert all(ln.startswith("purepg: note:") for ln in err.splitlines()), err
    assert _rows(d / "progress.csv") == reference
    assert not [n for n in os.listdir(d) if n.startswith(".tmp-")]       # killed writes' temp files are gone
    assert (d / ".purepg.lock").read_bytes() == b""                       # released
    return err


# ------------------------------------------------------------------------------ kills ------
def test_sigkill_in_any_write_or_at_any_moment_then_resume_equals_the_uninterrupted_run(faults):
    root, results, _, reference = faults
    names = [n for n in results if n.startswith(("write-", "ckpt-", "kill"))]
    for name in names:
        rc, err = results[name]
        assert rc in (-signal.SIGKILL, 0) and "Traceback" not in err, (name, rc, err)
        note = _recover(root / name, reference)
        if rc == -signal.SIGKILL and (root / name / ".purepg.lock").exists():
            assert "stale lock was taken over" in note, (name, note)
    assert results["ckpt-1"][0] == -signal.SIGKILL                      # died inside its first checkpoint


def test_sigint_and_sigterm_save_a_checkpoint_and_resume_equals_the_uninterrupted_run(faults):
    root, results, _, reference = faults
    for name, sig in (("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM)):
        rc, err = results[name]
        assert rc == 128 + sig and "Traceback" not in err, (name, err)
        m = re.fullmatch(rf"purepg: interrupted by {sig.name} at iteration (\d+); checkpoint saved with \1 iterations "
                         rf"and (\d+) steps\. Resume with: purepg resume {re.escape(str(root / name))}", err.strip())
        assert m, err
        _, ck = checkpoint.load(str(root / name / "checkpoint.npz"))
        assert (ck["iteration"], ck["step"]) == (int(m.group(1)), int(m.group(2)))
        assert _recover(root / name, reference) == ""                   # a clean stop leaves no stale lock


def test_ctrl_c_or_sigterm_during_start_up_is_one_line(faults):
    root, results, _, _ = faults
    for name, sig in (("startup-int", signal.SIGINT), ("startup-term", signal.SIGTERM)):
        rc, err = results[name]
        assert rc == 128 + sig and "Traceback" not in err and len(err.strip().splitlines()) == 1, (name, rc, err)
        if "before training started; nothing was saved" in err:
            assert not (root / name).exists() or _main(["train", *RUN, "--out", root / name])[0] == 0
        else:
            assert re.search(rf"interrupted by {sig.name} at iteration \d+; checkpoint saved", err), err


# ------------------------------------------------------------------------------ writers ----
def test_a_second_writer_is_refused_naming_the_owner(faults):
    root, results, refusals, reference = faults
    rc, err = results["writer"]
    assert rc == 143 and "interrupted by SIGTERM" in err, err
    pid = int(re.search(r"in use by process (\d+)", refusals[0][1]).group(1))
    for status, message in refusals:
        assert status == 2 and len(message.strip().splitlines()) == 1, message
        assert re.search(rf"in use by process {pid}, which holds the lock file .*\.purepg\.lock; refusing a second "
                         rf"writer\. Fix: wait for process {pid}", message), message
    (a, err_a), (b, err_b) = results["pair-a"], results["pair-b"]     # started together on one directory
    assert sorted([a, b]) == [0, 2], (err_a, err_b)
    assert re.search(r"in use by process \d+|exists and is not empty", err_a + err_b)
    assert _rows(root / "pair" / "progress.csv") == reference          # one run's rows, not a mix


# ---------------------------------------------------------------------- in-process faults ----
def test_a_second_signal_during_the_final_save_is_ignored_and_reported(faults, tmp_path, monkeypatch):
    _, _, _, reference = faults
    real_save, real_append = checkpoint.save, rundir.append_progress

    def append(out_dir, row, header):
        if row["iteration"] == 5:
            signal.raise_signal(signal.SIGTERM)                        # the first signal, during iteration 5
        return real_append(out_dir, row, header)

    def save(path, tree, meta):
        if threading.current_thread() is threading.main_thread():     # the final save, not a periodic one
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
        real_save(path, tree, meta)

    monkeypatch.setattr(rundir, "append_progress", append)
    monkeypatch.setattr(checkpoint, "save", save)
    rc, err = _main(["train", *RUN, "--out", tmp_path / "r"])
    assert rc == 143 and err.strip() == (f"purepg: interrupted by SIGTERM at iteration 5; checkpoint saved with 5 "
                                         f"iterations and 160 steps; the 2 later signal(s) during the save were "
                                         f"ignored. Resume with: purepg resume {tmp_path / 'r'}")
    monkeypatch.undo()
    assert _recover(tmp_path / "r", reference) == ""


@pytest.mark.parametrize("target, nth", [("checkpoint", 3), ("progress", 7)])
def test_a_full_disk_is_reported_at_the_write_that_failed(faults, tmp_path, monkeypatch, target, nth):
    _, _, _, reference = faults
    real, seen = checkpoint._write_all, []

    def write(f, data):
        if (data[:2] == b"PK") == (target == "checkpoint"):
            seen.append(1)
            if len(seen) == nth:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(f, data)

    monkeypatch.setattr(checkpoint, "_write_all", write)
    d = tmp_path / "r"
    rc, err = _main(["train", *RUN, "--out", d])
    name = "checkpoint.npz" if target == "checkpoint" else "progress.csv"
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert re.fullmatch(rf"purepg: error: disk full: writing {re.escape(str(d / name))} \(.*\) failed \(No space left "
                        rf"on device\); free space on its filesystem: [\d.]+ (bytes|kB|MB|GB)\. The previous version of "
                        rf"the file is kept\. Fix: free disk space .* purepg resume {re.escape(str(d))} .*", err.strip())
    _, ck = checkpoint.load(str(d / "checkpoint.npz"))
    assert ck["iteration"] == (6 if target == "checkpoint" else 3)      # the last good checkpoint is intact
    monkeypatch.undo()
    assert "stale lock" not in _recover(d, reference)                   # rows after the checkpoint: dropped, noted


# ------------------------------------------------------------------------- damaged files ----
def _copy(faults, tmp_path, name="interrupted"):
    d = tmp_path / name
    shutil.copytree(faults[0] / "interrupted", d)
    return d


def _refused(args, pattern):
    rc, err = _main(args)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(pattern, err), err
    return err


def _edit_config(d, **fields):
    meta = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(meta, **fields)))


def test_a_damaged_config_json_is_refused(faults, tmp_path):
    d = _copy(faults, tmp_path)
    (d / "config.json").write_text("[]")
    for cmd in ("resume", "eval"):
        _refused([cmd, d], r"config\.json holds a JSON list, expected an object of fields .* Fix: restore it")
    d = _copy(faults, tmp_path, "null")
    _edit_config(d, config=None)
    _refused(["resume", d], r"config\.json field 'config' is null, expected an object\. Fix: restore")
    _edit_config(d, config={"lr": "fast"})
    _refused(["resume", d], r"config\.json field 'config' is invalid \(.*lr.*\)\. Fix: restore")


def _lines(d):
    return (d / "progress.csv").read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("damage, pattern", [
    (lambda ls: ls[:-2], r"has \d+ rows but the checkpoint is at iteration \d+; rows .* are missing"),
    (lambda ls: ls[:2] + ls[3:], r"row 2 does not match the checkpoint \(expected iteration 2, got '3'\)"),
    (lambda ls: ls[:3] + ls[2:], r"row 3 does not match the checkpoint \(expected iteration 3, got '2'\)"),
    (lambda ls: ls[:2] + [b"1,2,3\r\n"] + ls[3:], r"row 2 does not match .* got '3 values for \d+ columns'"),
])
def test_progress_csv_with_rows_removed_repeated_or_damaged_is_refused(faults, tmp_path, damage, pattern):
    d = _copy(faults, tmp_path)
    (d / "progress.csv").write_bytes(b"".join(damage(_lines(d))))
    before = (d / "progress.csv").read_bytes()
    _refused(["resume", d], rf"purepg: error: .*progress\.csv: {pattern}.* Fix: restore progress\.csv")
    assert (d / "progress.csv").read_bytes() == before                 # refused, nothing rewritten


def test_a_damaged_header_is_repaired_from_the_checkpoint(faults, tmp_path):
    d = _copy(faults, tmp_path)
    (d / "progress.csv").write_bytes(b"\x00garbage\r\n" + b"".join(_lines(d)[1:]))
    rc, err = _main(["resume", d, "--quiet"])
    assert rc == 0 and re.fullmatch(r"purepg: note: .*progress\.csv: the header was damaged; repaired from the "
                                    r"checkpoint", err.strip()), err
    assert _rows(d / "progress.csv") == faults[3]


def test_temp_files_of_killed_writes_are_removed_by_the_next_run(faults, tmp_path):
    d = _copy(faults, tmp_path)
    (d / ".tmp-k2j3checkpoint.npz").write_bytes(b"PK half")
    (d / ".tmp-x9config.json").write_bytes(b"{")
    assert _recover(d, faults[3]) == ""


def test_a_checkpoint_of_another_run_is_refused(faults, tmp_path):
    d = _copy(faults, tmp_path)
    tree, meta = checkpoint.load(str(d / "checkpoint.npz"))
    checkpoint.save(str(d / "checkpoint.npz"), tree, dict(meta, algo="trpo"))
    for cmd in ("eval", "resume"):
        _refused([cmd, d], r"field 'algo' is 'trpo' but config\.json says 'ppo'; the files are from different runs")


def test_finished_runs_are_neither_resumed_nor_shortened(faults, tmp_path):
    d = _copy(faults, tmp_path)
    assert _main(["resume", d, "--quiet"])[0] == 0
    config = (d / "config.json").read_bytes()
    _refused(["resume", d], rf"the run is finished \({STEPS} steps, its total_steps {STEPS}\); nothing to resume\. "
                            rf"Fix: pass --steps N with N > {STEPS}")
    _refused(["resume", d, "--steps", "320"], rf"--steps\): 320 is not beyond the {STEPS} steps .* Fix: pass --steps "
                                              rf"greater than {STEPS}")
    assert (d / "config.json").read_bytes() == config


def test_bad_arguments_are_refused_without_leaving_a_run_directory(faults, tmp_path):
    d = _copy(faults, tmp_path)
    (tmp_path / "file").write_text("x")
    for k in ("0", "-1"):
        _refused(["train", *RUN, "--checkpoint-every", k, "--out", tmp_path / "new"],
                 rf"--checkpoint-every: expected an integer >= 1 .*, got {k}\. Fix: ")
        _refused(["resume", d, "--checkpoint-every", k], rf"--checkpoint-every: expected an integer >= 1 .*, got {k}")
    _refused(["train", *RUN, "--seed", "-1", "--out", tmp_path / "new"], r"--seed: expected an integer >= 0, got -1")
    _refused(["train", *RUN, "--out", tmp_path / "file"], r"exists and is a file, not a directory\. Fix: ")
    assert not (tmp_path / "new").exists()
    assert _main(["train", *RUN, "--out", tmp_path / "new"]) == (0, "")
