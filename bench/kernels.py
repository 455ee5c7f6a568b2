"""Speed of purepg's gradient core on one thread, side by side with its NumPy reference and PyTorch.

Run from the repository root::

    python bench/kernels.py                 # prints the machine, the versions, the table
    python bench/kernels.py --json out.json # also writes the figures

Workload: N = 2048 CartPole-sized observations (obs_dim 4, 2 actions), a categorical policy
over a 64-64 tanh MLP (P = 4610 parameters). Rows:

* ``score``  the (N, P) score matrix: Numba kernel vs the NumPy reference backend vs PyTorch per-sample
  gradients (``torch.func.vmap(grad(...))`` in float64; the per-parameter tensors, not concatenated).
  Three ways: each result dropped before the next call (purepg then reuses its memory,
  ``purepg._recycle``), each result still held during the next call (fresh pages every call), and into
  one ``out=`` buffer; then the memory traffic alone (``ndarray.fill`` of the (N, P) matrix).
* ``fvp``    the Fisher-vector product F v: purepg's JVP -> output Fisher -> VJP vs PyTorch's double
  backprop of the mean KL, done the way sb3-contrib's TRPO does it: ``grad_kl`` is built once with
  ``create_graph=True`` and each product is one more backward pass through that graph (then flattened).
* ``fvp (from scratch)`` the same PyTorch product including the forward pass and the first backward.
* ``fisher`` the explicit (P, P) Fisher, Numba vs NumPy backend (no PyTorch column).

Each figure is the median of ``--repeats`` timed calls after warm-up (JIT compilation excluded); the
candidates of one row are called in turn inside each repeat so that they see the same machine load.
Threads: OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=1 are set below before NumPy is imported, and
``torch.set_num_threads(1)``.

Adding a row is one function: write ``row_<name>(ctx, repeats) -> list[Row]`` and append it to ``ROWS``.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"   # before numpy / numba / torch are imported: every library on ONE thread

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import NamedTuple, Optional  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine as bench_machine  # noqa: E402  (bench/machine.py)
import purepg  # noqa: E402

try:
    import torch
    from torch.func import functional_call, grad, vmap
    torch.set_num_threads(1)
except ImportError:   # torch is optional: its columns print as "-"
    torch = None

N, OBS_DIM, N_ACTIONS, HIDDEN = 2048, 4, 2, (64, 64)
TARGETS = {("score", "reference"): 3.0, ("score", "torch"): 5.0, ("fvp", "torch"): 5.0}   # speed-up floors


class Row(NamedTuple):
    """One line of the table: median seconds per candidate (None where not measured)."""

    name: str
    purepg: float                   # purepg, Numba backend
    reference: Optional[float]      # purepg, NumPy reference backend
    torch: Optional[float]          # PyTorch, one thread, float64
    note: str = ""


class Context(NamedTuple):
    pol: purepg.Policy              # Numba backend
    pol_ref: purepg.Policy          # NumPy reference backend
    theta: np.ndarray               # (P,)
    obs: np.ndarray                 # (N, 4)
    act: np.ndarray                 # (N,)
    v: np.ndarray                   # (P,)
    torch: Optional[dict]           # the same policy in PyTorch, or None


# ------------------------------------------------------------------------------ timing ---------
def side_by_side(fns, repeats, warmup=2):
    """Median seconds of each callable in ``fns`` (dict), calling them in turn inside each repeat."""
    for f in fns.values():
        for _ in range(warmup):
            f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(t)) for k, t in times.items()}


# ---------------------------------------------------------------------------- set-up -----------
def make_context(seed=0):
    pol = purepg.CategoricalPolicy(OBS_DIM, N_ACTIONS, HIDDEN, "tanh")
    pol_ref = purepg.Policy(pol.net, pol.dist, pol.log_std_init, "numpy")
    rng = np.random.default_rng(seed)
    theta = pol.init(rng)
    theta[:pol.net.num_params] += 0.05 * rng.standard_normal(pol.net.num_params)   # a policy that is not uniform
    obs = rng.uniform([-2.4, -3.0, -0.21, -3.0], [2.4, 3.0, 0.21, 3.0], (N, OBS_DIM))   # CartPole ranges
    act = pol.sample(theta, obs, rng)
    v = rng.standard_normal(pol.num_params)
    return Context(pol, pol_ref, theta, obs, act, v, torch_context(pol, theta, obs, act, v))


def torch_context(pol, theta, obs, act, v):
    """nn.Sequential in float64 with purepg's theta loaded (same layout), and the tensors of the run."""
    if torch is None:
        return None
    layers = []
    for l, (d_in, d_out) in enumerate(zip(pol.net.sizes[:-1], pol.net.sizes[1:])):
        layers.append(torch.nn.Linear(d_in, d_out, dtype=torch.float64))
        if l < pol.net.num_layers - 1:
            layers.append(torch.nn.Tanh())
    seq = torch.nn.Sequential(*layers)
    torch.nn.utils.vector_to_parameters(torch.tensor(theta), seq.parameters())
    params = {k: p.detach() for k, p in seq.named_parameters()}
    return dict(seq=seq, params=params, obs=torch.tensor(obs), act=torch.tensor(act), v=torch.tensor(v))


