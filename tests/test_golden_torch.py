"""The golden file, checked by PyTorch autograd alone (skipped where torch is not installed).

Only the file is shared with purepg: the network is an ``nn.Sequential`` of the stored sizes, theta
enters it in ``parameters()`` order (``vector_to_parameters``, and the same split for
``functional_call``), and every derivative comes from autograd. Both sides run float64 and differ by
summation order only (~1e-14), so 1e-9 leaves a wide margin while any layout or formula slip fails;
CG and the natural step amplify rounding by at most cond(F + cI) ~ 200 per step, still far below it.
This file is the long form of the README's "How to verify another implementation".
"""
import pathlib
import re

import numpy as np
import pytest

from purepg.verify import golden

torch = pytest.importorskip("torch")
from torch.distributions import Categorical, Normal, kl_divergence  # noqa: E402
from torch.func import functional_call, grad, hessian, vmap  # noqa: E402

TOL = dict(rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def z(tmp_path_factory):
    path = tmp_path_factory.mktemp("golden") / "vectors.npz"
    golden.write_golden(path)
    with np.load(path) as f:
        return {k: torch.tensor(f[k]) if f[k].dtype.kind in "fib" else f[k] for k in f.files}


class Policy:
    """An ``nn.Sequential`` of the stored sizes and a distribution head, on a flat theta tensor."""

    def __init__(self, z, p):
        sizes = z[f"{p}/sizes"].tolist()
        layers = []
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(d_in, d_out, dtype=torch.float64), torch.nn.Tanh()]
        self.seq = torch.nn.Sequential(*layers[:-1])
        self.discrete = str(z[f"{p}/distribution"]) == "categorical"

    def params(self, theta):
        """theta -> {name: tensor} in parameters() order (weights row-major, then bias), + log_std."""
        out, i = {}, 0
        for name, q in self.seq.named_parameters():
            out[name], i = theta[i:i + q.numel()].view_as(q), i + q.numel()
        return out, theta[i:]

    def dist(self, theta, obs):
        net, log_std = self.params(theta)
        y = functional_call(self.seq, net, (obs,))
        return Categorical(logits=y) if self.discrete else Normal(y, log_std.exp())

    def log_prob(self, theta, obs, act):
        lp = self.dist(theta, obs).log_prob(act)
        return lp if self.discrete else lp.sum(-1)

    def entropy(self, theta, obs):
        H = self.dist(theta, obs).entropy()
        return H if self.discrete else H.sum(-1)

    def kl(self, theta_old, theta_new, obs):
        kl = kl_divergence(self.dist(theta_old, obs), self.dist(theta_new, obs))
        return (kl if self.discrete else kl.sum(-1)).mean()


def check(actual, expected):
    np.testing.assert_allclose(actual.detach().numpy(), np.asarray(expected), **TOL)


@pytest.fixture(params=["cat", "gauss"])
def case(z, request):
    p = request.param
    return Policy(z, p), {k.split("/", 1)[1]: v for k, v in z.items() if k.startswith(f"{p}/")}


def test_theta_layout_is_vector_to_parameters(case, z):
    pol, d = case
    theta = d["theta"]
    n_net = sum(q.numel() for q in pol.seq.parameters())
    torch.nn.utils.vector_to_parameters(theta[:n_net], pol.seq.parameters())
    check(pol.seq(d["obs"]), functional_call(pol.seq, pol.params(theta)[0], (d["obs"],)))
    assert n_net + (0 if pol.discrete else 2) == int(d["num_params"])


def test_log_probs_entropy_and_score(case):
    pol, d = case
    th, obs, act = d["theta"], d["obs"], d["act"]
    check(pol.log_prob(th, obs, act), d["logp_old"])
    check(pol.log_prob(d["theta_new"], obs, act), d["logp_new"])
    check(pol.entropy(th, obs), d["entropy"])
    check(grad(lambda t: pol.entropy(t, obs).mean())(th), d["entropy_grad"])
    one = lambda t, o, a: pol.log_prob(t, o[None], a[None])[0]  # noqa: E731
    check(vmap(grad(one), in_dims=(None, 0, 0))(th, obs, act), d["score"])     # (N, P) per-sample


