"""The ``purepg`` command (also ``python -m purepg``): train, resume, evaluate, list algorithms.

::

    purepg train [--algo NAME] [--env ID] [--env-module M] [--steps N] [--seed S] [--out DIR] [--force]
                 [--checkpoint-every K] [--quiet] [--threads 1|2] [--FIELD VALUE ...]
    purepg resume RUN_DIR [--steps N] [--checkpoint-every K] [--quiet] [--threads 1|2]
    purepg eval RUN_DIR [--episodes 20] [--seed 0] [--stochastic]
    purepg algos [NAME]
    purepg seeds [--algo NAME] [--env ID] [--seeds 0-4] [--jobs J] [--steps N] [--out ROOT] [--force]
                 [--checkpoint-every K] [--quiet] [--FIELD VALUE ...]
    purepg sweep [SPEC] [--algo A,B] [--env ID,ID] [--seeds 0-9] [--grid FIELD=V1,V2] [--jobs J]
                 [--backend local|ray] [--address HOST:PORT] ...     (see purepg.cli.sweep)
    purepg plot RUN_DIR... [--out curves.png] [--x step] [--y ep_return_mean]
    purepg golden [--out golden.npz] [--seed S]

``purepg train`` alone trains PPO on CartPole-v1 for 1e5 steps into ``runs/ppo-CartPole-v1-s0``.
Every field of the algorithm's ``Config`` is an option of ``train``, spelled ``--field`` or
``--field-with-dashes``; the options are generated from the dataclass of the ``--algo`` given, so
``purepg train --algo trpo --help`` lists TRPO's. Values: numbers as usual (``--lr 3e-4``), booleans
``true``/``false``, layer widths comma-separated (``--hidden 64,64``, ``--hidden ""`` for none),
``none`` for an optional field. ``purepg algos`` lists every algorithm with its fields, defaults and
their meaning. New algorithms registered in :data:`purepg.algos.ALGOS` appear here unchanged.
``purepg seeds`` takes the same options as ``train`` (``--seeds`` and ``--jobs`` instead of ``--seed``)
and trains each seed into ``ROOT/seed-S`` in parallel processes (:mod:`purepg.run.seeds`); ``purepg plot``
draws learning curves (:mod:`purepg.run.plot`, needs ``pip install "purepg[plot]"``); ``purepg golden``
writes the reference vectors of :mod:`purepg.verify.golden`. ``--threads 2`` computes a run on two
cores with the same results (:mod:`purepg.run.workers`).

Errors in the input (unknown algorithm, environment, option or field; invalid values; an existing
run directory or one another process is writing; a corrupt or mismatched checkpoint or progress.csv;
a full disk; NaN or inf during training) print one line to stderr and exit with status 2, never a
traceback (set ``PUREPG_DEBUG=1`` to see one). Ctrl-C (SIGINT) or SIGTERM during training saves a
checkpoint, prints what was saved and how to resume, and exits with status 130 or 143
(:mod:`purepg.cli.errors`). ``--env MODULE:ID`` or ``--env-module MODULE`` imports the module that
registers a custom environment; the run directory records it for ``resume`` and ``eval``.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import sys

from purepg.cli import errors
from purepg.cli.errors import UsageError
from purepg.cli.runs import check_checkpoint_every, check_threads, cmd_eval, cmd_resume, evaluate, report  # noqa: F401

from purepg.algos.fields import show
from purepg.cli import verify_commands

DEFAULT_ALGO, DEFAULT_ENV, DEFAULT_STEPS = "ppo", "CartPole-v1", 100_000
_FIXED = ("algo", "env", "env-module", "steps", "seed", "out", "force", "checkpoint-every", "quiet", "help", "seeds",
          "jobs", "conventions", "threads")


class _Parser(argparse.ArgumentParser):
    """argparse, but an error raises :class:`UsageError` (one line) instead of printing the usage."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


# ------------------------------------------------------------------------ config fields ----
def _meaning(field):
    """A field's documentation (:mod:`purepg.algos.fields`) on one line: symbol, meaning, range, source."""
    d = field.metadata
    if "range" not in d:
        return ""
    return f"{d['symbol'] + ': ' if d['symbol'] else ''}{d['meaning']}; {d['range']} ({d['source']})"


