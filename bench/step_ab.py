"""The PPO minibatch step, the PPO update and the TRPO update of two checkouts, in one process, alternating.

Run from anywhere (one thread)::

    python bench/step_ab.py BEFORE_DIR AFTER_DIR [--rounds 6] [--trpo] [--rollout]
    python bench/step_ab.py BEFORE_DIR AFTER_DIR --runs trpo,ppo --rounds 3      # whole runs instead

Each checkout's ``purepg`` is imported in turn (the modules of the first are dropped from
``sys.modules`` before the second is imported; each keeps its own functions and Numba kernels). For
each, three closures are built: the minibatch step of ``bench/update_step.py`` (rl-zoo's CartPole-v1
PPO, N = 256, both networks, loss, clipping, Adam, with the workspaces of ``ppo.workspaces`` where the
checkout has them); ``ppo.update``, one PPO iteration's update (20 epochs of one 256-row minibatch,
the KL and the logs) on one CartPole-v1 batch of 8 x 32 steps; ``bench/update_step.py``'s TRPO
update (``--trpo``); and with ``--rollout`` one ``rollout.collect`` of TRPO's 2 copies x 512 steps and
of PPO's 8 copies x 32 steps (each closure continues its own episodes, the same in both checkouts). The script first checks that the two checkouts take the same steps (and collect the same batch), bit for bit,
then alternates blocks of calls of one and of the other, ``9 x rounds`` blocks each, so both see the
same load on a shared machine, and prints the median time per call with its quartiles, the ratio
after / before of the medians and of the fastest blocks (the least disturbed by other processes), and
the load average. Should Numba fail to load the second checkout's cached kernels (``RuntimeError: In
'NRT_adapt_ndarray_to_python', 'descr' is NULL``, seen with the AVX2 prefix: the two checkouts' kernels
have the same names), run with ``NUMBA_CACHE_DIR`` set to an empty directory. ``PUREPG_BENCH_CLOCK=cpu`` times with this process's CPU time
instead of wall time.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402  (bench/machine.py)

CLOCK = time.process_time if os.environ.get("PUREPG_BENCH_CLOCK") == "cpu" else time.perf_counter


def block(fn, inner):
    t = CLOCK()
    for _ in range(inner):
        fn()
    return (CLOCK() - t) / inner


def load(root):
    """``(ppo_step, trpo_update, ppo_update)`` closures of the checkout at ``root``."""
    for name in [k for k in sys.modules if k == "purepg" or k.startswith("purepg.")]:
        del sys.modules[name]
    sys.path.insert(0, os.path.abspath(root))
    from purepg.algos import ppo, trpo
    from purepg.algos.common import Flat
    from purepg.env import envs, rollout
    from purepg.model.policy import CategoricalPolicy
    from purepg.model.value import ValueFunction
    from purepg.run.runner import Context
    sys.path.pop(0)
    cfg, rng, N = ppo.Config(), np.random.default_rng(0), 256
    pol, vf = CategoricalPolicy(4, 2, cfg.hidden, cfg.activation), ValueFunction(4, cfg.vf_hidden, cfg.activation)
    ctx = Context(pol, vf, cfg, 100_000)
    state = ppo.init(ctx, rng)
    obs, act = rng.standard_normal((N, 4)), rng.integers(0, 2, N)
    data = Flat(obs, act, pol.log_prob(state["theta"], obs, act), *rng.standard_normal((3, N)))
    joint, P, perm = ppo.join(state), state["theta"].size, rng.permutation(N)
    kw = {"ws": ppo.workspaces(ctx, N)} if hasattr(ppo, "workspaces") else {}

    def step():
        mb = ppo.minibatch(data, perm, cfg.normalize_advantage)
        s = ppo.loss_and_grad_unchecked(ctx, joint.x[:P], joint.x[P:], mb, state["theta"], {"clip_range": 0.2}, **kw)
        return ppo.clip_and_step(joint, s, 1e-4, cfg)

    tctx = Context(pol, vf, trpo.Config(), 100_000)
    tstate = trpo.init(tctx, np.random.default_rng(1))
    vec = envs.make_vec_env("CartPole-v1", tctx.config.num_envs, seed=0)
    batch, _ = rollout.collect(vec, pol, tstate["theta"], tctx.config.num_steps, np.random.default_rng(2),
                               rollout.start(vec))
    vec = envs.make_vec_env("CartPole-v1", cfg.num_envs, seed=0)
    pbatch, _ = rollout.collect(vec, pol, state["theta"], cfg.num_steps, np.random.default_rng(2), rollout.start(vec))
    return (step, lambda: trpo.update(tctx, tstate, batch, np.random.default_rng(3), 0.1),
            lambda: ppo.update(ctx, state, pbatch, np.random.default_rng(3), 0.1),
            _collector(envs, rollout, pol, tstate["theta"], tctx.config.num_envs, tctx.config.num_steps),
            _collector(envs, rollout, pol, state["theta"], cfg.num_envs, cfg.num_steps))


def _collector(envs, rollout, pol, theta, E, T):
    """A closure that collects the next batch of ``E`` CartPole-v1 copies x ``T`` steps, continuing its episodes."""
    vec, rng = envs.make_vec_env("CartPole-v1", E, seed=0), np.random.default_rng(4)
    state = [rollout.start(vec)]

    def collect():
        batch, state[0] = rollout.collect(vec, pol, theta, T, rng, state[0])
        return batch

    return collect


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--trpo", action="store_true", help="also alternate TRPO updates (blocks of 3)")
    ap.add_argument("--runs", default="", help="instead: whole `purepg train` runs of these algorithms (e.g. trpo,ppo)")
    ap.add_argument("--rollout", action="store_true",
                    help="also alternate rollouts: TRPO's 2 x 512 steps and PPO's 8 x 32 steps of CartPole-v1")
    args = ap.parse_args()
    if args.runs:
        return whole_runs(args.before, args.after, args.runs.split(","), args.rounds)
    clock = " (clock: CPU time of this process)" if CLOCK is time.process_time else ""
    print(f"machine: {machine.summary()}\ncommand: python {' '.join(sys.argv)}{clock}\n")
    (a_step, a_trpo, a_ppo, a_r2, a_r8), (b_step, b_trpo, b_ppo, b_r2, b_r8) = load(args.before), load(args.after)
    ja, jb = a_step(), b_step()
    (sa, _), (sb, _) = a_trpo(), b_trpo()
    same = all(np.array_equal(x, y) for x, y in ((ja.x, jb.x), (ja.opt.m, jb.opt.m), (ja.opt.v, jb.opt.v)))
    same_t = all(np.array_equal(sa[k], sb[k]) for k in sa if isinstance(sa[k], np.ndarray))
    (pa, _), (pb, _) = a_ppo(), b_ppo()
    same_p = all(np.array_equal(pa[k], pb[k]) for k in ("theta", "theta_v"))
    ra, rb = a_r2(), b_r2()
    same_r = all(np.array_equal(getattr(ra, k), getattr(rb, k)) for k in ("obs", "act", "rew", "logp_old"))
    print(f"same bits: PPO step {same}, PPO update {same_p}, TRPO update {same_t}, rollout {same_r}")
    rows = [("PPO minibatch step", a_step, b_step, 40, 1e6, "us"), ("PPO update (20 steps)", a_ppo, b_ppo, 2, 1e3, "ms")]
    if args.trpo:
        rows.append(("TRPO update", a_trpo, b_trpo, 3, 1e3, "ms"))
    if args.rollout:
        rows += [("rollout 2 x 512 steps", a_r2, b_r2, 1, 1e3, "ms"), ("rollout 8 x 32 steps", a_r8, b_r8, 4, 1e3, "ms")]
    for name, fa, fb, inner, unit, label in rows:
        A, B = [], []
        for _ in range(9 * args.rounds):
            A.append(block(fa, inner))
            B.append(block(fb, inner))
        qa, qb = unit * np.percentile(A, [25, 50, 75]), unit * np.percentile(B, [25, 50, 75])
        print(f"{name:21s} before {qa[1]:7.1f} {label} ({qa[0]:.1f}-{qa[2]:.1f})  after {qb[1]:7.1f} {label} "
              f"({qb[0]:.1f}-{qb[2]:.1f})  after / before {qb[1] / qa[1]:.3f} (fastest blocks: {min(B) / min(A):.3f})")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def whole_runs(before, after, algos, rounds):
    """Alternate ``purepg train --algo ALGO --env CartPole-v1 --steps 100000 --seed 0`` of the two checkouts
    as child processes, ``rounds`` times: the children's CPU time (``getrusage``), medians and their ratio,
    and whether the two runs' last progress rows are the same."""
    print(f"machine: {machine.summary()}\ncommand: python {' '.join(sys.argv)} (clock: the children's CPU time)\n")
    for algo in algos:
        cpu, last = {"before": [], "after": []}, {}
        for _ in range(rounds):
            for name, root in (("before", before), ("after", after)):
                d = tempfile.mkdtemp()
                c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run([sys.executable, "-m", "purepg", "train", "--algo", algo, "--env", "CartPole-v1",
                                "--steps", "100000", "--seed", "0", "--quiet", "--out", os.path.join(d, "r")],
                               env=dict(os.environ, PYTHONPATH=os.path.abspath(root)), cwd=d, check=True,
                               stdout=subprocess.DEVNULL)
                c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime)
                with open(os.path.join(d, "r", "progress.csv")) as f:
                    last[name] = f.read().splitlines()[-1].split(",")[:6]      # the wall-time columns aside
        a, b = np.median(cpu["before"]), np.median(cpu["after"])
        print(f"{algo:5s} before {a:.2f} s  after {b:.2f} s  after / before {b / a:.3f} ({rounds} rounds: "
              f"{' '.join(f'{x:.2f}' for x in cpu['before'])} / {' '.join(f'{x:.2f}' for x in cpu['after'])} s; "
              f"same last row: {last['before'] == last['after']})")


if __name__ == "__main__":
    main()
