"""Optional cross-check against PyTorch autograd (skipped where torch is not installed).

The parameter layout is PyTorch's own: theta goes into ``nn.Sequential`` through
``torch.nn.utils.vector_to_parameters`` and gradients come back in ``parameters()`` order, so a layout
mismatch fails every comparison. Log-probs, the score matrix (``torch.func``: vmap of grad), the KL
gradient and the Fisher-vector product (double backprop of the mean KL, as TRPO implementations do)
must agree with purepg to 1e-9: both sides are float64 and differ only in summation order, ~1e-14.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import purepg
from helpers import strategies as S

torch = pytest.importorskip("torch")
from torch.distributions import Categorical, Normal, kl_divergence  # noqa: E402
from torch.func import functional_call, grad, vmap  # noqa: E402

TOL = dict(rtol=1e-9, atol=1e-9)


def sequential(sizes, activation):
    layers = []
    for l, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(d_in, d_out, dtype=torch.float64))
        if l < len(sizes) - 2:
            layers.append(torch.nn.Tanh() if activation == "tanh" else torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class TorchPolicy:
    """The same policy in PyTorch, its parameters a dict in ``parameters()`` order (+ ``log_std``)."""

    def __init__(self, pol, theta):
        self.pol, self.seq = pol, sequential(pol.net.sizes, pol.net.activation)
        Pn = pol.net.num_params
        torch.nn.utils.vector_to_parameters(torch.tensor(theta[:Pn]), self.seq.parameters())
        self.params = {k: v.detach().clone() for k, v in self.seq.named_parameters()}
        if not pol.discrete:
            self.params["log_std"] = torch.tensor(theta[Pn:])

    def dist(self, params, obs):
        out = functional_call(self.seq, {k: v for k, v in params.items() if k != "log_std"}, (obs,))
        return Categorical(logits=out) if self.pol.discrete else Normal(out, params["log_std"].exp())

    def log_prob(self, params, obs, act):
        lp = self.dist(params, obs).log_prob(act)
        return lp if self.pol.discrete else lp.sum(-1)

    def kl(self, params_old, params, obs):
        kl = kl_divergence(self.dist(params_old, obs), self.dist(params, obs))
        return (kl if self.pol.discrete else kl.sum(-1)).mean()

    @staticmethod
    def flat(tensors, batch=None):
        rows = [t.reshape(batch, -1) if batch is not None else t.reshape(-1) for t in tensors]
        return torch.cat(rows, dim=-1).detach().numpy()


def as_torch(case):
    tp = TorchPolicy(case.pol, case.theta)
    obs = torch.tensor(case.obs)
    act = torch.tensor(case.act)
    return tp, obs, act


@settings(max_examples=10)
@given(S.policy_cases())
def test_log_prob_and_score_match_autograd(case):
    tp, obs, act = as_torch(case)
    np.testing.assert_allclose(case.pol.log_prob(case.theta, case.obs, case.act),
                               tp.log_prob(tp.params, obs, act).detach().numpy(), **TOL)
    one = lambda p, o, a: tp.log_prob(p, o[None], a[None])[0]
    g = vmap(grad(one), in_dims=(None, 0, 0))(tp.params, obs, act)             # per-sample gradients
    S_torch = TorchPolicy.flat(g.values(), batch=obs.shape[0])                   # (N, P)
    np.testing.assert_allclose(case.pol.score(case.theta, case.obs, case.act), S_torch, **TOL)


@settings(max_examples=10)
@given(S.policy_cases(), st.data())
def test_kl_grad_fvp_and_fisher_match_autograd(case, data):
    pol, theta = case.pol, case.theta
    theta_new = theta + data.draw(S.thetas(pol.num_params, 0.3))
    v = data.draw(S.thetas(pol.num_params, 1.0))
    tp, obs, _ = as_torch(case)
    old = {k: t.detach() for k, t in tp.params.items()}
    new = {k: t.clone().requires_grad_(True) for k, t in TorchPolicy(pol, theta_new).params.items()}
    kl = tp.kl(old, new, obs)
    np.testing.assert_allclose(pol.kl(theta, theta_new, case.obs), kl.item(), **TOL)
    gk = torch.autograd.grad(kl, list(new.values()))
    np.testing.assert_allclose(pol.kl_grad(theta, theta_new, case.obs), TorchPolicy.flat(gk), **TOL)
    # FVP by double backprop of the mean KL at theta (old detached): grad, dot with v, grad again
    at = {k: t.clone().requires_grad_(True) for k, t in tp.params.items()}
    g = torch.autograd.grad(tp.kl(old, at, obs), list(at.values()), create_graph=True)
    gv = torch.cat([x.reshape(-1) for x in g]) @ torch.tensor(v)
    hvp = TorchPolicy.flat(torch.autograd.grad(gv, list(at.values()), allow_unused=True))
    np.testing.assert_allclose(pol.fvp(theta, case.obs, v), hvp, **TOL)
    np.testing.assert_allclose(pol.fisher(theta, case.obs) @ v, hvp, **TOL)


@given(S.layer_sizes(), st.sampled_from(["tanh", "relu"]), st.integers(0, 2**31 - 1))
def test_theta_layout_is_parameters_to_vector(sizes, activation, seed):
    # a torch-initialised network, flattened by torch, computes the same function in purepg
    torch.manual_seed(seed)
    seq = sequential(sizes, activation)
    theta = torch.nn.utils.parameters_to_vector(seq.parameters()).detach().numpy()
    x = np.random.default_rng(seed).uniform(-3, 3, (5, sizes[0]))
    net = purepg.MLP(sizes, activation)
    assert theta.shape == (net.num_params,)
    np.testing.assert_allclose(net.forward(theta, x)[0], seq(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_entropy_matches_torch():
    pol = purepg.GaussianPolicy(3, 2, (4,), log_std_init=-0.4)
    theta = pol.init(np.random.default_rng(0))
    obs = np.random.default_rng(1).normal(size=(4, 3))
    tp = TorchPolicy(pol, theta)
    H = tp.dist(tp.params, torch.tensor(obs)).entropy().sum(-1).detach().numpy()
    np.testing.assert_allclose(pol.entropy(theta, obs), H, **TOL)