def _kind(field):
    """How to parse a field from text: bool, int, float, str or widths, each maybe optional."""
    d, t = field.default, str(field.type)
    optional = d is None or "None" in t or "Optional" in t
    for kind, test in (("bool", bool), ("int", int), ("float", float), ("str", str), ("widths", tuple)):
        if (d is not None and type(d) is test) or (d is None and re.search(rf"\b{test.__name__}\b", t)):
            return kind, optional
    return "str", optional


def _parse(kind, optional, text):
    """``text`` as a value of ``kind``; ArgumentTypeError naming what was expected."""
    s = text.strip()
    if optional and s.lower() in ("none", "null"):
        return None
    try:
        if kind == "bool":
            return {"true": True, "1": True, "yes": True, "on": True,
                    "false": False, "0": False, "no": False, "off": False}[s.lower()]
        if kind == "int":
            return _integer(s)
        if kind == "float":
            return float(s)
        if kind == "widths":
            return tuple(_integer(w) for w in re.split(r"[,\s]+", s.strip("()[]")) if w)
        return s
    except (KeyError, ValueError):
        want = {"bool": "true or false", "int": "an integer", "float": "a number",
                "widths": "comma-separated layer widths such as 64,64"}[kind]
        raise argparse.ArgumentTypeError(f"expected {want}{' or none' if optional else ''}, got {text!r}") from None


def _integer(s):
    x = float(s)                                 # accepts 1e5
    if not x.is_integer():
        raise ValueError(s)
    return int(x)


def config_options(Config):
    """``[(name, default, kind, optional, meaning)]`` for every field of an algorithm's Config."""
    return [(f.name, f.default, *_kind(f), _meaning(f)) for f in dataclasses.fields(Config)]


def _add_config_options(parser, algo):
    group = parser.add_argument_group(f"{algo.NAME} configuration (every field of its Config)")
    for name, default, kind, optional, meaning in config_options(algo.Config):
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        flags = [f if f.lstrip("-") not in _FIXED else f"--config-{f.lstrip('-')}" for f in flags]
        group.add_argument(*flags, dest=f"cfg:{name}", default=argparse.SUPPRESS, metavar=kind.upper(),
                           type=lambda s, k=kind, o=optional: _parse(k, o, s),
                           help=f"{meaning} [default: {show(default)}]")


def _unknown_option(extra, algo, command="train"):
    opt = extra[0]
    names = [f"--{n}" for n in _FIXED] + [f"--{f[0]}" for f in config_options(algo.Config)]
    from purepg.run.formats import new_name

    renamed = new_name(algo.NAME, opt.split("=")[0].lstrip("-").replace("-", "_"))
    close = [f"--{renamed}"] if renamed else difflib.get_close_matches(opt.split("=")[0], names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UsageError(f"purepg {command}: error: unknown option or config field {opt!r} for algorithm {algo.NAME}.{hint} "
                     f"Fix: see purepg {command} --algo {algo.NAME} --help, or purepg algos {algo.NAME}")


# ------------------------------------------------------------------------------ train ------
def _algo_from_argv(argv):
    for i, a in enumerate(argv):
        if a == "--algo" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--algo="):
            return a.split("=", 1)[1]
    return DEFAULT_ALGO


def _train_parser(sub, algo):
    p = sub.add_parser("train", help="train an algorithm on an environment, writing a run directory",
                       description="Train and write a run directory (config.json, progress.csv, checkpoint.npz).",
                       epilog="The configuration options below are those of --algo (purepg train --algo NAME "
                              "--help). Values: numbers (3e-4), true/false, layer widths 64,64 ('' for none), "
                              "none for an optional field.", allow_abbrev=False)
    p.add_argument("--seed", type=lambda s: _parse("int", False, s), default=0, help="random seed [default: 0]")
    p.add_argument("--conventions", default=None, metavar="PROFILE",
                   help="convention profile: purepg, sb3, cleanrl or tianshou (purepg algos --conventions NAME); "
                        "explicit options win and config.json records both [default: purepg]")
    _run_options(p, algo, out_help="run directory [default: runs/ALGO-ENV-sSEED]", quiet_help="no progress line")
    p.add_argument("--threads", type=lambda s: _parse("int", False, s), default=1,
                   help="cores the run computes on: 1, or 2 for the same results sooner [default: 1]")
    return p


def _run_options(p, algo, out_help, quiet_help):
    """The options ``train`` and ``seeds`` share, and the config fields of ``algo``."""
    p.add_argument("--algo", default=DEFAULT_ALGO, help=f"algorithm (see purepg algos) [default: {DEFAULT_ALGO}]")
    p.add_argument("--env", default=DEFAULT_ENV, help=f"gymnasium environment id, or MODULE:ID to import MODULE "
                                                      f"first [default: {DEFAULT_ENV}]")
    p.add_argument("--env-module", default=None, metavar="MODULE",
                   help="module to import first, which registers the --env id (recorded in the run directory)")
    p.add_argument("--steps", type=lambda s: _parse("int", False, s), default=DEFAULT_STEPS,
                   help=f"total environment steps (per seed) [default: {DEFAULT_STEPS}]")
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--checkpoint-every", type=lambda s: _parse("int", False, s), default=10,
                   help="iterations between checkpoints [default: 10]")
    p.add_argument("--quiet", action="store_true", help=quiet_help)
    if algo is not None:
        _add_config_options(p, algo)


