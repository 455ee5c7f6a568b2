"""purepg PPO next to Stable-Baselines3 PPO: same hyperparameters, same machine, one thread, one process.

Stable-Baselines3 is not a dependency of purepg. Install it in a separate environment together with
purepg, then run from the repository root::

    python -m venv venv-sb3 && venv-sb3/bin/pip install stable-baselines3 torch -e .
    venv-sb3/bin/python bench/vs_sb3.py                    # CartPole-v1, 1e5 steps, seeds 0-2
    venv-sb3/bin/python bench/vs_sb3.py --seeds 0-4 --profile

Both sides use rl-zoo's tuned CartPole-v1 PPO (8 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98,
GAE 0.8, lr linear from 1e-3, clip linear from 0.2, ent_coef 0) and SB3's defaults for the rest (64-64
tanh policy and value networks, orthogonal init, vf_coef 0.5, max_grad_norm 0.5, Adam eps 1e-5,
advantage normalisation per minibatch): ``purepg.algos.ppo.Config()`` is that configuration. For each
seed the two trainings run one after the other in this process (alternating which goes first), so
they see the same machine load; each is then evaluated on 20 deterministic episodes (reset seeds
10000..10019, outside the timing). Each timer covers a whole training from nothing: building the
vector env and the model (SB3) or the run (``purepg.run.runner.train``: env, policy, run directory), then
training. Before the first, purepg's kernels for the run are compiled (or loaded from Numba's cache) in
this process, untimed (``purepg.run.ahead.compile_now``: a machine's first ``purepg train`` leaves the
same in the cache; without it a cache that lacks the fused minibatch-step kernels would time the
step-by-step passes). The first run of each library in the process also pays its one-time costs
(PyTorch's lazy initialisation, loading purepg's cached Numba kernels, ~0.2 s). Printed: wall times, the ratio
purepg / SB3, the evaluations.

``--algo trpo`` (needs sb3-contrib) compares TRPO instead: ``purepg.algos.trpo.Config()`` is rl-zoo's
tuned CartPole-v1 TRPO (2 envs, n_steps 512, batch_size 512, cg_damping 1e-3, gae_lambda 0.98, gamma
0.99, critic lr 1e-3 with 20 critic passes) with sb3-contrib's defaults for the rest (cg_max_steps 15,
target_kl 0.01, line search 0.8 x 10, advantage normalisation), mapped field by field onto
``sb3_contrib.TRPO``. Known differences: sb3-contrib starts CG from ``1e-4 randn`` (purepg from 0),
accepts ``KL < delta`` (purepg ``<=``), and its critic's Adam has eps 1e-5 (purepg's 1e-8).

``--preset`` runs both libraries with ``bench/presets.py``'s rl-zoo entry for the algorithm and
``--env`` (e.g. ``--env Hopper-v5 --steps 1000000 --preset``): activation, ``init`` (``ortho_init``)
and ``VecNormalize`` for ``normalize_obs`` / ``normalize_reward`` are mapped too, and SB3's policy is
evaluated on observations normalised with its frozen statistics, as purepg's.

``--profile`` splits purepg's wall time into rollout (``purepg.env.rollout.collect``: env steps, action
sampling, log-probs), update (``ppo.update``: GAE, minibatch epochs, logs) and the rest (progress
file, checkpoints), by timing those two calls inside the run.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy / numba / torch are imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from purepg.cli import commands as cli  # noqa: E402
from purepg.env import rollout
from purepg.run import ahead, runner
from purepg.algos import ppo, trpo  # noqa: E402
from purepg.run.seeds import parse_seeds  # noqa: E402

try:
    import gymnasium
    import stable_baselines3
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
except ImportError as e:
    sys.exit(f"bench/vs_sb3.py needs stable-baselines3 and torch ({e}). Install them next to purepg, e.g. "
             f"python -m venv venv-sb3 && venv-sb3/bin/pip install stable-baselines3 torch -e .")

torch.set_num_threads(1)
EVAL_EPISODES, EVAL_SEED = 20, 10_000


def _policy_kwargs(c):
    """SB3's MlpPolicy arguments for purepg's separate policy and value networks of ``c``."""
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[c.activation]
    return dict(net_arch=dict(pi=list(c.hidden), vf=list(c.vf_hidden)), activation_fn=act,
                log_std_init=c.log_std_init, ortho_init=c.init == "orthogonal")


def _vec_env(c, env_id, seed):
    """SB3's vector env for ``c``: ``VecNormalize`` when purepg normalises observations or rewards."""
    env = make_vec_env(env_id, n_envs=c.num_envs, seed=seed)
    if c.normalize_obs or c.normalize_reward:
        env = VecNormalize(env, norm_obs=c.normalize_obs, norm_reward=c.normalize_reward, gamma=c.gamma)
    return env


