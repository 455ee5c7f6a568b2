r"""Policies: an MLP (:mod:`purepg.model.nn`) followed by a distribution (:mod:`purepg.model.distributions`).

Parameters are explicit: ``theta = [network parameters (PyTorch layout) | extra]`` where ``extra`` is
empty for a categorical policy and ``log_std`` (A,) for a Gaussian one. Every method is a pure function
of ``(theta, obs[, act])``.

Chain rule, once for all results
--------------------------------
Write ``out_i = f(theta_net; s_i)`` for the network output at state ``s_i`` and ``J_i = d out_i / d theta``
for its Jacobian (d_L, P). For any per-state quantity ``q(out_i, extra)`` with output-space derivative
``dq/d out_i`` (from :mod:`purepg.model.distributions`),

    d q_i / d theta_net = J_i^T (dq/d out_i)                                           (P1)

so a *weighted sum* of per-state gradients is one VJP (``MLP.backward`` with ``dout = w_i dq/d out_i``),
and the *per-sample* rows (the score matrix, ``S[i] = grad_theta log pi(a_i|s_i)``) are the same VJP
without the sum over ``i`` (``MLP.persample_grads``, a Numba kernel).

Fisher information
------------------
The mean KL ``D(theta') = mean_i KL(pi_theta(.|s_i) || pi_theta'(.|s_i))`` has zero value and zero gradient
at ``theta' = theta``; its Hessian there is the Fisher matrix

    F = mean_i J_i^T M_i J_i,    M_i = E_{a ~ pi(.|s_i)}[(d log pi / d out)(d log pi / d out)^T]   (P2)

(the output-space Fisher; the second-derivative-of-the-network terms vanish because
``E_a[d log pi / d out] = 0``). Equivalently ``F = mean_i E_a[score score^T]`` -- the expectation over
actions is exact here, unlike the *empirical* Fisher ``mean_i S[i] S[i]^T`` (docs/math/natural-gradient.md, eq. (5.3)), which uses the
sampled action only and equals ``F`` only in expectation.

``fisher`` factors ``M_i = R_i^T R_i`` (rows ``R_i`` of shape (K, d_L)), so that ``U = [R_i J_i]_i`` stacks
``N K`` per-sample VJPs (the same kernel as the score) and ``F = U^T U / N`` (BLAS). ``fvp`` never forms
``F``: ``F v = mean_i J_i^T (M_i (J_i v))`` is one JVP (``MLP.jvp``), a multiplication by ``M_i`` in
output space, and one VJP (Pearlmutter 1994; Schulman et al. 2015, appendix C.1).
The state-independent ``log_std`` of a Gaussian contributes a block ``2 I`` with no cross terms (G4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from purepg import kernels
from purepg import _check
from purepg import _recycle
from purepg._check import as_actions_discrete, as_matrix, as_vector, init_scheme
from purepg.model.distributions import Categorical, DiagGaussian
from purepg.model.nn import MLP, MLPCache

BACKENDS = ("numba", "numpy")
_FISHER_BLOCK_BYTES = 32 * 2**20   # rows of U built per block in `fisher`, to bound memory


@dataclass(frozen=True)
class Policy:
    """An MLP and a distribution. Build with :func:`CategoricalPolicy` or :func:`GaussianPolicy`."""

    net: MLP
    dist: object
    log_std_init: float = 0.0
    backend: str = "numba"
    init_scheme: str = "orthogonal"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {self.backend!r}. Fix: pick one of those")
        init_scheme(self.init_scheme, "init_scheme")

    # ----- structure --------------------------------------------------------------------------
    @property
    def obs_dim(self):
        return self.net.sizes[0]

    @property
    def act_dim(self):
        """Number of actions (categorical) or action dimension (Gaussian)."""
        return self.dist.out_dim

    n_actions = act_dim

    @property
    def discrete(self):
        return self.dist.discrete

    @property
    def num_params(self):
        return self.net.num_params + self.dist.n_extra

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Orthogonal init, gains sqrt(2) hidden and 0.01 on the head (or PyTorch's ``nn.Linear`` default
        if ``init_scheme="torch"``, see :mod:`purepg.model.nn`); ``log_std = log_std_init``."""
        gains = (np.sqrt(2.0),) * (self.net.num_layers - 1) + (0.01,)
        return np.concatenate([self.net.init(rng, gains, scheme=self.init_scheme),
                               np.full(self.dist.n_extra, float(self.log_std_init))])

    # ----- helpers ----------------------------------------------------------------------------
    def _split(self, theta, name="theta", check=True):
        if check:
            theta = as_vector(theta, self.num_params, name, hint=f"pass a flat vector of length "
                              f"policy.num_params = {self.num_params} (e.g. from policy.init(rng))")
        return theta[:self.net.num_params], theta[self.net.num_params:]

    def _obs(self, obs, nonempty=False):
        obs = as_matrix(obs, self.obs_dim, "obs")
        if nonempty and obs.shape[0] == 0:   # a mean over no states is undefined: say so, do not return NaN
            raise ValueError(f"obs: expected at least one state (N >= 1) for a mean over states, got shape "
                             f"{obs.shape}. Fix: pass a non-empty batch of observations")
        return obs

    def _act(self, act, n):
        if self.discrete:
            return as_actions_discrete(act, n, self.act_dim)
        return as_matrix(act, self.act_dim, "act", rows=n)

    def _forward(self, theta, obs, nonempty=False, check=True):
        """Network output at ``theta``: ``(theta_net, extra, out (N, d_L), cache)``; inputs validated if ``check``."""
        th, extra = self._split(theta, check=check)
        out, cache = self.net.forward(th, self._obs(obs, nonempty) if check else obs, check=False)
        return th, extra, out, cache

    def _join(self, d_net, d_extra):
        return np.concatenate([d_net, d_extra])

    # ----- log-prob and score -----------------------------------------------------------------
    def log_prob(self, theta, obs, act):
        """``log pi(a_i | s_i)`` (N,)."""
        _, extra, out, _ = self._forward(theta, obs)
        return self.dist.log_prob(out, extra, self._act(act, out.shape[0]))

    def log_prob_grad(self, theta, obs, act, w):
        """``sum_i w_i grad_theta log pi(a_i|s_i)`` (P,): one VJP, eq. (P1)."""
        th, extra, out, cache = self._forward(theta, obs)
        w = as_vector(w, out.shape[0], "w")
        d_out, d_extra = self.dist.log_prob_grad(out, extra, self._act(act, out.shape[0]))
        return self._join(self.net.backward(th, w[:, None] * d_out, cache), w @ d_extra)

    def log_prob_with_vjp(self, theta, obs, act, *, check=True, ws=None):
        """``(log pi(a_i|s_i) (N,), vjp)`` sharing one forward pass; ``vjp(w)`` = :meth:`log_prob_grad`.

        For objectives whose weights depend on the log-probs (importance ratios, PPO clipping):
        evaluate, compute ``w`` from ``logp``, then call ``vjp(w)`` -- one forward, one backward.
        ``check=False`` skips the validation of ``theta``, ``obs``, ``act`` and ``w`` (float64 arrays of
        the right shapes, finite, int64 actions in range): for a training loop that validated its batch
        once per iteration and calls this once per minibatch. ``ws``: an ``MLP.workspace`` of the network
        for ``N`` rows, which the two passes write into (``MLP.forward_into``, ``MLP.backward_into``: the
        same bits); ``vjp`` must then be called before the workspace's next pass.
        """
        if (ws is not None and not check and self.discrete and kernels.heads.ready()
                and self.net._one_call(obs.shape[0], theta, obs)):
            return self._log_prob_with_vjp_one_call(theta, obs, act, ws)
        if ws is None:
            th, extra, out, cache = self._forward(theta, obs, check=check)
        else:
            th, extra = self._split(theta, check=check)
            out, cache = self.net.forward_into(ws, th, self._obs(obs) if check else obs)
        if check:
            act = self._act(act, out.shape[0])
        logp, d_out, d_extra = self.dist.log_prob_and_grad(out, extra, act)

        def vjp(w):
            if check:
                w = as_vector(w, out.shape[0], "w")
            dout = w[:, None] * d_out                                                # (N, d_L)
            d_net = (self.net.backward(th, dout, cache, check=False) if ws is None
                     else self.net.backward_into(ws, th, dout, cache))               # (P_net,)
            return self._join(d_net, w @ d_extra)

        return logp, vjp

    def _log_prob_with_vjp_one_call(self, theta, obs, act, ws):
        """:meth:`log_prob_with_vjp` of a categorical policy on validated arguments with a workspace, where
        the one-call passes run (:func:`purepg.kernels.passes.fits`): the forward pass with the
        log-softmax, and the backward pass with the weighting by ``w``, one kernel call each
        (:mod:`purepg.kernels.heads`, once compiled: :func:`purepg.kernels.heads.ready`). The same bits
        as the step-by-step branch."""
        net, th = self.net, theta[:self.net.num_params]          # a categorical policy has no extra parameters
        net._check_ws(ws, obs.shape[0])
        logp, d_out = kernels.heads.categorical_forward_log_prob(th, net._layout_array, (obs, *ws.h), act)

        def vjp(w):
            return kernels.heads.weighted_backward(th, net._layout_array, w, d_out, (obs, *ws.h[:-1]), ws.dz,
                                                   np.empty(net.num_params))

        return logp, vjp

    def score(self, theta, obs, act, out=None):
        """Score matrix ``S[i] = grad_theta log pi(a_i|s_i)`` (N, P), per-sample VJPs (kernel).

        ``out``: an optional C-contiguous float64 (N, P) array to write into and return. Reusing one
        buffer across calls saves the allocation of a fresh N x P matrix (the kernel then only
        streams values into memory that is already mapped). Without it the result is a new array; a
        large one (>= 8 MB) takes the memory of this shape's previous result if nothing refers to that
        any more (:mod:`purepg._recycle`), which spares the zeroing of fresh pages.
        """
        th, extra, y, cache = self._forward(theta, obs)
        d_out, d_extra = self.dist.log_prob_grad(y, extra, self._act(act, y.shape[0]))
        shape = (y.shape[0], self.num_params)
        if out is None:
            S = _recycle.empty(shape)            # an earlier result's memory if no one holds it any more
        elif not (isinstance(out, np.ndarray) and out.shape == shape and out.dtype == np.float64
                  and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(f"out: expected a writeable C-contiguous float64 array of shape {shape}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}. "
                             f"Fix: allocate it with numpy.empty({shape}) or pass out=None")
        else:
            S = out
        self.net.persample_grads(th, d_out, cache, backend=self.backend, out=S[:, :self.net.num_params])
        S[:, self.net.num_params:] = d_extra
        return S

    # ----- entropy ----------------------------------------------------------------------------
    def entropy(self, theta, obs):
        """``H(pi(.|s_i))`` (N,)."""
        _, extra, out, _ = self._forward(theta, obs)
        return self.dist.entropy(out, extra)

    def entropy_grad(self, theta, obs):
        """Gradient of the mean entropy over the states (P,)."""
        th, extra, out, cache = self._forward(theta, obs, nonempty=True)
        N = out.shape[0]
        d_out, d_extra = self.dist.entropy_grad(out, extra)
        return self._join(self.net.backward(th, d_out / N, cache), d_extra.mean(axis=0))

    # ----- KL ---------------------------------------------------------------------------------
    def kl(self, theta_old, theta_new, obs):
        """Mean over states of ``KL(pi_old(.|s) || pi_new(.|s))`` (float)."""
        _, ex_p, out_p, _ = self._forward(theta_old, obs, nonempty=True)
        _, ex_q, out_q, _ = self._forward(theta_new, obs)
        return float(self.dist.kl(out_p, ex_p, out_q, ex_q).mean())

    def kl_grad(self, theta_old, theta_new, obs):
        """Gradient of :meth:`kl` w.r.t. ``theta_new`` (P,)."""
        return self.kl_and_grad(theta_old, theta_new, obs)[1]

    def kl_and_grad(self, theta_old, theta_new, obs):
        """``(kl, kl_grad)`` from one forward pass per parameter vector."""
        _, ex_p, out_p, _ = self._forward(theta_old, obs, nonempty=True)
        th, ex_q, out_q, cache = self._forward(theta_new, obs)
        d_out, d_extra = self.dist.kl_grad(out_p, ex_p, out_q, ex_q)
        N = out_p.shape[0]
        D = float(self.dist.kl(out_p, ex_p, out_q, ex_q).mean())
        return D, self._join(self.net.backward(th, d_out / N, cache), d_extra.mean(axis=0))

    # ----- Fisher -----------------------------------------------------------------------------
    def fisher(self, theta, obs):
        """Exact Fisher ``F = mean_i J_i^T M_i J_i`` (P, P), eq. (P2) = Hessian of the mean KL at theta."""
        th, extra, out, cache = self._forward(theta, obs, nonempty=True)
        N, Pn = out.shape[0], self.net.num_params
        R, F_extra = self.dist.fisher_factor(out, extra)             # (N, K, d_L), (n_extra, n_extra)
        K = R.shape[1]
        F = np.zeros((self.num_params, self.num_params))
        F_net = F[:Pn, :Pn]
        acc = "numba" if self.backend == "numba" else "numpy"
        block = max(1, _FISHER_BLOCK_BYTES // (8 * K * Pn))
        for s in range(0, N, block):
            hs = tuple(np.repeat(h[s:s + block], K, axis=0) for h in cache.hs)   # (nK, d_l)
            dout = R[s:s + block].reshape(-1, out.shape[1])                     # (nK, d_L)
            U = self.net.persample_grads(th, dout, MLPCache(hs), backend=self.backend)
            kernels.fisher_accumulate(U, F_net, backend=acc)
        F_net /= N
        F[Pn:, Pn:] = F_extra
        return F

    def empirical_fisher(self, theta, obs, act):
        """``mean_i S[i] S[i]^T`` (P, P): the empirical Fisher of docs/math/natural-gradient.md, eq. (5.3), with the sampled actions."""
        S = self.score(theta, self._obs(obs, nonempty=True), act)
        return S.T @ S / S.shape[0]

    def fvp(self, theta, obs, v):
        """``F v`` (P,) without forming F: JVP, output-space Fisher, VJP (eq. P2)."""
        return self.fisher_operator(theta, obs)(v)

    def fisher_operator(self, theta, obs):
        """The callable ``v -> F v`` (P,) -> (P,) at fixed ``(theta, obs)``: :meth:`fvp` sharing one forward pass.

        Conjugate gradient (TRPO) multiplies by one ``F`` ten or more times. The network's activations at
        ``(theta, obs)`` are computed here once; each call runs the tangent sweep from them
        (``MLP.jvp_from_cache``), the output-space Fisher and the VJP -- the same operations as
        :meth:`fvp`, so the same bits, without repeating the forward pass. ``v`` is validated per call.
        The operator owns one ``MLP.workspace`` for the batch: its products write into the same arrays
        on every call (``purepg.model.nn``, "Reused buffers") instead of mapping fresh memory each time.
        """
        obs = self._obs(obs, nonempty=True)
        ws = self.net.workspace(obs.shape[0])
        th, extra = self._split(theta)
        out, cache = self.net.forward_into(ws, th, obs)
        _, F_extra = self.dist.fisher_factor(out[:0], extra)

        def F_v(v):
            v_net, v_extra = self._split(v, "v")
            Jv = self.net.jvp_into(ws, th, v_net, cache)                        # (N, d_L)
            MJv = self.dist.fisher_out_vp(out, extra, Jv) / out.shape[0]        # (N, d_L)
            return self._join(self.net.backward_into(ws, th, MJv, cache), F_extra @ v_extra)

        return F_v

    # ----- acting -----------------------------------------------------------------------------
    def sample(self, theta, obs, rng: np.random.Generator, *, check=True):
        """Actions drawn from ``pi(.|s_i)`` with ``rng``: int64 (N,) or float64 (N, A).

        ``check=False`` skips the validation of ``theta``, ``obs`` and ``rng`` (a rollout that checked
        theta once and its observations at arrival, then samples once per step).
        """
        if check:
            _check.generator(rng)
        _, extra, out, _ = self._forward(theta, obs, check=check)
        return self.dist.sample(out, extra, rng)

    def sampler(self, theta):
        """``sample(obs, rng)``: :meth:`sample` at a fixed, validated ``theta``, for a rollout's many calls
        on a few rows each.

        With the numba backend a categorical policy samples in one compiled pass per call: forward pass,
        log-softmax, inverse CDF (:func:`purepg.kernels.acting.categorical_act_blas`, its products in
        BLAS, for a tanh network on two rows or more where :func:`purepg.kernels.passes.fits`; else
        :func:`purepg.kernels.categorical_act`, on weights transposed once, here). It draws the same uniforms from ``rng`` as :meth:`sample` and gives the
        same actions, up to a uniform within rounding of a step of the CDF (module docstring of
        :mod:`purepg.kernels.acting`). ``obs`` (E, d) float64 is not re-validated.
        """
        if not (self.discrete and self.backend == "numba"):
            return lambda obs, rng: self.sample(theta, obs, rng, check=False)
        th, net, kept = self._split(theta, check=False)[0], self.net, {}   # kept: arrays made once per rollout
        one_call = net._one_call(2, th)                         # the network and theta's side of passes.fits
        p = np.empty(net.sizes[-1])                              # the probabilities' scratch row

        def sample(obs, rng):
            u = rng.random(obs.shape[0])
            E = obs.shape[0]
            if one_call and E >= 2 and kernels.passes.takes(obs):  # the rows' side of passes.fits
                if E not in kept:                                # the layers' outputs
                    kept[E] = tuple(np.empty((E, d)) for d in net.sizes[1:])
                return kernels.acting.categorical_act_blas(th, net._layout_array, (obs, *kept[E]), u, p=p)
            if "t" not in kept:                                  # the transposed weights, on first need
                kept["t"] = kernels.acting.transposed_weights(net.unflatten(th))
            return kernels.categorical_act(*kept["t"], net.activation == "relu", obs, u)

        return sample

    def mode(self, theta, obs):
        """The most likely action (argmax of logits, or the Gaussian mean)."""
        _, extra, out, _ = self._forward(theta, obs)
        return self.dist.mode(out, extra)


def _sizes(obs_dim, hidden, out_dim):
    for name, v in (("obs_dim", obs_dim), ("action count/dimension", out_dim)):
        _check.positive_int(v, name)
    return (int(obs_dim), *hidden, int(out_dim))   # MLP checks that hidden widths are whole numbers


def CategoricalPolicy(obs_dim, n_actions, hidden=(64, 64), activation="tanh", backend="numba",
                      init_scheme="orthogonal") -> Policy:
    """A softmax policy over ``n_actions`` with logits from an MLP ``(obs_dim, *hidden, n_actions)``."""
    if int(n_actions) != n_actions or n_actions < 2:
        raise ValueError(f"n_actions: expected an integer >= 2, got {n_actions!r}. "
                         "Fix: a categorical policy needs at least two actions")
    return Policy(MLP(_sizes(obs_dim, hidden, n_actions), activation), Categorical(int(n_actions)), 0.0, backend,
                  init_scheme)


def GaussianPolicy(obs_dim, act_dim, hidden=(64, 64), activation="tanh", log_std_init=0.0, backend="numba",
                   init_scheme="orthogonal") -> Policy:
    """A diagonal Gaussian with mean from an MLP and a state-independent ``log_std`` (act_dim,)."""
    if not np.isfinite(log_std_init):
        raise ValueError(f"log_std_init: expected a finite number, got {log_std_init!r}. "
                         "Fix: pass a real number such as 0.0 (sigma = 1)")
    return Policy(MLP(_sizes(obs_dim, hidden, act_dim), activation), DiagGaussian(int(act_dim)),
                  float(log_std_init), backend, init_scheme)