def _check_env(env_id, command="train", env_module=None):
    """Build one copy of the env (unknown ids and unsupported spaces fail here, before any file)."""
    import gymnasium

    from purepg.env import envs
    try:
        envs.make_vec_env(env_id, 1, seed=0, env_module=env_module).close()
    except gymnasium.error.Error as e:
        raise UsageError(f"purepg {command}: error: env {env_id!r} cannot be built ({type(e).__name__}: {e})") from None


def cmd_train(args):
    from purepg.run import runner
    from purepg.algos import get_algo

    algo = get_algo(args.algo)
    config, record = _config_from_args(args, algo)
    if args.seed < 0:
        raise UsageError(f"purepg train: error: --seed: expected an integer >= 0, got {args.seed}. Fix: pass e.g. "
                         f"--seed 0")
    check_checkpoint_every(args.checkpoint_every, "train")
    check_threads(args.threads, "train")
    _check_env(args.env, env_module=args.env_module)
    out = args.out or os.path.join("runs", re.sub(r"[/:\\]", "_", f"{algo.NAME}-{args.env}-s{args.seed}"))
    report(runner.train(algo, args.env, config, seed=args.seed, out_dir=out, total_steps=args.steps,
                        checkpoint_every=args.checkpoint_every, force=args.force, verbose=not args.quiet,
                        env_module=args.env_module, conventions=record, threads=args.threads))
    return 0


def _config_from_args(args, algo, command="train"):
    """``(config, conventions record)``: the algorithm's Config from the ``--FIELD`` options given over the
    ``--conventions`` profile's values (defaults for the others); the record is None without a profile."""
    from purepg.algos import conventions

    overrides = {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("cfg:")}
    profile = getattr(args, "conventions", None)
    try:
        if profile is None:
            return algo.Config(**overrides), None
        return conventions.configure(algo.Config, profile, **overrides)
    except (ValueError, TypeError) as e:
        raise UsageError(f"purepg {command}: error: invalid configuration for {algo.NAME}: {e}") from None


# ------------------------------------------------------------------------------ algos ------
def cmd_algos(args):
    from purepg.algos import ALGOS, get_algo

    if args.conventions is not None:
        return verify_commands.print_conventions(args.conventions, [args.name] if args.name else [])
    names = [args.name] if args.name else list(ALGOS)
    for name in names:
        try:
            algo = get_algo(name)
        except (ImportError, SyntaxError) as e:
            print(f"{name}: not available ({type(e).__name__}: {e})\n")
            continue
        doc = (algo.__doc__ or "").strip().splitlines()
        print(f"{name}: {doc[0] if doc else ''}")
        for fname, default, kind, optional, meaning in config_options(algo.Config):
            print(f"  --{fname:<20} {show(default):<12} {meaning}")
        print()
    return 0