def sb3_ppo(config, env_id, seed, steps):
    """SB3 PPO with purepg's ``config`` mapped onto its arguments; returns (wall seconds, model)."""
    c = config
    t = time.perf_counter()                      # from nothing, as purepg's timer (runner.train) is
    env = _vec_env(c, env_id, seed)
    model = PPO("MlpPolicy", env, n_steps=c.num_steps, batch_size=c.minibatch_size, n_epochs=c.epochs,
                gamma=c.gamma, gae_lambda=c.gae_lambda, ent_coef=c.ent_coef, vf_coef=c.vf_coef,
                max_grad_norm=c.max_grad_norm, normalize_advantage=c.normalize_advantage,
                learning_rate=lambda p: c.lr_final + p * (c.lr - c.lr_final),    # p: progress remaining
                clip_range=lambda p: c.clip_final + p * (c.clip - c.clip_final),
                policy_kwargs=_policy_kwargs(c), seed=seed, device="cpu")
    model.learn(steps)
    return time.perf_counter() - t, model


def sb3_trpo(config, env_id, seed, steps, log_dir=None, float64=False):
    """sb3-contrib TRPO with purepg's trpo ``config`` mapped onto its arguments; (wall seconds, model).

    ``log_dir``: where its logger writes ``progress.csv`` (one row per iteration), if given.
    ``float64``: its networks and rollout buffer in float64 (the casts of :mod:`purepg.verify.conformance_sb3`)."""
    from sb3_contrib import TRPO
    c = config
    t = time.perf_counter()
    env = _vec_env(c, env_id, seed)
    extra = {}
    if float64:
        from stable_baselines3.common.buffers import RolloutBuffer

        from purepg.verify import conformance_sb3
        extra["rollout_buffer_class"] = conformance_sb3.float64_buffer(RolloutBuffer)
    model = TRPO("MlpPolicy", env, n_steps=c.num_steps, batch_size=c.vf_minibatch_size, gamma=c.gamma,
                 gae_lambda=c.gae_lambda, cg_max_steps=c.cg_iters, cg_damping=c.damping,
                 line_search_shrinking_factor=c.ls_ratio, line_search_max_iter=c.ls_max_steps,
                 n_critic_updates=c.vf_epochs, learning_rate=c.vf_lr, target_kl=c.delta,
                 normalize_advantage=c.normalize_advantage,
                 policy_kwargs=_policy_kwargs(c), seed=seed, device="cpu", **extra)
    if float64:
        conformance_sb3.to_float64(model.policy)
    if log_dir is not None:
        from stable_baselines3.common.logger import configure
        model.set_logger(configure(log_dir, ["csv"]))
    model.learn(steps, log_interval=1)
    return time.perf_counter() - t, model


ALGOS = {"ppo": (ppo, sb3_ppo), "trpo": (trpo, sb3_trpo)}   # purepg module, SB3 runner


def sb3_eval(model, env_id):
    """20 deterministic episodes; observations normalised with the frozen training statistics, if any."""
    env, norm = gymnasium.make(env_id), model.get_vec_normalize_env()
    R = []
    for i in range(EVAL_EPISODES):
        x, _ = env.reset(seed=EVAL_SEED + i)
        total, done = 0.0, False
        while not done:
            a, _ = model.predict(x if norm is None else norm.normalize_obs(x[None])[0], deterministic=True)
            x, r, term, trunc, _ = env.step(a)
            total, done = total + r, term or trunc
        R.append(total)
    return np.array(R)