# ------------------------------------------------------------------------------- rows -----------
def row_score(ctx, repeats):
    fns = {"purepg": lambda: ctx.pol.score(ctx.theta, ctx.obs, ctx.act),
           "reference": lambda: ctx.pol_ref.score(ctx.theta, ctx.obs, ctx.act)}
    if ctx.torch is not None:
        t = ctx.torch

        def log_prob_one(params, o, a):
            logits = functional_call(t["seq"], params, (o[None],))[0]
            return torch.log_softmax(logits, dim=-1).gather(0, a[None])[0]

        per_sample = vmap(grad(log_prob_one), in_dims=(None, 0, 0))
        fns["torch"] = lambda: per_sample(t["params"], t["obs"], t["act"])
        _check_score(ctx, per_sample)
    m = side_by_side(fns, repeats)
    # Each result kept alive during the next call: no earlier result's memory can be used again
    # (purepg._recycle), so every call maps and zeroes fresh pages (75 MB here).
    held = {}
    m_kept = side_by_side({k: (lambda k=k, f=f: held.__setitem__(k, f())) for k, f in fns.items() if k != "torch"},
                          repeats)
    held.clear()
    # The same with the (N, P) output buffer reused across calls (``score(..., out=buf)``), for both
    # backends: what an algorithm that scores every iteration does. Torch has no output argument for
    # vmap, so its column repeats the fresh-allocation time.
    shape = (ctx.obs.shape[0], ctx.pol.num_params)
    buf, buf_ref = np.empty(shape), np.empty(shape)
    m_out = side_by_side({"purepg": lambda: ctx.pol.score(ctx.theta, ctx.obs, ctx.act, out=buf),
                          "reference": lambda: ctx.pol_ref.score(ctx.theta, ctx.obs, ctx.act, out=buf_ref)}, repeats)
    # The memory traffic alone: the (N, P) float64 matrix written by ndarray.fill, into mapped memory and
    # into fresh pages (np.empty each call, the previous array kept): what the rows above cannot go under.
    fill = side_by_side({"mapped": lambda: buf.fill(0.5),
                         "fresh": lambda: held.__setitem__("fill", np.empty(shape)) or held["fill"].fill(0.5)}, repeats)
    held.clear()
    return [Row("score (N x P)", m["purepg"], m["reference"], m.get("torch"),
                "fresh N x P output each call, the previous result dropped (its memory is used again); "
                "torch: vmap(grad), per-parameter tensors"),
            Row("score, results kept", m_kept["purepg"], m_kept["reference"], m.get("torch"),
                "every call's result still held during the next: new pages each call; torch as above"),
            Row("score, out= reused", m_out["purepg"], m_out["reference"], m.get("torch"),
                "both purepg backends write into a preallocated (N, P) buffer; torch as above"),
            Row("N x P fill (bound)", fill["mapped"], None, None,
                f"ndarray.fill of the (N, P) float64 matrix into mapped memory; into fresh pages "
                f"{fill['fresh'] * 1e3:.3f} ms: the memory traffic under the score rows")]


