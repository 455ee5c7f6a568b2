"""One PPO minibatch step, one TRPO update and their parts, timed alone: where the updates' time goes.

Run from the repository root (one thread)::

    python bench/update_step.py

The step is rl-zoo's CartPole-v1 PPO (``ppo.Config()``): N = 256 samples, the 4-64-64-2 policy and
4-64-64-1 value networks, ``ppo.minibatch`` + ``ppo.loss_and_grad_unchecked`` + ``ppo.clip_and_step`` as
``ppo.run`` calls them (validated once, then ``check=False``; the networks' passes into the workspaces
``ppo.workspaces`` keeps, where the checkout has them). The parts: one network's forward pass (fresh
arrays, and into a workspace) and backward pass, the categorical log-prob and gradient, the clip terms,
and ``tanh`` on one 256 x 64 layer (NumPy's and, where the checkout has it, purepg's vectorised kernel). The TRPO update is
``trpo.update`` (``trpo.Config()``) on one 2 x 512 CartPole-v1 batch, next to one forward pass of the
policy network on its 1024 states. Each figure is the median of repeated blocks of calls, in
microseconds; ``PUREPG_BENCH_CLOCK=cpu`` times with this process's CPU time instead of wall time (on a
shared machine). It runs against any checkout with these functions, so a figure before and after a
change comes from the same script.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy is imported

import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import machine  # noqa: E402  (bench/machine.py)
from floor import best_of  # noqa: E402  (bench/floor.py)

from purepg.algos import ppo, trpo  # noqa: E402
from purepg.algos.common import Flat  # noqa: E402
from purepg.env import envs, rollout  # noqa: E402
from purepg.model.policy import CategoricalPolicy  # noqa: E402
from purepg.model.value import ValueFunction  # noqa: E402
from purepg.run.runner import Context  # noqa: E402

try:
    from purepg.kernels import clip_terms  # noqa: E402  (the PPO clip kernel's wrapper)
except ImportError:                        # a checkout from before the kernels package
    from purepg.pg.surrogates import _clip_terms as clip_terms  # noqa: E402


def median_us(fn, repeats=15, inner=300):
    """``floor.best_of`` in microseconds: the median over ``repeats`` blocks of ``inner`` calls."""
    return 1e6 * best_of(fn, repeats, inner)


def main():
    clock = " (clock: CPU time of this process)" if os.environ.get("PUREPG_BENCH_CLOCK") == "cpu" else ""
    print(f"machine: {machine.summary()}\ncommand: python {' '.join(sys.argv)}{clock}\n")
    cfg, rng, N = ppo.Config(), np.random.default_rng(0), 256
    pol, vf = CategoricalPolicy(4, 2, cfg.hidden, cfg.activation), ValueFunction(4, cfg.vf_hidden, cfg.activation)
    ctx = Context(pol, vf, cfg, 100_000)
    state = ppo.init(ctx, rng)
    obs, act = rng.standard_normal((N, 4)), rng.integers(0, 2, N)
    data = Flat(obs, act, pol.log_prob(state["theta"], obs, act), rng.standard_normal(N), rng.standard_normal(N),
                rng.standard_normal(N))
    joint, P = ppo.join(state), state["theta"].size
    coefs = {"clip_range": 0.2}
    perm = rng.permutation(N)
    kw = {"ws": ppo.workspaces(ctx, N)} if hasattr(ppo, "workspaces") else {}   # the loop's kept workspaces

    def step():
        mb = ppo.minibatch(data, perm, cfg.normalize_advantage)
        s = ppo.loss_and_grad_unchecked(ctx, joint.x[:P], joint.x[P:], mb, state["theta"], coefs, **kw)
        return ppo.clip_and_step(joint, s, 1e-4, cfg)

    th, ws = state["theta"][:pol.net.num_params], pol.net.workspace(N)
    out, cache = pol.net.forward(th, obs, check=False)
    dout = rng.standard_normal(out.shape)
    r, A = np.exp(0.1 * rng.standard_normal(N)), rng.standard_normal(N)
    rows = [("minibatch step (both networks, loss, clipping, Adam)", step),
            ("policy network forward", lambda: pol.net.forward(th, obs, check=False)),
            ("policy network forward_into (workspace)", lambda: pol.net.forward_into(ws, th, obs)),
            ("policy network backward", lambda: pol.net.backward(th, dout, cache, check=False)),
            ("categorical log-prob and gradient", lambda: pol.dist.log_prob_and_grad(out, th[:0], act)),
            ("clip terms", lambda: clip_terms(r, A, 0.2))]
    z, zo = rng.standard_normal((N, 64)), np.empty((N, 64))
    rows.append(("np.tanh, 256 x 64", lambda: np.tanh(z, out=zo)))
    try:
        from purepg.kernels import elementwise
        rows.append(("kernels.elementwise.tanh, 256 x 64", lambda: elementwise.tanh(z, out=zo)))
    except ImportError:                                          # a checkout before the kernel
        pass
    for name, fn in rows:
        print(f"{name:55s} {median_us(fn):8.1f} us")
    tcfg = trpo.Config()
    tctx = Context(pol, vf, tcfg, 100_000)
    tstate = trpo.init(tctx, rng)
    vec = envs.make_vec_env("CartPole-v1", tcfg.num_envs, seed=0)
    batch, _ = rollout.collect(vec, pol, tstate["theta"], tcfg.num_steps, rng, rollout.start(vec))
    obs1024 = batch.obs.reshape(-1, 4)
    th1 = tstate["theta"][:pol.net.num_params]
    print(f"{'policy network forward, N = 1024':55s} "
          f"{median_us(lambda: pol.net.forward(th1, obs1024, check=False)):8.1f} us")
    upd = median_us(lambda: trpo.update(tctx, tstate, batch, rng, 0.1), repeats=7, inner=5)
    print(f"{'TRPO update (CG, line search, critic fit)':55s} {upd / 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
