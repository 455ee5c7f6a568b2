r"""Learning curves of run directories: mean and min-max band over seeds, one curve per configuration.

Grouping
--------
A run directory (:mod:`purepg.run.runner`) records its algorithm, environment id, seed and every
hyperparameter in ``config.json``. Runs whose ``(algo, env_id, config)`` agree are *seeds of one
configuration* and become one curve; the step budget (``total_steps``) is not part of the key, so a
longer run of the same configuration joins its group. Each environment gets its own panel; a curve
is labelled by its algorithm, by the fields in which it differs where several configurations of one
algorithm share a panel, and by its runs' seeds (``seeds 0-4``; ``seed 0 (3 runs)`` for repeats).

Aggregation over seeds
----------------------
Run ``k`` of a group gives points ``(x_kj, y_kj)`` from ``progress.csv`` (rows where either is NaN
are dropped, e.g. ``ep_return_mean`` before the first episode ends). The seeds are compared on a
common grid: the union of their ``x`` values inside the range every run covers,
``[max_k min_j x_kj, min_k max_j x_kj]``. At each grid point ``u``, ``y_k(u)`` is the linear
interpolation of run ``k`` (exact at its own points), and the curve is

    mean(u) = (1/K) sum_k y_k(u),    lo(u) = min_k y_k(u),    hi(u) = max_k y_k(u).

Runs of one configuration log at the same steps, so the grid is their steps and nothing is
interpolated; runs of different lengths are cut to the shortest.

Drawing uses matplotlib (an optional extra: ``pip install "purepg[plot]"``) through the Agg canvas
of a :class:`matplotlib.figure.Figure`, without ``pyplot`` or any global backend state.
"""
from __future__ import annotations

import csv
import json
import os
from typing import NamedTuple

import numpy as np

from purepg import _check
from purepg.run.runner import read_config

INSTALL_HINT = 'pip install "purepg[plot]"'
FORMATS = ("png", "pdf", "svg")    # output formats, picked by the file's extension


class Curve(NamedTuple):
    """One configuration's learning curve over its seeds; arrays of shape (G,) on the common grid."""

    label: str
    env_id: str
    run_dirs: tuple
    x: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def read_columns(run_dir, x, y):
    """Columns ``x`` and ``y`` of ``run_dir/progress.csv``, rows where both are finite: ((n,), (n,))."""
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.exists(path):
        _check.fail("run_dirs", "run directories written by purepg train", f"{run_dir} without progress.csv",
                    "check the path, or train first")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0]) if rows else []
    for name, col in (("x", x), ("y", y)):
        if col not in header:
            raise ValueError(f"{name}: expected a column of {path}, got {col!r}; available: "
                             f"{', '.join(header) or 'none (no rows yet)'}. Fix: pass one of those")
    xs = np.array([float(r[x]) for r in rows])                  # (n,)
    ys = np.array([float(r[y]) for r in rows])                  # (n,)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if not keep.any():
        _check.fail("run_dirs", f"rows with finite {x} and {y}", f"{len(rows)} rows, none finite, in {path}",
                    "train longer, so that episodes finish, or drop this run")
    order = np.argsort(xs[keep], kind="stable")
    return xs[keep][order], ys[keep][order]


def expand_run_dirs(paths):
    """Each path as is if it is a run directory, else its sub-directories that are runs (sorted).

    So the parent of several runs (the ``out_root`` of :func:`purepg.run.seeds.run_seeds`) stands for
    its seeds. A path that is neither stays in the list, for :func:`purepg.run.runner.read_config` to
    reject with its message. A run named twice counts once.
    """
    out = []
    for d in map(os.fspath, paths):
        subs = sorted(os.path.join(d, s) for s in os.listdir(d)) if os.path.isdir(d) else []
        runs = [s for s in subs if os.path.isfile(os.path.join(s, "config.json"))]
        out.extend(runs if runs and not os.path.isfile(os.path.join(d, "config.json")) else [d])
    seen = set()
    return [d for d in out if not (os.path.realpath(d) in seen or seen.add(os.path.realpath(d)))]


def group_runs(run_dirs):
    """``[(meta, [run_dir, ...])]``: runs grouped by ``(algo, env_id, config)``, in first-seen order.

    ``meta`` is the first run's ``config.json`` with ``"seeds"``: the seed of each run of the group.

    ``run_dirs`` are run directories or parents of runs (:func:`expand_run_dirs`).
    """
    if isinstance(run_dirs, (str, os.PathLike)) or len(run_dirs) == 0:
        raise ValueError(f"run_dirs: expected a non-empty list of run directories, got {run_dirs!r}. "
                         f"Fix: pass e.g. ['runs/ppo-CartPole-v1-s0', 'runs/ppo-CartPole-v1-s1']")
    groups = {}
    for d in expand_run_dirs(run_dirs):
        meta = read_config(d)
        key = (meta["algo"], meta["env_id"], json.dumps(meta["config"], sort_keys=True))
        group = groups.setdefault(key, (dict(meta, seeds=[]), []))
        group[0]["seeds"].append(meta["seed"])
        group[1].append(d)
    return list(groups.values())


