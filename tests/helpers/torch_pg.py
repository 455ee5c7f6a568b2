"""A small PyTorch PPO and TRPO written for purepg's suite, to show purepg.testing at work.

Every function has the NumPy-in / NumPy-out signature of the quantity it implements
(:mod:`purepg.testing`), computes with torch autograd in float64, and follows CleanRL's conventions
(``std`` with ddof 1 plus 1e-8, ``clip_grad_norm_``, Adam epsilon 1e-5, half the squared error), leaving a
minibatch of one unstandardised as Stable-Baselines3 does. ``BUGS`` names the planted
mistakes :func:`implementation` can switch on, each a bug seen in real code.
"""
import numpy as np
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from purepg.testing import torch as tpg

BUGS = {
    "advantage_normalization": "advantages divided by their std without centring them",
    "gae_truncation": "GAE treats a truncated episode as terminated (no bootstrap)",
    "kl_direction": "KL(new || old) where KL(old || new) is meant",
    "entropy_sign": "the entropy returned as sum p log p (sign missing)",
}


def _net(spec, theta):
    P = int(np.shape(theta)[0]) - (spec.act_dim if spec.kind == "gaussian" else 0)
    net = tpg.load(tpg.sequential(spec), theta[:P])
    log_std = torch.nn.Parameter(tpg.tensor(theta[P:])) if spec.kind == "gaussian" else None
    return net, log_std


def _dist(spec, net, log_std, obs):
    out = net(tpg.tensor(obs))
    return Categorical(logits=out) if spec.kind == "categorical" else Normal(out, torch.exp(log_std))


def _log_prob(spec, d, act):
    lp = d.log_prob(tpg.tensor(act))
    return lp if spec.kind == "categorical" else lp.sum(-1)


def _entropy(spec, d):
    return d.entropy() if spec.kind == "categorical" else d.entropy().sum(-1)


def _params(net, log_std):
    return list(net.parameters()) + ([log_std] if log_std is not None else [])


def _flat_grad(loss, params, **kw):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, **kw)])


def implementation(bugs=()):
    """The callables of the PyTorch PPO / TRPO, with the planted ``bugs`` (names of :data:`BUGS`)."""
    bugs = set(bugs)

    def log_prob(spec, theta, obs, act):
        net, ls = _net(spec, theta)
        return _log_prob(spec, _dist(spec, net, ls, obs), act).detach().numpy()

    def entropy(spec, theta, obs):
        net, ls = _net(spec, theta)
        H = _entropy(spec, _dist(spec, net, ls, obs)).detach().numpy()
        return -H if "entropy_sign" in bugs else H

    def kl(spec, theta_old, theta_new, obs):
        (n0, l0), (n1, l1) = _net(spec, theta_old), _net(spec, theta_new)
        p, q = _dist(spec, n0, l0, obs), _dist(spec, n1, l1, obs)
        k = kl_divergence(q, p) if "kl_direction" in bugs else kl_divergence(p, q)
        return float((k if spec.kind == "categorical" else k.sum(-1)).mean().detach())

    def score(spec, theta, obs, act):
        net, ls = _net(spec, theta)
        lp = _log_prob(spec, _dist(spec, net, ls, obs), act)
        return np.stack([_flat_grad(lp[i], _params(net, ls), retain_graph=True).numpy() for i in range(len(lp))])

    def fvp(spec, theta, obs, v):
        net, ls = _net(spec, theta)
        params = _params(net, ls)
        d = _dist(spec, net, ls, obs)
        old = Categorical(logits=d.logits.detach()) if spec.kind == "categorical" else Normal(d.loc.detach(), d.scale.detach())
        k = kl_divergence(old, d)
        g = _flat_grad((k if spec.kind == "categorical" else k.sum(-1)).mean(), params, create_graph=True)
        return _flat_grad(g @ tpg.tensor(v), params).numpy()

    return dict(log_prob=log_prob, entropy=entropy, kl=kl, score=score, fvp=fvp, **_updates(bugs))


def _gae(rew, v, v_next, terminated, truncated, gamma, gae_lambda, bugs):
    """Backward recursion over time, per environment copy."""
    T = rew.shape[0]
    adv, last = np.zeros_like(rew), np.zeros_like(rew[0])
    ended_by_time = truncated & ~terminated
    term = (terminated | truncated) if "gae_truncation" in bugs else terminated
    for t in reversed(range(T)):
        done = terminated[t] | ended_by_time[t] | (t == T - 1)
        delta = rew[t] + gamma * (1.0 - term[t]) * v_next[t] - v[t]
        last = delta + gamma * gae_lambda * (1.0 - done) * last
        adv[t] = last
    return adv


def _returns(rew, v_next, terminated, truncated, gamma):
    T = rew.shape[0]
    G, nxt = np.zeros_like(rew), np.zeros_like(rew[0])
    for t in reversed(range(T)):
        boot = np.where(terminated[t] | truncated[t] | (t == T - 1), v_next[t], nxt)
        nxt = G[t] = rew[t] + gamma * (1.0 - terminated[t]) * boot
    return G


