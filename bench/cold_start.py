"""Cold start: seconds from ``purepg train`` to its compile notice and to its first progress line.

Run from the repository root::

    python bench/cold_start.py                 # PPO and TRPO on CartPole-v1, cold then warm
    python bench/cold_start.py --algo trpo

For each algorithm the command ``python -m purepg train --algo ALGO --env CartPole-v1 --steps 4096``
runs twice with one fresh ``NUMBA_CACHE_DIR``: first with the cache empty (Numba compiles the kernels
the run uses, and purepg says so once on stderr), then with the cache the first run wrote. stderr is a
pipe, so the progress lines are plain lines; the first one is printed after the first iteration. The
script prints the seconds since the child was started at which each line arrived, with the machine
lines of ``bench/machine.py``.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402  (bench/machine.py)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def first_lines(algo, cache_dir):
    """``(seconds to the compile notice or None, seconds to the first progress line)`` of one run."""
    out = tempfile.mkdtemp()
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=os.path.abspath(ROOT))
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "purepg", "train", "--algo", algo, "--env", "CartPole-v1",
                          "--steps", "4096", "--out", os.path.join(out, "run")],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    notice = progress = None
    try:
        for line in p.stderr:
            t = time.monotonic() - t0
            if "compiling" in line and notice is None:
                notice = t
            if " steps (" in line:
                progress = t
                break
    finally:
        p.terminate()                 # as a Ctrl-C would: the run stops its compiling process before it ends
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(out, ignore_errors=True)
    return notice, progress


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="ppo,trpo")
    args = p.parse_args(argv)
    print(f"machine: {machine.summary()}\ncommand: {machine.command()}\n")
    print("| algorithm | cache | compile notice | first progress line |\n|---|---|---|---|")
    for algo in args.algo.split(","):
        cache = tempfile.mkdtemp()
        try:
            for state in ("cold", "warm"):
                notice, progress = first_lines(algo, cache)
                shown = "--" if notice is None else f"{notice:.2f} s"
                print(f"| {algo} | {state} | {shown} | {progress:.2f} s |", flush=True)
        finally:
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
