"""The verification commands: ``purepg conformance`` and ``purepg algos --conventions NAME``."""
from __future__ import annotations

import dataclasses


def add_conformance_parser(sub):
    from purepg.verify.conformance import LIBRARIES

    c = sub.add_parser("conformance", help="run other libraries' own updates and purepg's from one state, compare",
                       description="Drive Stable-Baselines3's and sb3-contrib's own update code from one float64 "
                                   "state and rollout, run purepg's update with the matching convention profile, "
                                   "and compare every quantity (exit 1 on a disagreement). Libraries not installed "
                                   "are skipped with their install command. See docs/verify.md.")
    c.add_argument("--library", action="append", choices=list(LIBRARIES),
                   help="library to check (repeatable) [default: every one]")
    c.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return c


def cmd_conformance(args):
    from purepg.verify import conformance

    rows, skipped = conformance.run(args.library)
    print(conformance.report(rows, skipped, as_json=args.json))
    return 0 if all(r.ok for r in rows) else 1


def print_conventions(profile, algo_names):
    """The table of ``profile``: every convention, or those of the named algorithms' Configs."""
    from purepg.algos import conventions, get_algo

    rows = conventions.table(profile)
    if algo_names:
        fields = {f.name for n in algo_names for f in dataclasses.fields(get_algo(n).Config)}
        rows = [r for r in rows if r[0] in fields]
    print(f"conventions profile {profile!r} (option, value, purepg's value, source):")
    for name, value, ours, src in rows:
        mark = "" if value == ours else "  *"
        print(f"  {name:<18} {value!r:<20} {ours!r:<26} {src}{mark}")
    return 0