# ---------------------------------------------------------------- seeds / plot / golden ----
def _seeds_parser(sub, algo):
    p = sub.add_parser("seeds", help="train several seeds in parallel processes and summarise them",
                       description="Train one configuration for several seeds, JOBS processes at a time, each into "
                                   "ROOT/seed-S (a run directory, as purepg train writes), then print and write "
                                   "ROOT/summary.json: the final mean return, mean +- std over the seeds. Options "
                                   "and config fields are those of purepg train.", allow_abbrev=False)
    p.add_argument("--seeds", default="0-4", help="seeds: a range 0-4, a list 0,2,5, or both 0-2,7 [default: 0-4]")
    p.add_argument("--jobs", type=lambda s: _parse("int", False, s), default=None,
                   help="worker processes [default: the number of CPUs, at most one per seed]")
    _run_options(p, algo, out_help="parent of the run directories [default: runs/ALGO-ENV]",
                 quiet_help="no line per finished seed")
    return p


def cmd_seeds(args):
    from purepg.run import seeds
    from purepg.algos import get_algo

    algo = get_algo(args.algo)
    config, _ = _config_from_args(args, algo, "seeds")
    try:
        seed_list = seeds.parse_seeds(args.seeds)
    except ValueError as e:
        raise UsageError(f"purepg seeds: error: --{e}") from None
    check_checkpoint_every(args.checkpoint_every, "seeds")
    _check_env(args.env, "seeds", args.env_module)
    out = args.out or os.path.join("runs", re.sub(r"[/:\\]", "_", f"{algo.NAME}-{args.env}"))
    jobs = args.jobs if args.jobs is not None else min(len(seed_list), os.cpu_count() or 1)
    try:
        summary = seeds.run_seeds(algo, args.env, config, seed_list, out_root=out, total_steps=args.steps,
                                  jobs=jobs, checkpoint_every=args.checkpoint_every, force=args.force,
                                  verbose=not args.quiet, env_module=args.env_module)
    except seeds.SeedRunError as e:
        raise UsageError(f"purepg seeds: error: {e}") from None
    if args.quiet:
        print(seeds.summary_line(summary, os.path.join(out, "summary.json")))
    print(f"Plot the seeds with: purepg plot {out} --out curves.png")
    return 0


def cmd_plot(args):
    from purepg.run import plot

    try:
        curves = plot.plot_runs(args.run_dirs, args.out, x=args.x, y=args.y)
    except ImportError as e:
        raise UsageError(f"purepg plot: error: {e}") from None
    for c in curves:
        print(plot.summary_line(c, args.x))
    print(f"Wrote {args.out}")
    return 0


def cmd_golden(args):
    from purepg.verify import golden

    seed = golden.SEED if args.seed is None else args.seed
    path = golden.write_golden(args.out, seed)
    print(f"Wrote {path}: golden vectors ({golden.FORMAT}, seed {seed}) of a categorical and a Gaussian policy. "
          f"Load it with numpy.load; docs/verify.md shows how to compare another implementation")
    return 0


def _product_parsers(sub, algo):
    from purepg.cli import sweep

    _seeds_parser(sub, algo)
    sweep.add_parser(sub, lambda s: _parse("int", False, s))
    pl = sub.add_parser("plot", help="learning curves of run directories (mean and min-max over seeds): png, pdf or svg",
                        description="Draw learning curves: runs that differ only in their seed are one curve (mean "
                                    "and min-max band), other configurations separate curves, each environment a "
                                    'panel. Needs matplotlib: pip install "purepg[plot]".')
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                    help="run directories, or parents of runs (such as the --out of purepg seeds)")
    pl.add_argument("--out", default="curves.png", help="image to write, .png, .pdf or .svg [default: curves.png]")
    pl.add_argument("--x", default="step", help="progress.csv column for the x axis [default: step]")
    pl.add_argument("--y", default="ep_return_mean", help="progress.csv column for the y axis [default: ep_return_mean]")
    g = sub.add_parser("golden", help="write reference vectors for cross-checking another implementation",
                       description="Write an .npz of fixed policies, a batch, and purepg's log-probs, score, "
                                   "entropy, KL and gradient, Fisher, FVP, CG, natural step, PPO objectives and "
                                   "GAE on them (see docs/verify.md). Two invocations write identical bytes.")
    g.add_argument("--out", default="golden.npz", help="file to write [default: golden.npz]")
    g.add_argument("--seed", type=lambda s: _parse("int", False, s), default=None,
                   help="root seed of the inputs [default: the published vectors' seed]")


