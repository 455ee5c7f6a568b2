"""``purepg resume`` and ``purepg eval``: the commands that read a run directory, and the end-of-run report."""
from __future__ import annotations

import os

import numpy as np

from purepg.cli.errors import UsageError


def report(summary):
    """The line printed when a run ends: steps, episodes, last mean return, how to evaluate it."""
    ret = summary["last_row"].get("ep_return_mean", float("nan"))
    print(f"{summary['algo']} on {summary['env_id']} (seed {summary['seed']}): {summary['steps']} steps, "
          f"{summary['episodes']} episodes, mean return of the last episodes {ret:.2f}. "
          f"Run directory: {summary['out_dir']}. Evaluate with: purepg eval {summary['out_dir']}")


def check_checkpoint_every(k, command):
    if k < 1:
        raise UsageError(f"purepg {command}: error: --checkpoint-every: expected an integer >= 1 (iterations "
                         f"between checkpoints), got {k}. Fix: pass e.g. --checkpoint-every 10")


def check_threads(threads, command):
    """``--threads`` (:func:`purepg.run.workers.check_threads`), as a one-line usage error."""
    from purepg.run import workers

    try:
        return workers.check_threads(threads, "--threads")
    except ValueError as e:
        raise UsageError(f"purepg {command}: error: {e}") from None


def cmd_resume(args):
    from purepg.run import runner

    check_checkpoint_every(args.checkpoint_every, "resume")
    check_threads(args.threads, "resume")
    report(runner.resume(args.run_dir, total_steps=args.steps, checkpoint_every=args.checkpoint_every,
                         verbose=not args.quiet, threads=args.threads))
    return 0


def evaluate(run_dir, episodes=20, seed=0, stochastic=False):
    """Returns (episodes,) of the run's saved policy; episode ``i`` is reset with ``seed + i``.

    The deterministic policy (:meth:`purepg.model.policy.Policy.mode`) by default, else actions sampled with
    ``numpy.random.default_rng(seed)``. Observations are normalised with the saved statistics
    (frozen); Gaussian actions are clipped to the action Box as during training. The checkpoint
    must be the run's own (same algorithm, environment and seed as ``config.json``); the
    environment's module, if the run recorded one, is imported.
    """
    from purepg.env import envs, normalize, rollout
    from purepg.run import checkpoint, runner

    meta = runner.read_config(run_dir)
    _, config, tree, _ = runner.load_run(run_dir, meta, required=("algo", "rollout"))
    path = os.path.join(run_dir, "checkpoint.npz")
    env = envs.make_env(meta["env_id"], meta["env_module"])
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