def test_kl_gradient_fisher_and_fvp(case):
    pol, d = case
    th, obs = d["theta"], d["obs"]
    check(pol.kl(th, d["theta_new"], obs), d["kl"])
    check(grad(lambda t: pol.kl(th, t, obs))(d["theta_new"]), d["kl_grad"])
    # FVP by double backprop: gradient of the mean KL at theta (old side fixed), dot v, gradient again
    t = th.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pol.kl(th, t, obs), t, create_graph=True)
    (Fv,) = torch.autograd.grad(g @ d["v"], t)
    check(Fv, d["fvp"])
    check(hessian(lambda t: pol.kl(th, t, obs))(th), d["fisher"])


def test_cg_and_natural_step(case, z):
    pol, d = case
    th, obs = d["theta"], d["obs"]
    c, eps = float(z["damping"]), float(z["natural_eps"])
    r_old = lambda t: pol.log_prob(t, obs, d["act"]) - d["logp_old"]  # noqa: E731
    g = grad(lambda t: (r_old(t).exp() * d["adv"]).mean())(th)      # surrogate gradient at theta
    check(g, d["pg"])

    def fvp(v):                                                       # (F + c I) v, double backprop
        t = th.clone().requires_grad_(True)
        (gk,) = torch.autograd.grad(pol.kl(th, t, obs), t, create_graph=True)
        return torch.autograd.grad(gk @ v, t)[0] + c * v

    x, r = torch.zeros_like(g), g.clone()                             # CG, x_0 = 0, no early stop
    p, rr = r.clone(), r @ r
    for _ in range(int(z["cg_iters"])):
        Ap = fvp(p)
        alpha = rr / (p @ Ap)
        x, r = x + alpha * p, r - alpha * Ap
        p, rr = r + (r @ r) / rr * p, r @ r
    check(x, d["cg_x"])
    check(torch.sqrt(2 * eps / (x @ fvp(x))) * x, d["natural_step"])


def test_ppo_objectives_and_gradients(case, z):
    pol, d = case
    obs, act, A = d["obs"], d["act"], d["adv"]
    eps, beta = float(z["clip_eps"]), float(z["beta"])
    ratio = lambda t: (pol.log_prob(t, obs, act) - d["logp_old"]).exp()  # noqa: E731
    clip = lambda t: torch.min(ratio(t) * A, ratio(t).clamp(1 - eps, 1 + eps) * A).mean()  # noqa: E731
    pen = lambda t: (ratio(t) * A).mean() - beta * pol.kl(d["theta"], t, obs)  # noqa: E731
    th1 = d["theta_new"]
    check(clip(th1), d["ppo_clip"])
    check(grad(clip)(th1), d["ppo_clip_grad"])
    check(((ratio(th1) - 1).abs() > eps).double().mean(), d["ppo_clip_fraction"])
    check(pen(th1), d["ppo_kl_penalty"])
    check(grad(pen)(th1), d["ppo_kl_penalty_grad"])


def test_gae(z):
    rew, v, v_next = z["batch/rew"], z["batch/v"], z["batch/v_next"]
    term, trunc = z["batch/terminated"].double(), z["batch/truncated"].double()
    gamma, lam = float(z["batch/gamma"]), float(z["batch/lam"])
    adv, a = torch.zeros_like(rew), torch.zeros(rew.shape[1], dtype=torch.float64)
    for t in reversed(range(rew.shape[0])):
        delta = rew[t] + gamma * (1 - term[t]) * v_next[t] - v[t]
        a = delta + gamma * lam * (1 - torch.maximum(term[t], trunc[t])) * a
        adv[t] = a
    check(adv, z["gae/adv"])
    check(adv + v, z["gae/ret"])


def test_readme_verify_snippet_runs(tmp_path, monkeypatch):
    doc = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    (code,) = [c for c in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "torch.func" in c]
    monkeypatch.chdir(tmp_path)
    golden.write_golden("vectors.npz")
    exec(compile(code, "README.md", "exec"), {})
    # and the snippet can fail: a wrong expected value raises
    with pytest.raises(AssertionError):
        exec(compile(code.replace('z["cat/score"]', 'z["cat/score"] * 1.000001'), "README.md", "exec"), {})