# ------------------------------------------------------------------------------- main ------
def build_parser(algo=None):
    """The full parser; ``train``'s config options are those of ``algo`` (a module) if given."""
    p = _Parser(prog="purepg", description="purepg: autograd-free policy-gradient algorithms on NumPy + Numba.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _train_parser(sub, algo)
    r = sub.add_parser("resume", help="continue a run from its checkpoint",
                       description="Continue a run from its checkpoint; progress.csv continues exactly as an "
                                   "uninterrupted run's would (wall-time columns aside).")
    r.add_argument("run_dir", help="a directory written by purepg train")
    r.add_argument("--steps", type=lambda s: _parse("int", False, s), default=None,
                   help="new total of environment steps [default: the run's]")
    r.add_argument("--checkpoint-every", type=lambda s: _parse("int", False, s), default=10,
                   help="iterations between checkpoints [default: 10]")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.add_argument("--threads", type=lambda s: _parse("int", False, s), default=1,
                   help="cores the run computes on: 1, or 2 for the same results sooner [default: 1]")
    e = sub.add_parser("eval", help="mean +- std return of a run's saved policy",
                       description="Mean +- std return of the run's saved policy, deterministic (mode) by "
                                   "default, with the saved observation normaliser.")
    e.add_argument("run_dir", help="a directory written by purepg train")
    e.add_argument("--episodes", type=lambda s: _parse("int", False, s), default=20,
                   help="number of episodes [default: 20]")
    e.add_argument("--seed", type=lambda s: _parse("int", False, s), default=0, help="episode i resets with seed + i")
    e.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    a = sub.add_parser("algos", help="list the algorithms with their fields, defaults and meaning")
    a.add_argument("name", nargs="?")
    a.add_argument("--conventions", default=None, metavar="PROFILE",
                   help="print the convention profile PROFILE (purepg, sb3, cleanrl, tianshou) with each option's source")
    verify_commands.add_conformance_parser(sub)
    _product_parsers(sub, algo)
    return p


def cmd_sweep(args):
    from purepg.cli import sweep

    return sweep.cmd_sweep(args, UsageError)


_COMMANDS = {"train": cmd_train, "resume": cmd_resume, "eval": cmd_eval, "algos": cmd_algos, "seeds": cmd_seeds,
             "plot": cmd_plot, "golden": cmd_golden, "conformance": verify_commands.cmd_conformance,
             "sweep": cmd_sweep}


def _dispatch(argv):
    """Parse ``argv`` and run the command; no command (or options only) means ``train``."""
    from purepg.algos import get_algo

    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]
    algo = get_algo(_algo_from_argv(argv)) if argv[0] in ("train", "seeds") else None
    args, extra = build_parser(algo).parse_known_args(argv)
    if args.command is None:                                     # purepg -h handled by argparse
        raise UsageError("purepg: error: expected a command: train, resume, eval, algos, seeds, sweep, plot, golden "
                         "or conformance")
    if extra:
        if args.command not in ("train", "seeds"):
            raise UsageError(f"purepg {args.command}: error: unrecognized arguments: {' '.join(extra)}")
        _unknown_option(extra, algo, args.command)
    return _COMMANDS[args.command](args)


def main(argv=None) -> int:
    """Entry point of ``purepg``; returns the exit status (see :mod:`purepg.cli.errors`)."""
    return errors.run(_dispatch, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
