"""``purepg sweep``: train a grid of runs (a TOML spec and/or options) and summarise them.

::

    purepg sweep [SPEC] [--algo ppo,trpo] [--env ID,ID] [--seeds 0-9] [--steps N]
                 [--set FIELD=VALUE]... [--grid FIELD=V1,V2]... [--out DIR] [--jobs J]
                 [--threads 1|2] [--backend local|ray] [--address HOST:PORT] [--storage copy|shared]
                 [--no-plot] [--quiet]

``SPEC`` is a TOML file (:mod:`purepg.run.spec`) or a sweep directory (its ``sweep.json``); the options
replace (``--algo``, ``--env``, ``--seeds``, ``--steps``) or add to (``--set``, ``--grid``) what it says.
``FIELD`` may be ``ALGO.FIELD`` for one algorithm; values are TOML (``--set hidden=[64,64]``, ``--grid
lr=3e-4,1e-3``, bare words are strings). Exit status 0 when every run is done, 1 when some failed (their
errors are in ``summary.json``), 2 for bad input (nothing is written), 130 on Ctrl-C (rerun to resume).
"""
from __future__ import annotations

import os
import tomllib


def add_parser(sub, parse_int):
    """Register ``sweep`` on the sub-parsers ``sub``; ``parse_int`` reads integers such as 1e5."""
    p = sub.add_parser("sweep", help="train a grid of algorithms x environments x config fields x seeds",
                       description="Train every run of a sweep (a TOML spec and/or the options below) into one "
                                   "directory of run directories, resuming what is there; write results.csv, "
                                   "summary.csv/.md/.json (mean, std, 95% bootstrap CI per cell) and curves.png.",
                       allow_abbrev=False)
    p.add_argument("spec", nargs="?", metavar="SPEC", help="TOML spec file, or a sweep directory to resume")
    p.add_argument("--algo", help="algorithms, comma-separated (replaces the spec's)")
    p.add_argument("--env", help="environment ids, comma-separated (replaces the spec's)")
    p.add_argument("--seeds", help="seeds: 0-9, 0,2,5 (replaces the spec's) [default: 0-4]")
    p.add_argument("--steps", type=parse_int, help="environment steps per run [default: 100000]")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a fixed config field")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2", help="a config field to sweep")
    p.add_argument("--out", help="sweep directory [default: the spec's out, else runs/sweep-SPECNAME]")
    p.add_argument("--jobs", type=parse_int, help="local worker processes [default: the number of CPUs]")
    p.add_argument("--threads", type=parse_int, default=1,
                   help="cores each run computes on: 1, or 2 for the same results sooner [default: 1]")
    p.add_argument("--backend", default="local", choices=("local", "ray"), help="where runs execute [default: local]")
    p.add_argument("--address", help="Ray cluster address HOST:PORT, ray://HOST:PORT or auto [default: a local "
                                     "Ray instance]")
    p.add_argument("--storage", default="copy", choices=("copy", "shared"),
                   help="Ray: copy run files to workers and back, or workers write --out directly (shared "
                        "storage) [default: copy]")
    p.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    p.add_argument("--quiet", action="store_true", help="no line per finished run")
    return p


def toml_values(text):
    """``"3e-4,1e-3"`` -> [0.0003, 0.001]; ``"[64,64],[32]"`` -> [[64, 64], [32]]; bare words are strings."""
    try:
        return tomllib.loads(f"v = [{text}]")["v"]
    except tomllib.TOMLDecodeError:
        return [_toml_value(t.strip()) for t in text.split(",")]


def _toml_value(text):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _assign(table, item, option, many):
    name, eq, value = item.partition("=")
    if not eq or not name.strip():
        raise ValueError(f"{option}: expected FIELD=VALUE (or ALGO.FIELD=VALUE), got {item!r}. Fix: e.g. {option} lr=3e-4")
    *algo, field = name.strip().split(".", 1)
    target = table.setdefault(algo[0], {}) if algo else table
    target[field] = toml_values(value) if many else _toml_value(value.strip())


def spec_from_args(args):
    """``(spec, src, out)``: the SPEC file's table with the options applied."""
    from purepg.run import sweep

    spec, src = sweep.read_spec(args.spec) if args.spec else ({}, "command line")
    spec = dict(spec)
    for key in ("algo", "env"):
        if getattr(args, key):
            spec[key] = [s.strip() for s in getattr(args, key).split(",")]
    if args.seeds is not None:
        spec["seeds"] = args.seeds
    if args.steps is not None:
        spec["steps"] = args.steps
    for option, key, many in (("--set", "config", False), ("--grid", "grid", True)):
        items = getattr(args, key if key == "grid" else "set")
        if items:
            spec[key] = {k: dict(v) if isinstance(v, dict) else v for k, v in spec.get(key, {}).items()}
            for item in items:
                _assign(spec[key], item, option, many)
    stem = os.path.splitext(os.path.basename(os.path.normpath(args.spec)))[0] if args.spec else ""
    resumed = args.spec and os.path.isdir(args.spec)
    out = args.out or spec.get("out") or (args.spec if resumed else os.path.join("runs", f"sweep-{stem}" if stem else "sweep"))
    spec.pop("out", None)
    return spec, src, out


def cmd_sweep(args, usage_error):
    """Run ``purepg sweep``; ``usage_error`` is the CLI's one-line error class."""
    from purepg.run import backends, sweep

    try:
        spec, src, out = spec_from_args(args)
        summary = sweep.run_sweep(spec, out=out, src=src, jobs=args.jobs, backend=args.backend, address=args.address,
                                  storage=args.storage, plot=not args.no_plot, verbose=not args.quiet,
                                  threads=args.threads)
    except (ValueError, backends.BackendError) as e:
        raise usage_error(f"purepg sweep: error: {' '.join(str(e).split())}") from None
    if args.quiet:
        from purepg.run import sweep_report
        print(sweep_report.table(summary["cells"]))
    failed = summary["failed"]
    plot = summary["plot"]
    print(f"Sweep directory: {out} (results.csv, summary.csv, summary.md, summary.json"
          f"{', curves.png' if plot and plot.endswith('.png') else ''}); {summary['runs_trained']} runs trained, "
          f"wall {summary['wall_s']:.1f} s" + (f". {plot}" if plot and not plot.endswith(".png") else ""))
    if failed:
        print(f"{len(failed)} run{'s' if len(failed) > 1 else ''} failed, e.g. {failed[0]['run_dir']}: "
              f"{failed[0]['error']}. All errors are in {os.path.join(out, 'summary.json')}; rerun to retry them")
        return 1
    return 0
