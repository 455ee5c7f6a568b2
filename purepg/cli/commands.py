"""The ``purepg`` command (also ``python -m purepg``): train, resume, evaluate, list algorithms.

::

    purepg train [--algo NAME] [--env ID] [--steps N] [--seed S] [--out DIR] [--force]
                 [--checkpoint-every K] [--quiet] [--FIELD VALUE ...]
    purepg resume RUN_DIR [--steps N] [--checkpoint-every K] [--quiet]
    purepg eval RUN_DIR [--episodes 20] [--seed 0] [--stochastic]
    purepg algos [NAME]
    purepg seeds [--algo NAME] [--env ID] [--seeds 0-4] [--jobs J] [--steps N] [--out ROOT] [--force]
                 [--checkpoint-every K] [--quiet] [--FIELD VALUE ...]
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
writes the reference vectors of :mod:`purepg.verify.golden`.

Errors in the input (unknown algorithm, environment, option or field; invalid values; an existing
run directory; a corrupt or mismatched checkpoint; NaN or inf during training) print one line to
stderr and exit with status 2, never a traceback (set ``PUREPG_DEBUG=1`` to see one). Ctrl-C during
training saves a checkpoint, prints how to resume and exits with status 130.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import sys

import numpy as np

from purepg.algos.fields import show
from purepg.cli import verify_commands

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
DEFAULT_ALGO, DEFAULT_ENV, DEFAULT_STEPS = "ppo", "CartPole-v1", 100_000
_FIXED = ("algo", "env", "steps", "seed", "out", "force", "checkpoint-every", "quiet", "help", "seeds", "jobs",
          "conventions")


class UsageError(Exception):
    """Bad command-line input: reported as one line, exit status 2."""


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
    return f"{d['symbol'] + ': ' if d['symbol'] else ''}{d['meaning']}; in {d['range']} ({d['source']})"


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
    close = difflib.get_close_matches(opt.split("=")[0], names, n=3)
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
    return p


def _run_options(p, algo, out_help, quiet_help):
    """The options ``train`` and ``seeds`` share, and the config fields of ``algo``."""
    p.add_argument("--algo", default=DEFAULT_ALGO, help=f"algorithm (see purepg algos) [default: {DEFAULT_ALGO}]")
    p.add_argument("--env", default=DEFAULT_ENV, help=f"gymnasium environment id [default: {DEFAULT_ENV}]")
    p.add_argument("--steps", type=lambda s: _parse("int", False, s), default=DEFAULT_STEPS,
                   help=f"total environment steps (per seed) [default: {DEFAULT_STEPS}]")
    p.add_argument("--out", default=None, help=out_help)
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--checkpoint-every", type=lambda s: _parse("int", False, s), default=10,
                   help="iterations between checkpoints [default: 10]")
    p.add_argument("--quiet", action="store_true", help=quiet_help)
    if algo is not None:
        _add_config_options(p, algo)


def _check_env(env_id, command="train"):
    """Build one copy of the env (unknown ids and unsupported spaces fail here, before any file)."""
    import gymnasium

    from purepg.env import envs
    try:
        envs.make_vec_env(env_id, 1, seed=0).close()
    except gymnasium.error.Error as e:
        raise UsageError(f"purepg {command}: error: env {env_id!r} cannot be built ({type(e).__name__}: {e})") from None


def cmd_train(args):
    from purepg.run import runner
    from purepg.algos import get_algo

    algo = get_algo(args.algo)
    config, record = _config_from_args(args, algo)
    _check_env(args.env)
    out = args.out or os.path.join("runs", re.sub(r"[/:\\]", "_", f"{algo.NAME}-{args.env}-s{args.seed}"))
    summary = _during_training(args.quiet, lambda: runner.train(
        algo, args.env, config, seed=args.seed, out_dir=out, total_steps=args.steps,
        checkpoint_every=args.checkpoint_every, force=args.force, verbose=not args.quiet, conventions=record))
    _report(summary)
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


class _LineTracker:
    """A stderr proxy that remembers whether the last write left a line open (the progress line)."""

    def __init__(self, stream):
        self.stream, self.mid_line = stream, False

    def write(self, s):
        if s:
            self.mid_line = not s.endswith("\n")
        return self.stream.write(s)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _during_training(quiet, fn):
    """Run ``fn``; if it fails while the progress line is open, end that line first."""
    tracker = sys.stderr = _LineTracker(sys.stderr)
    try:
        return fn()
    except BaseException:
        if tracker.mid_line:
            print(file=tracker.stream)
        raise
    finally:
        sys.stderr = tracker.stream


def _report(summary):
    ret = summary["last_row"].get("ep_return_mean", float("nan"))
    print(f"{summary['algo']} on {summary['env_id']} (seed {summary['seed']}): {summary['steps']} steps, "
          f"{summary['episodes']} episodes, mean return of the last episodes {ret:.2f}. "
          f"Run directory: {summary['out_dir']}. Evaluate with: purepg eval {summary['out_dir']}")


# ------------------------------------------------------------------------ resume / eval ----
def cmd_resume(args):
    from purepg.run import runner

    summary = _during_training(args.quiet, lambda: runner.resume(
        args.run_dir, total_steps=args.steps, checkpoint_every=args.checkpoint_every, verbose=not args.quiet))
    _report(summary)
    return 0


def evaluate(run_dir, episodes=20, seed=0, stochastic=False):
    """Returns (episodes,) of the run's saved policy; episode ``i`` is reset with ``seed + i``.

    The deterministic policy (:meth:`purepg.model.policy.Policy.mode`) by default, else actions sampled with
    ``numpy.random.default_rng(seed)``. Observations are normalised with the saved statistics
    (frozen); Gaussian actions are clipped to the action Box as during training.
    """
    import gymnasium

    from purepg.run import checkpoint, runner

    from purepg.env import normalize, rollout
    from purepg.algos import get_algo

    meta = runner.read_config(run_dir)
    algo = get_algo(meta["algo"])
    config = runner.config_from_dict(algo.Config, meta["config"], algo=meta["algo"])
    path = os.path.join(run_dir, "checkpoint.npz")
    tree, _ = checkpoint.load(path, required=("algo", "rollout"))
    env = gymnasium.make(meta["env_id"])
    pol = runner.make_policy(env.observation_space, env.action_space, config)
    theta = np.asarray(tree["algo"].get("theta", np.zeros(0)))
    if theta.shape != (pol.num_params,) or not np.all(np.isfinite(theta)):
        raise checkpoint.CheckpointError(f"checkpoint {path}: field 'algo/theta' has shape {theta.shape}, expected "
                                         f"({pol.num_params},) finite values for this config and env")
    try:
        norm = rollout.state_from_dict(tree["rollout"]).norm
    except ValueError as e:
        raise checkpoint.CheckpointError(f"checkpoint {path}: field 'rollout' is invalid ({e})") from None
    rng = np.random.default_rng(seed)
    out = np.array([_episode(env, pol, theta, norm, seed + i, rng if stochastic else None, normalize)
                    for i in range(episodes)])
    env.close()
    return out


def _episode(env, pol, theta, norm, seed, rng, nz):
    x, _ = env.reset(seed=int(seed))
    total, done = 0.0, False
    while not done:
        o = np.asarray(x, dtype=np.float64)[None]                           # (1, d)
        o = o if norm is None else nz.normalize(norm, o)
        a = (pol.mode(theta, o) if rng is None else pol.sample(theta, o, rng))[0]
        a = int(a) if pol.discrete else np.clip(a, env.action_space.low, env.action_space.high)
        x, r, term, trunc, _ = env.step(a)
        total, done = total + float(r), bool(term or trunc)
    return total


def cmd_eval(args):
    if args.episodes < 1:
        raise UsageError(f"purepg eval: error: --episodes: expected an integer >= 1, got {args.episodes}")
    R = evaluate(args.run_dir, args.episodes, args.seed, args.stochastic)
    kind = "stochastic" if args.stochastic else "deterministic"
    print(f"{args.run_dir}: return {R.mean():.2f} +- {R.std():.2f} (mean +- std over {R.size} episodes, "
          f"{kind} policy, reset seeds {args.seed}..{args.seed + R.size - 1}; min {R.min():.2f}, max {R.max():.2f})")
    return 0


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
    _check_env(args.env, "seeds")
    out = args.out or os.path.join("runs", re.sub(r"[/:\\]", "_", f"{algo.NAME}-{args.env}"))
    jobs = args.jobs if args.jobs is not None else min(len(seed_list), os.cpu_count() or 1)
    try:
        summary = seeds.run_seeds(algo, args.env, config, seed_list, out_root=out, total_steps=args.steps,
                                  jobs=jobs, checkpoint_every=args.checkpoint_every, force=args.force,
                                  verbose=not args.quiet)
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
    _seeds_parser(sub, algo)
    pl = sub.add_parser("plot", help="learning curves of run directories (mean and min-max over seeds), as a PNG",
                        description="Draw learning curves: runs that differ only in their seed are one curve (mean "
                                    "and min-max band), other configurations separate curves, each environment a "
                                    'panel. Needs matplotlib: pip install "purepg[plot]".')
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                    help="run directories, or parents of runs (such as the --out of purepg seeds)")
    pl.add_argument("--out", default="curves.png", help="PNG file to write [default: curves.png]")
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


_COMMANDS = {"train": cmd_train, "resume": cmd_resume, "eval": cmd_eval, "algos": cmd_algos, "seeds": cmd_seeds,
             "plot": cmd_plot, "golden": cmd_golden, "conformance": verify_commands.cmd_conformance}


def _dispatch(argv):
    """Parse ``argv`` and run the command; no command (or options only) means ``train``."""
    from purepg.algos import get_algo

    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train", *argv]
    algo = get_algo(_algo_from_argv(argv)) if argv[0] in ("train", "seeds") else None
    args, extra = build_parser(algo).parse_known_args(argv)
    if args.command is None:                                     # purepg -h handled by argparse
        raise UsageError("purepg: error: expected a command: train, resume, eval, algos, seeds, plot, golden or "
                         "conformance")
    if extra:
        if args.command not in ("train", "seeds"):
            raise UsageError(f"purepg {args.command}: error: unrecognized arguments: {' '.join(extra)}")
        _unknown_option(extra, algo, args.command)
    return _COMMANDS[args.command](args)


def _one_line(e):
    return " ".join(str(e).split())


def main(argv=None) -> int:
    """Entry point of ``purepg``; returns the exit status."""
    import gymnasium

    from purepg.run.runner import Interrupted

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except Interrupted as e:
        print(f"purepg: {_one_line(e)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("purepg: interrupted before training started; nothing was saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:                                      # e.g. purepg algos | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UsageError as e:
        print(_one_line(e), file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError, OSError, gymnasium.error.Error) as e:
        if os.environ.get("PUREPG_DEBUG"):
            raise
        print(f"purepg: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