def _normalize(adv, bugs):
    a = torch.as_tensor(adv)
    if a.numel() < 2:                       # one sample: no spread to standardise (torch's std would be NaN)
        return a
    if "advantage_normalization" in bugs:
        return a / (a.std() + 1e-8)
    return (a - a.mean()) / (a.std() + 1e-8)


def _clip_loss(spec, net, ls, obs, act, logp_old, adv, clip_range):
    ratio = torch.exp(_log_prob(spec, _dist(spec, net, ls, obs), act) - tpg.tensor(logp_old))
    a = torch.as_tensor(adv)
    return -torch.min(ratio * a, torch.clamp(ratio, 1 - clip_range, 1 + clip_range) * a).mean()


def _updates(bugs):
    def gae(rew, v, v_next, terminated, truncated, gamma, gae_lambda):
        return _gae(rew, v, v_next, terminated, truncated, gamma, gae_lambda, bugs)

    def ppo_clip(spec, theta, obs, act, logp_old, adv, clip_range):
        net, ls = _net(spec, theta)
        loss = _clip_loss(spec, net, ls, obs, act, logp_old, adv, clip_range)
        return float(loss.detach()), _flat_grad(loss, _params(net, ls)).numpy()

    def ppo_kl_penalty(spec, theta, obs, act, logp_old, adv, theta_old, beta):
        net, ls = _net(spec, theta)
        n0, l0 = _net(spec, theta_old)
        d, d0 = _dist(spec, net, ls, obs), _dist(spec, n0, l0, obs)
        ratio = torch.exp(_log_prob(spec, d, act) - tpg.tensor(logp_old))
        k = kl_divergence(d0, d)
        k = (k if spec.kind == "categorical" else k.sum(-1)).mean()
        loss = -(ratio * tpg.tensor(adv)).mean() + beta * k
        return float(loss.detach()), _flat_grad(loss, _params(net, ls)).numpy()

    def value_loss(v, target, v_old, clip_range):
        v, R = tpg.tensor(v), tpg.tensor(target)
        if clip_range is None:
            return float(0.5 * ((v - R) ** 2).mean())
        vc = tpg.tensor(v_old) + torch.clamp(v - tpg.tensor(v_old), -clip_range, clip_range)
        return float(0.5 * torch.max((v - R) ** 2, (vc - R) ** 2).mean())

    def ppo_update(spec, theta, m, v, t, obs, act, logp_old, adv, clip_range, lr, max_grad_norm):
        net, ls = _net(spec, theta)
        params = _params(net, ls)
        opt = torch.optim.Adam(params, lr=lr, eps=1e-5)
        i = 0
        for p in params:
            n = p.numel()
            opt.state[p] = {"step": torch.tensor(float(t)), "exp_avg": tpg.tensor(m[i:i + n]).reshape(p.shape),
                            "exp_avg_sq": tpg.tensor(v[i:i + n]).reshape(p.shape)}
            i += n
        opt.zero_grad()
        _clip_loss(spec, net, ls, obs, act, logp_old, _normalize(adv, bugs), clip_range).backward()
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        cat = lambda key: torch.cat([opt.state[p][key].reshape(-1) for p in params]).detach().numpy()  # noqa: E731
        return torch.cat([p.detach().reshape(-1) for p in params]).numpy(), cat("exp_avg"), cat("exp_avg_sq")

    return dict(gae=gae, returns=_returns, ppo_clip=ppo_clip, ppo_kl_penalty=ppo_kl_penalty,
                value_loss=value_loss, ppo_update=ppo_update, **_solvers())


def _cg(matvec, b, iters):
    b = torch.as_tensor(b)
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), r @ r
    for _ in range(iters):
        if rr == 0:
            break
        Ap = torch.as_tensor(matvec(p.numpy()))
        alpha = rr / (p @ Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = r @ r
        p, rr = r + (rr_new / rr) * p, rr_new
    return x.numpy()


def _solvers():
    def natural_step(g, F, delta):
        g, F = torch.as_tensor(g), torch.as_tensor(F)
        if not torch.any(g != 0):
            return np.zeros(g.shape[0])
        g = g / 2.0 ** torch.floor(torch.log2(g.abs().max()))   # exact; d does not depend on |g|, g^T x can underflow
        x = torch.linalg.solve(F, g)
        return (torch.sqrt(2 * delta / (x @ F @ x)) * x).numpy()

    def line_search(f, kl, theta, step, delta, ratio, max_steps):
        f0 = f(theta)
        for j in range(max_steps):
            new = theta + ratio ** j * step
            if kl(new) <= delta and f(new) > f0:
                return new
        return theta.copy()

    return dict(cg=_cg, natural_step=natural_step, line_search=line_search)
