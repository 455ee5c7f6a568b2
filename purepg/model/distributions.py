r"""Action distributions and their derivatives w.r.t. the distribution parameters.

A policy network outputs ``out`` (N, d_L) per state; a distribution may also own state-independent
parameters ``extra`` (appended to theta). Every function here is a pure function of those arrays.

Categorical over logits ``z`` (N, A)
-----------------------------------
``log p_a = z_a - logsumexp(z)``, computed as ``z_a - m - log sum_b exp(z_b - m)`` with ``m = max z``
so that logits up to +-1e4 stay finite and exact (the largest term is ``exp(0) = 1``).

* score:     ``d log p_a / d z_b = [a = b] - p_b``                                  (C1)
* entropy:   ``H = -sum_a p_a log p_a``;  ``dH/dz_b = -p_b (log p_b + H)``           (C2)
* KL:        ``KL(p || q) = sum_a p_a (log p_a - log q_a)``; ``dKL/dz^q_b = q_b - p_b``   (C3)
* Fisher in logit space: ``M = E_a[(e_a - p)(e_a - p)^T] = diag(p) - p p^T``        (C4)
  with the factor ``M = R^T R``, rows ``R_a = sqrt(p_a) (e_a - p)`` (A rows).

Diagonal Gaussian: mean ``mu`` (N, A) from the network, ``log_std`` (A,) in ``extra``
------------------------------------------------------------------------------------
``log pi(a) = sum_j [ -(a_j - mu_j)^2 / (2 sigma_j^2) - log sigma_j - log(2 pi)/2 ]``, ``sigma = exp(log_std)``.

* score:   ``d/d mu_j = (a_j - mu_j) / sigma_j^2``;  ``d/d log_std_j = (a_j - mu_j)^2 / sigma_j^2 - 1``   (G1)
* entropy: ``H = sum_j (log sigma_j + (1 + log 2 pi) / 2)``; ``dH/d log_std_j = 1``, ``dH/d mu = 0``     (G2)
* KL(old || new) ``= sum_j [ log sigma2_j - log sigma1_j + (sigma1_j^2 + (mu1_j - mu2_j)^2) / (2 sigma2_j^2) - 1/2 ]``;
  ``d/d mu2_j = (mu2_j - mu1_j) / sigma2_j^2``;
  ``d/d log_std2_j = 1 - (sigma1_j^2 + (mu1_j - mu2_j)^2) / sigma2_j^2``                                 (G3)
* Fisher: ``E[score score^T]`` is block diagonal, ``diag(1/sigma^2)`` for ``mu`` and ``2 I`` for ``log_std``
  (``E[(u^2 - 1)^2] = 2`` and ``E[u (u^2 - 1)] = 0`` for ``u ~ N(0, 1)``); factor rows ``R_j = e_j / sigma_j``. (G4)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from purepg import kernels

LOG_2PI = np.log(2.0 * np.pi)


# ------------------------------------------------------------------------ categorical -------
# The two hot categorical functions -- log_softmax and the log-prob with its gradient (C1) -- run as
# Numba kernels, one pass per row (:mod:`purepg.kernels.distributions`, beside their NumPy references).
def log_softmax(z, backend="numba"):
    """Stable ``log p`` (N, A) from logits (N, A) float64: ``z_a - m - log sum_b exp(z_b - m)``, ``m = max z``."""
    return kernels.log_softmax(z, backend=backend)


def categorical_log_prob(z, a):
    """``log p_a`` (N,) for logits ``z`` (N, A) and int actions ``a`` (N,)."""
    return log_softmax(z)[np.arange(z.shape[0]), a]


def categorical_log_prob_grad(z, a):
    """(C1): ``d log p_a / d z`` (N, A) (the bits of :func:`categorical_log_prob_and_grad`)."""
    return categorical_log_prob_and_grad(z, a)[1]


def categorical_log_prob_and_grad(z, a, backend="numba"):
    """``log p_a`` (N,) and (C1) ``d log p_a / d z = e_a - p`` (N, A) from one log-softmax; ``a`` int64 (N,)."""
    return kernels.categorical_log_prob_and_grad(z, a, backend=backend)


def categorical_entropy(z):
    """(C2): ``H`` (N,)."""
    logp = log_softmax(z)
    return -(np.exp(logp) * logp).sum(axis=1)


def categorical_entropy_grad(z):
    """(C2): ``dH/dz`` (N, A)."""
    logp = log_softmax(z)
    p = np.exp(logp)
    H = -(p * logp).sum(axis=1, keepdims=True)
    return -p * (logp + H)


def categorical_kl(zp, zq):
    """(C3): ``KL(p || q)`` (N,)."""
    lp, lq = log_softmax(zp), log_softmax(zq)
    return (np.exp(lp) * (lp - lq)).sum(axis=1)


def categorical_kl_grad(zp, zq):
    """(C3): ``d KL(p || q) / d zq`` (N, A)."""
    return np.exp(log_softmax(zq)) - np.exp(log_softmax(zp))


def categorical_fisher(z):
    """(C4): output-space Fisher ``diag(p) - p p^T`` (N, A, A)."""
    p = np.exp(log_softmax(z))
    return np.einsum("na,ab->nab", p, np.eye(z.shape[1])) - p[:, :, None] * p[:, None, :]


def categorical_fisher_factor(z):
    """(C4): rows ``R`` (N, A, A) with ``R[n]^T R[n] = diag(p) - p p^T``."""
    p = np.exp(log_softmax(z))                                   # (N, A)
    A = z.shape[1]
    return np.sqrt(p)[:, :, None] * (np.eye(A)[None] - p[:, None, :])


def categorical_sample(z, rng: np.random.Generator):
    """Inverse-CDF sampling, one uniform per state: ``a = #{b : cumsum(p)_b <= u sum(p)}`` (kernel)."""
    p = np.exp(log_softmax(z))                                   # (N, A)
    return kernels.inverse_cdf(p, rng.random(z.shape[0]))        # u scaled by the total: rounding-safe


