"""The summary of a sweep: a row per run, a row per cell (mean, std, 95% bootstrap CI), learning curves.

Per cell, over its finished runs' final returns ``R_1 .. R_K``: ``n = K``, the mean, the sample standard
deviation (``ddof = 1``) and the percentile bootstrap interval of the mean with
:data:`purepg.run.stats.N_RESAMPLES` resamples from ``numpy.random.default_rng(BOOTSTRAP_SEED)``, a
generator of its own for each cell, so a cell's interval does not depend on the other cells. Runs that
failed, were interrupted or have not run are counted (``failed``, ``pending``) but not averaged.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os

import numpy as np

from purepg import __version__
from purepg.run import checkpoint, stats

BOOTSTRAP_SEED = 0
RUN_COLUMNS = ("cell", "algo", "env_id", "seed", "status", "final_return", "steps", "episodes", "time_s", "host",
               "error", "run_dir")
CELL_COLUMNS = ("cell", "algo", "env_id", "n", "failed", "pending", "mean", "std", "ci_lo", "ci_hi")


def last_row(run_dir) -> dict:
    """The last row of ``run_dir/progress.csv`` as floats (empty if there is none)."""
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.isfile(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items()} if rows else {}


def _run_row(out, run, state, result):
    status = result["status"] if result else ("done" if state == "done" else "pending")
    last = last_row(os.path.join(out, run.run_dir)) if status == "done" else {}
    row = {"cell": run.cell, "algo": run.algo, "env_id": run.env_id, "seed": run.seed, "status": status,
           "final_return": last.get("ep_return_mean", math.nan), "steps": last.get("step", math.nan),
           "episodes": last.get("episodes", math.nan), "time_s": last.get("time_s", math.nan),
           "host": (result or {}).get("host", ""), "error": (result or {}).get("error", ""), "run_dir": run.run_dir}
    return {**row, **{f"field:{k}": v for k, v in run.fields.items()}}


def _cell_rows(runs, rows):
    out = []
    for cell in dict.fromkeys(r.cell for r in runs):
        mine = [row for row in rows if row["cell"] == cell]
        R = [row["final_return"] for row in mine if row["status"] == "done"]
        d = stats.describe(R, np.random.default_rng(BOOTSTRAP_SEED))
        first = next(r for r in runs if r.cell == cell)
        out.append({"cell": cell, "algo": first.algo, "env_id": first.env_id, **first.fields, "n": d["n"],
                    "failed": sum(row["status"] == "failed" for row in mine),
                    "pending": sum(row["status"] in ("pending", "interrupted") for row in mine),
                    **{k: d[k] for k in ("mean", "std", "ci_lo", "ci_hi")}})
    return out


def summarise(out, runs, states, results, wall_s, plot=True) -> dict:
    """Write results.csv, summary.csv, summary.md, summary.json (and curves.png) into ``out``; the summary."""
    rows = [_run_row(out, r, states[r.run_dir], results.get(r.run_dir)) for r in runs]
    cells = _cell_rows(runs, rows)
    _write(out, "results.csv", _csv(rows, RUN_COLUMNS))
    _write(out, "summary.csv", _csv(cells, CELL_COLUMNS))
    _write(out, "summary.md", table(cells) + "\n")
    summary = {"cells": cells, "runs": rows, "wall_s": wall_s, "runs_trained": len(results),
               "failed": [{"run_dir": r["run_dir"], "error": r["error"]} for r in rows if r["status"] == "failed"],
               "bootstrap": {"resamples": stats.N_RESAMPLES, "level": stats.LEVEL, "seed": BOOTSTRAP_SEED},
               "purepg_version": __version__}
    summary["plot"] = _plot(out, rows) if plot else None
    _write(out, "summary.json", json.dumps(_jsonable(summary), indent=2) + "\n")
    return summary


def _plot(out, rows):
    """``out/curves.png`` of the finished runs, or the reason there is none."""
    from purepg.run import plot

    done = [os.path.join(out, r["run_dir"]) for r in rows if r["status"] == "done"]
    if not done:
        return "no finished run to plot"
    try:
        plot.plot_runs(done, os.path.join(out, "curves.png"))
    except (ImportError, ValueError) as e:
        return f"no plot: {e}"
    return os.path.join(out, "curves.png")


def _csv(rows, first):
    extra = [k for r in rows for k in r if k not in first]
    header = list(first) + list(dict.fromkeys(extra))
    buf = io.StringIO()
    w = csv.DictWriter(buf, header, restval="", lineterminator="\n")
    w.writeheader()
    w.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def _cell(v):
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return repr(v) if isinstance(v, float) else v


def _write(out, name, text):
    checkpoint.atomic_write_bytes(os.path.join(out, name), text.encode())


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def table(cells) -> str:
    """A Markdown table of the cells: final return n, mean, std and 95% bootstrap CI."""
    head = (f"| cell | n | mean | std | 95% CI of the mean ({stats.N_RESAMPLES} bootstrap resamples) "
            f"| failed | pending |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for c in cells:
        ci = f"[{c['ci_lo']:.2f}, {c['ci_hi']:.2f}]" if c["n"] else "n/a"
        lines.append(f"| {c['cell']} | {c['n']} | {c['mean']:.2f} | {c['std']:.2f} | {ci} | {c['failed']} "
                     f"| {c['pending']} |")
    return "\n".join(lines)
