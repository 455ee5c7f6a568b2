"""The floor of a CartPole run: its matrix products and its environment steps, and purepg's time over it.

Run from the repository root (one thread)::

    python bench/floor.py                                   # PPO and TRPO, rl-zoo CartPole-v1, 1e5 steps
    python bench/floor.py --sb3-ppo 14.5 --sb3-trpo 16.0    # also the floor as a fraction of SB3's times

The floor counts two things and nothing else:

* **the products**: every matrix product of the networks' passes (forward, backward, and for TRPO the
  Jacobian-vector products of conjugate gradient), each timed alone as ``numpy.matmul`` into a
  preallocated array with the operand layout purepg uses -- the machine's GEMM rate at that shape;
* **the environment steps**: E ``CartPole-v1`` copies made by ``gymnasium.make`` (its wrappers
  included), each stepped and reset when its episode ends, the actions fixed: the copies' own work,
  without a vector env's bookkeeping (purepg's rollout steps the copies of a ``SyncVectorEnv`` itself,
  ``purepg.env.rollout.step_copies``).

Per minibatch step of PPO (N = 256, the 4-64-64-2 policy and 4-64-64-1 value networks): three forward
and five backward products per network. Per TRPO update (``trpo.Config()``): the forward pass on 1024
states, 16 Jacobian-vector and vector-Jacobian product pairs (15 CG iterations and the gradient), 20
critic passes over 2 x 512 states, 4 more forward passes on 1024 (values for GAE, a line-search trial).
Per rollout step, the acting forward pass on E rows. Then floor = counts x times, for ``--steps``
environment steps (1e5: PPO 7 800 minibatch steps and 12 500 eight-env steps; TRPO 98 updates and
50 000 two-env steps). Everything else -- tanh, bias adds, sampling, GAE, Adam, the objectives,
logging -- is above the floor, and so is any Python around the calls.

Then purepg trains the same configuration (``purepg.run.runner.train``, seed 0, from nothing, env and
run directory included) and the script prints purepg / floor. The machine lines name the SIMD level,
NumPy's dispatch, Numba's target and the OpenBLAS core in force (``bench/machine.py``).
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter  # noqa: E402
import time  # noqa: E402

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import machine  # noqa: E402  (bench/machine.py)

H = 64                                       # hidden width of both networks (SB3's MlpPolicy)
CG_PRODUCTS, CRITIC_PASSES, EXTRA_FORWARDS = 16, 40, 4     # per TRPO update; the first two set from trpo.Config()


# The clock of best_of: wall time, or with PUREPG_BENCH_CLOCK=cpu this process's CPU time, which leaves
# out the time other processes hold the core (for figures taken side by side on a shared machine).
CLOCK = time.process_time if os.environ.get("PUREPG_BENCH_CLOCK") == "cpu" else time.perf_counter


def best_of(fn, repeats, inner):
    """Median over ``repeats`` blocks of ``inner`` calls of ``fn``: seconds per call (:data:`CLOCK`)."""
    for _ in range(inner):
        fn()
    times = []
    for _ in range(repeats):
        t = CLOCK()
        for _ in range(inner):
            fn()
        times.append((CLOCK() - t) / inner)
    return float(np.median(times))


def pass_products(N, dL, backward=True, jvp=False):
    """The products of one pass of a 4-64-64-dL network on N rows, as ``(a, b, transpose_a)``.

    ``a @ b`` with ``a`` of shape ``a`` (or the transpose of an array of that shape) and ``b`` as given.
    Forward (eq. (1) of purepg.model.nn): ``h W^T`` per layer. Backward: ``dz^T h`` (eq. (4)) per layer and
    ``dz W`` (eq. (6)) below the head. JVP: ``h dW^T`` per layer and ``dh W^T`` above the first.
    """
    sizes = (4, H, H, dL)
    layers = list(zip(sizes[:-1], sizes[1:]))
    prods = [((N, i), (i, o), False) for i, o in layers]                       # z_l = h_{l-1} W_l^T
    if backward:
        prods += [((N, o), (N, i), True) for i, o in layers]                   # dW_l = dz_l^T h_{l-1}
        prods += [((N, o), (o, i), False) for i, o in layers[1:]]              # dh_{l-1} = dz_l W_l
    if jvp:
        prods += [((N, i), (i, o), False) for i, o in layers]                  # h_{l-1} dW_l^T
        prods += [((N, i), (i, o), False) for i, o in layers[1:]]              # dh_{l-1} W_l^T
    return prods


def products_seconds(prods, repeats, rng):
    """Sum over ``prods`` of the time of each product alone (``np.matmul(..., out=)``), seconds.

    Each distinct product (shapes and layout) is timed once and counted as often as it occurs.
    """
    total = 0.0
    for (a_shape, b_shape, trans), count in Counter(prods).items():
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        a = a.T if trans else a
        out = np.empty((a.shape[0], b.shape[1]))
        inner = max(20, int(2e4 // (a.shape[0] * a.shape[1] * b.shape[1] / 1e3 + 1)))
        total += count * best_of(lambda: np.matmul(a, b, out=out), repeats, inner)
    return total


def ppo_step_products(E):
    """The products of one PPO minibatch step (both networks) and of one E-env acting pass."""
    return pass_products(256, 2) + pass_products(256, 1), pass_products(E, 2, backward=False)


def trpo_update_products(E):
    """The products of one TRPO update (module docstring) and of one E-env acting pass."""
    prods = pass_products(1024, 2, backward=False)
    prods += CG_PRODUCTS * pass_products(1024, 2, jvp=True)[3:]                  # JVP + VJP, forward cached
    prods += CRITIC_PASSES * pass_products(512, 1)
    prods += EXTRA_FORWARDS * pass_products(1024, 1, backward=False)
    return prods, pass_products(E, 2, backward=False)


def env_step_seconds(E, repeats):
    """One step of E CartPole-v1 copies (``gymnasium.make``'s, wrappers included), each reset when its
    episode ends, fixed actions, seconds: the copies' own work, without a vector env's bookkeeping."""
    copies = [gymnasium.make("CartPole-v1") for _ in range(E)]
    for e, env in enumerate(copies):
        env.reset(seed=e)
    a = np.zeros(E, dtype=np.int64)

    def step():
        for e, env in enumerate(copies):
            _, _, terminated, truncated, _ = env.step(a[e])
            if terminated or truncated:
                env.reset()

    return best_of(step, repeats, 500)


def purepg_seconds(name, steps):
    """Wall time of ``purepg.run.runner.train`` of ``name``'s default config for ``steps``, seed 0."""
    from purepg.algos import ppo, trpo
    from purepg.run import runner
    from purepg.run import ahead
    module = {"ppo": ppo, "trpo": trpo}[name]
    ahead.compile_now(module, module.Config(), "CartPole-v1")    # untimed: what a first `purepg train` caches
    t = CLOCK()
    runner.train(module, "CartPole-v1", module.Config(), seed=0, out_dir=tempfile.mkdtemp(prefix="purepg-floor-"),
                 total_steps=steps, force=True, verbose=False)
    return CLOCK() - t


def floor_rows(steps, repeats, rng):
    """Per algorithm: (name, update s, env s, acting s, how the update count was made), from the configs."""
    from purepg.algos import ppo, trpo
    pc, tc = ppo.Config(), trpo.Config()
    global CG_PRODUCTS, CRITIC_PASSES
    CG_PRODUCTS = tc.cg_iters + 1                                                # CG and the gradient
    CRITIC_PASSES = tc.vf_epochs * (tc.num_envs * tc.num_steps // tc.vf_minibatch_size)
    rows = []
    for name, c, per_iter, unit, build in (
            ("PPO", pc, pc.epochs * (pc.num_envs * pc.num_steps // pc.minibatch_size), "minibatch steps",
             ppo_step_products),
            ("TRPO", tc, 1, "updates", trpo_update_products)):
        E = c.num_envs
        iters = steps // (E * c.num_steps)
        updates, env_steps = iters * per_iter, iters * c.num_steps
        upd_prods, act_prods = build(E)
        upd, act = products_seconds(upd_prods, repeats, rng), products_seconds(act_prods, repeats, rng)
        env = env_step_seconds(E, repeats)
        rows.append((name, updates * upd, env_steps * env, env_steps * act,
                     f"{updates} {unit} x {upd * 1e6:.0f} us of products + {env_steps} {E}-env steps x "
                     f"({env * 1e6:.0f} us env + {act * 1e6:.1f} us acting products)"))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="timed blocks per figure (median reported)")
    p.add_argument("--steps", type=int, default=100_000, help="environment steps of the run [1e5]")
    p.add_argument("--no-purepg", action="store_true", help="skip purepg's own trainings")
    p.add_argument("--sb3-ppo", type=float, default=None, help="SB3 PPO wall seconds per run, for the ratio")
    p.add_argument("--sb3-trpo", type=float, default=None, help="sb3-contrib TRPO wall seconds per run")
    args = p.parse_args(argv)
    print(f"machine: {machine.summary()}\ncommand: python {' '.join(sys.argv)}"
          f"{' (clock: CPU time of this process)' if CLOCK is time.process_time else ''}\n")
    rng = np.random.default_rng(0)
    A, B, C = rng.standard_normal((256, H)), rng.standard_normal((H, H)), np.empty((256, H))
    mm = best_of(lambda: np.matmul(A, B, out=C), args.repeats, 500)
    print(f"one 256 x {H} x {H} float64 product: {mm * 1e6:.1f} us, {2 * 256 * H * H / mm / 1e9:.0f} GFLOP/s\n")
    sb3 = {"PPO": args.sb3_ppo, "TRPO": args.sb3_trpo}
    print(f"{'algo':5s} {'products s':>10s} {'env s':>7s} {'floor s':>8s} {'purepg s':>9s} {'/floor':>7s} "
          f"{'floor/SB3':>9s}  from")
    for name, upd, env, act, how in floor_rows(args.steps, args.repeats, rng):
        total = upd + env + act
        pg = float("nan") if args.no_purepg else purepg_seconds(name.lower(), args.steps)
        ratio = f"{total / sb3[name]:9.3f}" if sb3[name] else f"{'-':>9s}"
        print(f"{name:5s} {upd + act:10.2f} {env:7.2f} {total:8.2f} {pg:9.2f} {pg / total:7.2f} {ratio}  {how}",
              flush=True)


if __name__ == "__main__":
    main()