def _torch_kl_graph(t):
    """sb3-contrib's set-up: mean KL(pi_theta || pi_old), old detached, and its gradient with a graph."""
    params = [p.clone().requires_grad_(True) for p in t["params"].values()]
    names = list(t["params"])
    logits = functional_call(t["seq"], dict(zip(names, params)), (t["obs"],))
    logp = torch.log_softmax(logits, dim=-1)
    logp_old = logp.detach()
    kl = (logp.exp() * (logp - logp_old)).sum(-1).mean()
    grad_kl = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, params, create_graph=True)])
    return params, grad_kl


def _torch_hvp(params, grad_kl, v):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad((grad_kl * v).sum(), params, retain_graph=True)])


def row_fvp(ctx, repeats):
    fns = {"purepg": lambda: ctx.pol.fvp(ctx.theta, ctx.obs, ctx.v),
           "reference": lambda: ctx.pol_ref.fvp(ctx.theta, ctx.obs, ctx.v)}
    rows = []
    if ctx.torch is not None:
        t = ctx.torch
        params, grad_kl = _torch_kl_graph(t)
        fns["torch"] = lambda: _torch_hvp(params, grad_kl, t["v"])
        fns["torch_scratch"] = lambda: _torch_hvp(*_torch_kl_graph(t), t["v"])
        np.testing.assert_allclose(fns["torch"]().numpy(), fns["purepg"](), rtol=1e-9, atol=1e-12)
    m = side_by_side(fns, repeats)
    rows.append(Row("fvp", m["purepg"], m["reference"], m.get("torch"),
                    "no kernel: one code path for both backends; torch: one double-backward through "
                    "grad_kl's graph (sb3-contrib TRPO)"))
    if "torch_scratch" in m:
        rows.append(Row("fvp (from scratch)", m["purepg"], m["reference"], m["torch_scratch"],
                        "torch: forward + grad(create_graph) + double-backward"))
    # What CG does: many products at one theta. purepg builds the operator once (forward pass cached,
    # pol.fisher_operator), as sb3-contrib builds grad_kl's graph once.
    F_op, F_ref = ctx.pol.fisher_operator(ctx.theta, ctx.obs), ctx.pol_ref.fisher_operator(ctx.theta, ctx.obs)
    m_op = side_by_side({"purepg": lambda: F_op(ctx.v), "reference": lambda: F_ref(ctx.v)}, repeats)
    rows.append(Row("fvp, operator reused", m_op["purepg"], m_op["reference"], m.get("torch"),
                    "purepg: fisher_operator built once, then products; torch: double-backward through one graph"))
    return rows