class Timed:
    """Wraps a function and adds its wall time to ``self.seconds``."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t


def purepg_ppo(config, env_id, seed, steps, out_dir, profile, module=ppo):
    """purepg PPO (or ``module``); returns (wall seconds, {rollout, update} seconds or None)."""
    collect, update = Timed(rollout.collect), Timed(module.update)
    algo = module
    if profile:
        rollout.collect = collect
        algo = type(sys)(f"{module.NAME}_timed")
        algo.__dict__.update({k: getattr(module, k) for k in ("NAME", "Config", "init")}, update=update)
    t = time.perf_counter()
    try:
        runner.train(algo, env_id, config, seed=seed, out_dir=out_dir, total_steps=steps, force=True,
                     verbose=False)
    finally:
        rollout.collect = collect.fn
    wall = time.perf_counter() - t
    return wall, ({"rollout": collect.seconds, "update": update.seconds} if profile else None)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=sorted(ALGOS), default="ppo", help="ppo (SB3) or trpo (sb3-contrib)")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", type=parse_seeds, default=[0, 1, 2], help="e.g. 0-4 or 0,2 [default: 0-2]")
    p.add_argument("--profile", action="store_true", help="split purepg's time into rollout / update / rest")
    p.add_argument("--preset", action="store_true",
                   help="use bench/presets.py's rl-zoo preset for (algo, env) in both libraries (e.g. Hopper-v5)")
    args = p.parse_args()
    from learn import machine                                    # bench/learn.py, next to this file
    print(f"machine: {machine()}, torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}")
    print(f"command: python {' '.join(sys.argv)}\n")
    module, sb3_run = ALGOS[args.algo]
    overrides = {}
    if args.preset:
        import presets                                           # bench/presets.py, next to this file
        overrides = presets.overrides(args.algo, args.env)
        print(f"preset: {presets.source(args.algo, args.env)}: {overrides}")
    config, out = module.Config(**overrides), tempfile.mkdtemp(prefix="purepg-vs-sb3-")
    ahead.compile_now(module, config, args.env)                  # what a first `purepg train` leaves cached
    head = f"{'seed':>4} {'SB3 s':>8} {'purepg s':>9} {'ratio':>6} {'SB3 eval':>15} {'purepg eval':>15}"
    print(head + ("   purepg rollout / update / rest s" if args.profile else ""))
    walls = []
    for i, seed in enumerate(args.seeds):
        run_dir = os.path.join(out, f"s{seed}")
        first_sb3 = i % 2 == 0                                   # alternate the order across seeds
        if first_sb3:
            t_sb3, model = sb3_run(config, args.env, seed, args.steps)
        t_pg, parts = purepg_ppo(config, args.env, seed, args.steps, run_dir, args.profile, module)
        if not first_sb3:
            t_sb3, model = sb3_run(config, args.env, seed, args.steps)
        R_sb3, R_pg = sb3_eval(model, args.env), cli.evaluate(run_dir, EVAL_EPISODES, EVAL_SEED)
        walls.append((t_sb3, t_pg))
        line = (f"{seed:>4} {t_sb3:8.1f} {t_pg:9.1f} {t_pg / t_sb3:6.2f} {R_sb3.mean():7.1f} +- {R_sb3.std():5.1f}"
                f" {R_pg.mean():7.1f} +- {R_pg.std():5.1f}")
        if parts:
            rest = t_pg - parts["rollout"] - parts["update"]
            line += f"   {parts['rollout']:.1f} / {parts['update']:.1f} / {rest:.1f}"
        print(line, flush=True)
    w = np.array(walls)
    print(f"\ntotal: SB3 {w[:, 0].sum():.1f} s, purepg {w[:, 1].sum():.1f} s, ratio purepg / SB3 = "
          f"{w[:, 1].sum() / w[:, 0].sum():.3f} (median per seed {np.median(w[:, 1] / w[:, 0]):.3f})")


if __name__ == "__main__":
    main()