def aggregate(series):
    """Mean, min and max over runs ``[(x_k, y_k)]`` on their common grid: (u, mean, lo, hi), each (G,)."""
    start = max(xk[0] for xk, _ in series)
    stop = min(xk[-1] for xk, _ in series)
    if start > stop:
        _check.fail("run_dirs", "runs of one configuration that overlap in x",
                    f"one starting at {start}, another ending at {stop}", "plot them separately")
    u = np.unique(np.concatenate([xk[(xk >= start) & (xk <= stop)] for xk, _ in series]))   # (G,)
    Y = np.stack([np.interp(u, xk, yk) for xk, yk in series])                              # (K, G)
    return u, Y.mean(axis=0), Y.min(axis=0), Y.max(axis=0)


def seed_label(seeds) -> str:
    """``"seed 0"``, ``"seeds 0-4"``, ``"seeds 0, 2, 5"``; repeats counted: ``"seed 0 (3 runs)"``."""
    u = sorted(set(seeds))
    if len(u) > 2 and u == list(range(u[0], u[-1] + 1)):
        text = f"seeds {u[0]}-{u[-1]}"
    else:
        text = f"seed{'s' if len(u) > 1 else ''} {', '.join(map(str, u))}"
    return text + (f" ({len(seeds)} runs)" if len(seeds) > len(u) else "")


def _labels(groups):
    """Algorithm name, ``field=value`` of the fields that differ from its panel's other configs, the seeds."""
    labels = []
    for meta, dirs in groups:
        peers = [m["config"] for m, _ in groups if m["algo"] == meta["algo"] and m["env_id"] == meta["env_id"]]
        diff = [k for k in meta["config"] if any(p.get(k) != meta["config"][k] for p in peers)]
        extra = ", ".join(f"{k}={_show(meta['config'][k])}" for k in diff)
        labels.append(f"{meta['algo']}{f' ({extra})' if extra else ''}, {seed_label(meta['seeds'])}")
    return labels


def _show(v):
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)


def curves(run_dirs, *, x="step", y="ep_return_mean") -> list:
    """The :class:`Curve` of every configuration among ``run_dirs`` (no drawing, no matplotlib)."""
    groups = group_runs(run_dirs)
    out = []
    for (meta, dirs), label in zip(groups, _labels(groups)):
        u, mean, lo, hi = aggregate([read_columns(d, x, y) for d in dirs])
        out.append(Curve(label, meta["env_id"], tuple(dirs), u, mean, lo, hi))
    return out


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"plot_runs: matplotlib is not installed; it is purepg's optional plotting extra. "
                          f"Fix: {INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def plot_format(out):
    """The image format of the file name ``out`` (its extension), refusing one matplotlib is not asked for."""
    ext = os.path.splitext(os.fspath(out))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(f"out: expected a file name ending in {', '.join('.' + f for f in FORMATS)}, got "
                         f"{os.fspath(out)!r}. Fix: name the output e.g. curves.png (or curves.pdf, curves.svg)")
    return ext


def plot_runs(run_dirs, out_png, *, x="step", y="ep_return_mean") -> list:
    """Draw the learning curves of ``run_dirs`` into ``out_png``; return the :class:`Curve` list.

    Parameters
    ----------
    run_dirs : sequence of path
        Run directories of :func:`purepg.run.runner.train`, or parents of runs (the ``out_root`` of
        :func:`purepg.run.seeds.run_seeds` stands for its seeds). Seeds of one configuration are drawn as their
        mean with a min-max band; other configurations as separate curves; environments as panels.
    out_png : path
        Output file; its extension picks the format, one of :data:`FORMATS` (``.png``, ``.pdf``,
        ``.svg``); its directory must exist.
    x, y : str
        Columns of ``progress.csv`` (``step``, ``iteration``, ``time_s``; ``ep_return_mean``, ``kl``, ...).

    Raises
    ------
    ImportError
        matplotlib is missing; the message says how to install it.
    ValueError
        No runs, a directory that is not a run, an unknown column, no finite data, seeds that do
        not overlap, an output extension that is not one of :data:`FORMATS`.
    """
    fmt = plot_format(out_png)
    Figure, FigureCanvasAgg = _matplotlib()
    out_png = os.fspath(out_png)
    folder = os.path.dirname(os.path.abspath(out_png))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"out_png: the directory {folder} does not exist (got {out_png!r}). "
                                f"Fix: create it first, or write to an existing directory")
    cs = curves(run_dirs, x=x, y=y)
    envs = list(dict.fromkeys(c.env_id for c in cs))
    fig = Figure(figsize=(6.0 * len(envs), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(envs), squeeze=False)[0]
    for ax, env_id in zip(axes, envs):
        for c in (c for c in cs if c.env_id == env_id):
            (line,) = ax.plot(c.x, c.mean, label=c.label, lw=1.6, marker="o" if c.x.size == 1 else None)
            if len(c.run_dirs) > 1:
                ax.fill_between(c.x, c.lo, c.hi, color=line.get_color(), alpha=0.2, lw=0)
        ax.set(title=env_id, xlabel=x, ylabel=y)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        if x == "step" and max(c.x.max() for c in cs) >= 1e4:
            ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    fig.savefig(out_png, dpi=100, format=fmt)
    return cs


def summary_line(c: Curve, x="step") -> str:
    """One line per curve for the terminal: the value at the last common ``x``, mean (min, max)."""
    return f"{c.env_id} {c.label}: at {x} {c.x[-1]:g}, mean {c.mean[-1]:.2f} (min {c.lo[-1]:.2f}, max {c.hi[-1]:.2f})"