# --------------------------------------------------------------------------- gaussian -------
def gaussian_log_prob(mu, log_std, a):
    """``log pi(a)`` (N,) for means (N, A), log-std (A,), actions (N, A)."""
    u = (a - mu) * np.exp(-log_std)
    return (-0.5 * u * u - log_std - 0.5 * LOG_2PI).sum(axis=1)


def gaussian_log_prob_grad(mu, log_std, a):
    """(G1): ``(d/d mu (N, A), d/d log_std (N, A))``."""
    inv_var = np.exp(-2.0 * log_std)
    d = a - mu
    return d * inv_var, d * d * inv_var - 1.0


def gaussian_entropy(mu, log_std):
    """(G2): ``H`` (N,) -- independent of the state."""
    return np.full(mu.shape[0], np.sum(log_std + 0.5 * (1.0 + LOG_2PI)))


def gaussian_kl(mu1, log_std1, mu2, log_std2):
    """(G3): ``KL(N(mu1, s1) || N(mu2, s2))`` (N,)."""
    var_ratio = np.exp(2.0 * (log_std1 - log_std2))
    m = (mu1 - mu2) * np.exp(-log_std2)
    return (log_std2 - log_std1 + 0.5 * (var_ratio + m * m) - 0.5).sum(axis=1)


def gaussian_kl_grad(mu1, log_std1, mu2, log_std2):
    """(G3): ``(d/d mu2 (N, A), d/d log_std2 (N, A))``."""
    inv_var2 = np.exp(-2.0 * log_std2)
    d = mu2 - mu1
    return d * inv_var2, 1.0 - (np.exp(2.0 * log_std1) + d * d) * inv_var2


def gaussian_sample(mu, log_std, rng: np.random.Generator):
    return mu + np.exp(log_std) * rng.standard_normal(mu.shape)


# ------------------------------------------------- the uniform interface used by policies ----
@dataclass(frozen=True)
class Categorical:
    """Categorical over ``n`` actions; the network outputs the logits; no extra parameters."""

    n: int
    discrete = True

    @property
    def out_dim(self):
        return self.n

    n_extra = 0

    def log_prob(self, out, extra, a):
        return categorical_log_prob(out, a)

    def log_prob_grad(self, out, extra, a):
        return categorical_log_prob_grad(out, a), np.zeros((out.shape[0], 0))

    def log_prob_and_grad(self, out, extra, a):
        """``(log_prob, *log_prob_grad)`` sharing the softmax."""
        logp, g = categorical_log_prob_and_grad(out, a)
        return logp, g, np.zeros((out.shape[0], 0))

    def entropy(self, out, extra):
        return categorical_entropy(out)

    def entropy_grad(self, out, extra):
        return categorical_entropy_grad(out), np.zeros((out.shape[0], 0))

    def kl(self, out_p, extra_p, out_q, extra_q):
        return categorical_kl(out_p, out_q)

    def kl_grad(self, out_p, extra_p, out_q, extra_q):
        return categorical_kl_grad(out_p, out_q), np.zeros((out_p.shape[0], 0))

    def fisher_factor(self, out, extra):
        """(N, K, d_L) rows ``R`` with output Fisher ``R^T R``, and the (n_extra, n_extra) extra block."""
        return categorical_fisher_factor(out), np.zeros((0, 0))

    def fisher_out_vp(self, out, extra, u):
        """Output-space Fisher times ``u`` (N, A): ``p * u - p (p . u)``."""
        p = np.exp(log_softmax(out))
        return p * u - p * (p * u).sum(axis=1, keepdims=True)

    def sample(self, out, extra, rng):
        return categorical_sample(out, rng)

    def mode(self, out, extra):
        return out.argmax(axis=1).astype(np.int64)


@dataclass(frozen=True)
class DiagGaussian:
    """Diagonal Gaussian in ``d`` dimensions; mean from the network, ``log_std`` (d,) in ``extra``."""

    d: int
    discrete = False

    @property
    def out_dim(self):
        return self.d

    @property
    def n_extra(self):
        return self.d

    def log_prob(self, out, extra, a):
        return gaussian_log_prob(out, extra, a)

    def log_prob_grad(self, out, extra, a):
        return gaussian_log_prob_grad(out, extra, a)

    def log_prob_and_grad(self, out, extra, a):
        """``(log_prob, *log_prob_grad)``."""
        return (gaussian_log_prob(out, extra, a), *gaussian_log_prob_grad(out, extra, a))

    def entropy(self, out, extra):
        return gaussian_entropy(out, extra)

    def entropy_grad(self, out, extra):
        return np.zeros_like(out), np.ones((out.shape[0], self.d))

    def kl(self, out_p, extra_p, out_q, extra_q):
        return gaussian_kl(out_p, extra_p, out_q, extra_q)

    def kl_grad(self, out_p, extra_p, out_q, extra_q):
        return gaussian_kl_grad(out_p, extra_p, out_q, extra_q)

    def fisher_factor(self, out, extra):
        R = np.broadcast_to(np.diag(np.exp(-extra)), (out.shape[0], self.d, self.d))   # (G4)
        return R, 2.0 * np.eye(self.d)

    def fisher_out_vp(self, out, extra, u):
        return u * np.exp(-2.0 * extra)

    def sample(self, out, extra, rng):
        return gaussian_sample(out, extra, rng)

    def mode(self, out, extra):
        return out.copy()