def row_fisher(ctx, repeats):
    # the NumPy reference sums N K outer products of length P (~40 s here): timed once, no warm-up needed
    m = side_by_side({"purepg": lambda: ctx.pol.fisher(ctx.theta, ctx.obs)}, max(3, repeats // 10), warmup=1)
    ref = side_by_side({"reference": lambda: ctx.pol_ref.fisher(ctx.theta, ctx.obs)}, 1, warmup=0)
    return [Row("fisher (P x P)", m["purepg"], ref["reference"], None,
                "explicit; reference: einsum of outer products, timed once")]


N_TRPO = 1024      # one TRPO update on a CartPole batch of rl-zoo's size (2 envs x 512 steps)


def _trpo_batch(ctx, pol, n=N_TRPO, seed=1):
    """The first n states of the workload, actions sampled by ``pol``, old log-probs and standardised A."""
    from purepg.algos.common import normalize_advantage
    rng = np.random.default_rng(seed)
    theta = pol.init(rng)
    theta[:pol.net.num_params] += 0.05 * rng.standard_normal(pol.net.num_params)
    obs = ctx.obs[:n]
    act = pol.sample(theta, obs, rng)
    return theta, obs, act, pol.log_prob(theta, obs, act), normalize_advantage(rng.standard_normal(n))


def _torch_trpo_step(t, obs, act, logp_old, adv, cg_iters, n_trials, delta=0.01, damping=1e-3):
    """sb3-contrib TRPO.train's policy part, functionally: surrogate and KL, their gradients (the KL's
    with a graph), ``cg_iters`` CG steps on double-backward products, the scale, ``n_trials`` line-search
    evaluations (as many as purepg made, so both do the same work). Returns the full step."""
    names = list(t["params"])
    params = [p.clone().requires_grad_(True) for p in t["params"].values()]
    logits = functional_call(t["seq"], dict(zip(names, params)), (obs,))
    logp_all = torch.log_softmax(logits, dim=-1)
    old = logp_all.detach()
    obj = (adv * torch.exp(logp_all.gather(1, act[:, None])[:, 0] - logp_old)).mean()
    kl = (old.exp() * (old - logp_all)).sum(-1).mean()
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(obj, params, retain_graph=True)])
    grad_kl = torch.cat([x.reshape(-1) for x in torch.autograd.grad(kl, params, create_graph=True)])
    hvp = lambda v: _torch_hvp(params, grad_kl, v) + damping * v   # noqa: E731
    x, r = torch.zeros_like(g), g.clone()
    p, rr = r.clone(), r @ r
    for _ in range(cg_iters):
        Ap = hvp(p)
        alpha = rr / (p @ Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = r @ r
        p, rr = r + (rr_new / rr) * p, rr_new
    step = torch.sqrt(2 * delta / (x @ hvp(x))) * x
    flat = torch.cat([q.detach().reshape(-1) for q in params])
    with torch.no_grad():
        for j in range(n_trials):
            th = flat + 0.8 ** j * step
            new = dict(zip(names, [y.view_as(q) for y, q in zip(th.split([q.numel() for q in params]), params)]))
            lp = torch.log_softmax(functional_call(t["seq"], new, (obs,)), dim=-1)
            (adv * torch.exp(lp.gather(1, act[:, None])[:, 0] - logp_old)).mean()
            (old.exp() * (old - lp)).sum(-1).mean()
    return step


def row_trpo_step(ctx, repeats):
    """One TRPO policy update (gradient, CG with 10 fvp, scale, line search) on N = 1024 states,
    64-64 network -- purepg.algos.trpo.policy_step -- against sb3-contrib's procedure in PyTorch."""
    from purepg.algos import trpo
    from purepg.algos.common import Flat
    from purepg.run.runner import Context
    theta, obs, act, logp_old, adv = _trpo_batch(ctx, ctx.pol)
    flat = Flat(obs, act, logp_old, adv, None, None)
    config = trpo.Config(cg_iters=10, cg_tol=0.0)          # exactly 10 CG iterations
    fns = {name: (lambda c=Context(pol, None, config, 0): trpo.policy_step(c, theta, flat, adv))
           for name, pol in (("purepg", ctx.pol), ("reference", ctx.pol_ref))}
    ps = fns["purepg"]()
    assert ps.cg_iterations == 10 and not ps.skipped
    if ctx.torch is not None:
        t = ctx.torch
        tt = dict(t, params={k: v.clone() for k, v in zip(t["params"], map(torch.tensor, _split(ctx, theta)))})
        args = (torch.tensor(obs), torch.tensor(act), torch.tensor(logp_old), torch.tensor(adv), 10, ps.ls_steps)
        fns["torch"] = lambda: _torch_trpo_step(tt, *args)
        # Same step to 1e-3 only: with damping 1e-3 this F + c I has condition ~3e3, and from the 6th CG
        # iteration on the two implementations' 1e-16 differences in F v grow ~100x per iteration
        # (measured: 3e-14 after 6, 5e-5 after 10) -- CG's loss of orthogonality, in both.
        np.testing.assert_allclose(fns["torch"]().numpy(), ps.step, rtol=0, atol=1e-3 * np.linalg.norm(ps.step))
    m = side_by_side(fns, max(5, repeats // 3))
    return [Row("trpo step", m["purepg"], m["reference"], m.get("torch"),
                f"N={N_TRPO}, 64-64: gradient, CG 10 fvp, {ps.ls_steps} line-search trials; torch: sb3-contrib's "
                "procedure")]


def _split(ctx, theta):
    """theta as the per-layer arrays of nn.Sequential (weight (out, in), bias (out,))."""
    out, i = [], 0
    for d_in, d_out in zip(ctx.pol.net.sizes[:-1], ctx.pol.net.sizes[1:]):
        out += [theta[i:i + d_in * d_out].reshape(d_out, d_in), theta[i + d_in * d_out:i + d_in * d_out + d_out]]
        i += d_in * d_out + d_out
    return out


def row_explicit_natural_step(ctx, repeats):
    """The explicit Fisher (P, P) of a 32-32 network (P = 1282) on N = 1024 states, then the
    natural step by Cholesky with damping (what purepg.algos.npg does each iteration)."""
    from purepg.optim import natural_step
    pol = purepg.CategoricalPolicy(OBS_DIM, N_ACTIONS, (32, 32), "tanh")
    pol_ref = purepg.Policy(pol.net, pol.dist, pol.log_std_init, "numpy")
    theta, obs, act, logp_old, adv = _trpo_batch(ctx, pol)
    g = pol.log_prob_grad(theta, obs, act, adv / adv.size)                      # (P,)
    step = lambda p: natural_step(g, p.fisher(theta, obs), 0.01, damping=1e-3)   # noqa: E731
    assert step(pol).ok
    m = side_by_side({"purepg": lambda: step(pol)}, max(3, repeats // 10), warmup=1)
    ref = side_by_side({"reference": lambda: step(pol_ref)}, 1, warmup=0)
    return [Row("fisher+cholesky", m["purepg"], ref["reference"], None,
                f"32-32 (P={pol.num_params}), N={N_TRPO}: build F, Cholesky, step; reference timed once")]


ROWS = [row_score, row_fvp, row_fisher, row_trpo_step, row_explicit_natural_step]


def _check_score(ctx, per_sample):
    """The PyTorch column computes the same matrix (a benchmark of a wrong result would be worthless)."""
    t = ctx.torch
    g = per_sample(t["params"], t["obs"][:64], t["act"][:64])
    S_torch = torch.cat([x.reshape(64, -1) for x in g.values()], dim=1).numpy()
    np.testing.assert_allclose(ctx.pol.score(ctx.theta, ctx.obs[:64], ctx.act[:64]), S_torch, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------- report -----------
def machine():
    return {**bench_machine.info(), "numba": numba.__version__, "purepg": purepg.__version__,
            "torch": torch.__version__ if torch is not None else None, "threads": 1,
            "command": bench_machine.command()}


def ratios(row):
    """Speed-ups of purepg over each other column (other time / purepg time)."""
    return {k: getattr(row, k) / row.purepg for k in ("reference", "torch") if getattr(row, k) is not None}


def print_report(info, rows, file=sys.stdout):
    print("purepg gradient-core benchmark", file=file)
    for k, v in info.items():
        print(f"  {k:14s} {v}", file=file)
    print(f"  {'workload':14s} N={N}, obs_dim={OBS_DIM}, {N_ACTIONS} actions, hidden={HIDDEN} tanh", file=file)
    ms = lambda x: f"{x * 1e3:10.3f}" if x is not None else f"{'-':>10s}"
    xs = lambda x: f"{x:7.1f}x" if x is not None else f"{'-':>8s}"
    print(f"\n{'row':20s} {'purepg ms':>10s} {'numpy ms':>10s} {'torch ms':>10s} {'vs numpy':>8s} {'vs torch':>8s}  note",
          file=file)
    for r in rows:
        q = ratios(r)
        print(f"{r.name:20s} {ms(r.purepg)} {ms(r.reference)} {ms(r.torch)} {xs(q.get('reference'))} "
              f"{xs(q.get('torch'))}  {r.note}", file=file)
    print("\ntargets:", file=file)
    for (name, col), floor in TARGETS.items():
        for r in (r for r in rows if r.name.split(" ")[0].rstrip(",") == name):   # every variant of the row
            got = ratios(r).get(col)
            status = "n/a (column not measured)" if got is None else ("met" if got >= floor else "MISSED")
            print(f"  {r.name} vs {col}: >= {floor:.0f}x -> {'' if got is None else f'{got:.1f}x '}{status}",
                  file=file)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per candidate (median reported)")
    ap.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = ap.parse_args(argv)
    ctx = make_context()
    rows = [r for row_fn in ROWS for r in row_fn(ctx, args.repeats)]
    info = machine()
    info["num_params"] = ctx.pol.num_params
    print_report(info, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "workload": {"N": N, "obs_dim": OBS_DIM, "n_actions": N_ACTIONS,
                                                     "hidden": list(HIDDEN), "activation": "tanh"},
                       "rows": [dict(r._asdict(), speedup=ratios(r)) for r in rows]}, f, indent=2)


if __name__ == "__main__":
    main()
