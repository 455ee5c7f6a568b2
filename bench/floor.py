"""The float64 floor of a CartPole run: the time of the work no implementation of the same algorithm avoids.

Run from the repository root (one thread)::

    python bench/floor.py                       # PPO and TRPO, rl-zoo CartPole-v1 hyperparameters
    python bench/floor.py --sb3-ppo 14.5 --sb3-trpo 16.0   # also the floor as a fraction of SB3's times

What is timed, as bare NumPy calls into preallocated arrays (no purepg code, no Python logic around
them), each the median of repeated blocks:

* one **PPO minibatch step** (N = 256, the 4-64-64-2 policy and 4-64-64-1 value networks): both
  forward passes (three products, bias adds, two ``tanh`` and phi' = 1 - h^2 each) and both backward
  passes (the weight and input products, the products with phi', the bias sums) -- the arithmetic of
  the gradient of any loss of the two networks' outputs;
* one **TRPO update** (N = 1024 policy states, 2 x 512 critic states): the forward pass at theta, 16
  JVP + VJP pairs (15 CG iterations and the gradient), 20 x 2 critic forward + backward passes, and
  4 forward passes for GAE values and one line-search trial;
* one **rollout step**: gymnasium's ``SyncVectorEnv`` of E ``CartPole-v1`` copies (as Stable-Baselines3
  steps them, with ``gymnasium.make``'s wrappers) and the smallest forward pass of E rows.

Then floor = steps x step times (PPO: 7 800 minibatch steps and 12 500 eight-env steps for 1e5
environment steps; TRPO: 98 updates and 50 000 two-env steps). Everything else an implementation
does -- sampling, GAE, Adam, the clipped objective, logging -- comes on top. Matrix products use
whatever OpenBLAS kernel is in force (``OPENBLAS_CORETYPE``), which the machine line reports.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402  (bench/machine.py)

H = 64                                       # hidden width of both networks (SB3's MlpPolicy)
PPO_STEPS, PPO_ENV_STEPS, PPO_E = 7_800, 12_500, 8        # 390 iterations x 20 epochs; 1e5 / 8 envs
TRPO_UPDATES, TRPO_ENV_STEPS, TRPO_E = 98, 50_000, 2      # 1e5 / 1024; 1e5 / 2 envs
CG_PRODUCTS, CRITIC_STEPS, EXTRA_FORWARDS = 16, 40, 4     # per TRPO update (module docstring)


class Net:
    """Weights (d_out, d_in) and biases of a d0-64-64-dL tanh MLP, and (N, .) buffers for its passes."""

    def __init__(self, rng, d0, dL, N):
        sizes = (d0, H, H, dL)
        self.W = [rng.standard_normal((o, i)) / np.sqrt(i) for i, o in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(o) for o in sizes[1:]]
        self.x = rng.standard_normal((N, d0))
        self.h = [np.empty((N, o)) for o in sizes[1:]]           # h_1, h_2, out
        self.dz = [np.empty((N, o)) for o in sizes[1:]]          # dz_1, dz_2 (dz_3 = dout)
        self.jz = [np.empty((N, o)) for o in sizes[1:]]
        self.t = [np.empty((N, o)) for o in sizes[1:]]
        self.p = [np.empty((N, o)) for o in sizes[1:-1]]        # phi'(z_l) = 1 - h_l^2, set by forward
        self.dW = [np.empty_like(W) for W in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        self.dout = rng.standard_normal((N, dL)) / N
        self.v = [rng.standard_normal(W.shape) for W in self.W]

    def forward(self):
        h = self.x
        for l in range(3):
            h = np.matmul(h, self.W[l].T, out=self.h[l])
            h += self.b[l]
            if l < 2:
                np.tanh(h, out=h)
                np.multiply(h, h, out=self.p[l])
                np.subtract(1.0, self.p[l], out=self.p[l])
        return h

    def backward(self, dout):
        dz = dout
        for l in (2, 1, 0):
            h_in = self.x if l == 0 else self.h[l - 1]
            np.matmul(dz.T, h_in, out=self.dW[l])
            dz.sum(axis=0, out=self.db[l])
            if l > 0:
                dh = np.matmul(dz, self.W[l], out=self.dz[l - 1])
                dh *= self.p[l - 1]
                dz = dh

    def jvp(self):
        dh = None
        for l in range(3):
            h_in = self.x if l == 0 else self.h[l - 1]
            dz = np.matmul(h_in, self.v[l].T, out=self.jz[l])
            if dh is not None:
                dz += np.matmul(dh, self.W[l].T, out=self.t[l])
            if l < 2:
                dz *= self.p[l]
                dh = dz
        return dz


def best_of(fn, repeats, inner):
    """Median over ``repeats`` blocks of ``inner`` calls of ``fn``: seconds per call."""
    for _ in range(inner):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return float(np.median(times))


def ppo_step_seconds(rng, repeats):
    pi, vf = Net(rng, 4, 2, 256), Net(rng, 4, 1, 256)

    def step():
        pi.forward()
        vf.forward()
        pi.backward(pi.dout)
        vf.backward(vf.dout)
    return best_of(step, repeats, 200)


def trpo_update_seconds(rng, repeats):
    pi, vf, big = Net(rng, 4, 2, 1024), Net(rng, 4, 1, 512), Net(rng, 4, 1, 1024)

    def update():
        pi.forward()
        for _ in range(CG_PRODUCTS):
            pi.backward(pi.jvp())
        for _ in range(CRITIC_STEPS):
            vf.forward()
            vf.backward(vf.dout)
        for _ in range(EXTRA_FORWARDS):
            big.forward()
    return best_of(update, repeats, 5)


def rollout_step_seconds(rng, E, repeats):
    env = gymnasium.make_vec("CartPole-v1", num_envs=E, vectorization_mode="sync")
    env.reset(seed=0)
    actor = Net(rng, 4, 2, E)
    a = np.zeros(E, dtype=np.int64)

    def step():
        actor.x[:] = env.step(a)[0]
        actor.forward()
    return best_of(step, repeats, 500)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=15, help="timed blocks per figure (median reported)")
    p.add_argument("--sb3-ppo", type=float, default=None, help="SB3 PPO wall seconds per run, for the ratio")
    p.add_argument("--sb3-trpo", type=float, default=None, help="sb3-contrib TRPO wall seconds per run")
    args = p.parse_args(argv)
    print(f"machine: {machine.summary()}\ncommand: python {' '.join(sys.argv)}\n")
    rng = np.random.default_rng(0)
    A, B, C = rng.standard_normal((256, H)), rng.standard_normal((H, H)), np.empty((256, H))
    mm = best_of(lambda: np.matmul(A, B, out=C), args.repeats, 500)
    print(f"one 256 x {H} x {H} float64 product: {mm * 1e6:.1f} us, {2 * 256 * H * H / mm / 1e9:.0f} GFLOP/s\n")
    step, upd = ppo_step_seconds(rng, args.repeats), trpo_update_seconds(rng, args.repeats)
    env8, env2 = rollout_step_seconds(rng, PPO_E, args.repeats), rollout_step_seconds(rng, TRPO_E, args.repeats)
    rows = [("PPO", PPO_STEPS * step, PPO_ENV_STEPS * env8, args.sb3_ppo,
             f"{PPO_STEPS} minibatch steps x {step * 1e6:.0f} us + {PPO_ENV_STEPS} {PPO_E}-env steps x {env8 * 1e6:.0f} us"),
            ("TRPO", TRPO_UPDATES * upd, TRPO_ENV_STEPS * env2, args.sb3_trpo,
             f"{TRPO_UPDATES} updates x {upd * 1e3:.1f} ms + {TRPO_ENV_STEPS} {TRPO_E}-env steps x {env2 * 1e6:.0f} us")]
    print(f"{'algo':5s} {'updates s':>9s} {'rollout s':>9s} {'floor s':>8s} {'x SB3':>6s}  from")
    for name, u, r, sb3, how in rows:
        ratio = f"{(u + r) / sb3:6.3f}" if sb3 else f"{'-':>6s}"
        print(f"{name:5s} {u:9.2f} {r:9.2f} {u + r:8.2f} {ratio}  {how}")


if __name__ == "__main__":
    main()
