r"""A network's pass together with what its output feeds, in one kernel call each.

A PPO minibatch step runs each network forward, computes per-sample terms from the output, and runs the
network backward with cotangents built from them. Step by step that is about a dozen NumPy and kernel
calls per network, each with its interpreter overhead (about a fifth of a step at 256 rows, 64 units,
in a profile). The kernels here join a one-call pass of :mod:`purepg.kernels.passes` (BLAS products)
with its head's terms:

``categorical_forward_log_prob`` (policy, before the ratio)
    The forward pass, then ``log pi(a_i | s_i)`` and ``d log pi(a_i | s_i) / d z_i = e_a - p`` (C1) of
    :mod:`purepg.model.distributions` from one log-softmax: the compiled functions the step-by-step path
    calls (:func:`purepg.kernels.categorical_log_prob_and_grad`).
``weighted_backward`` (policy, after the objective's weights)
    The backward pass from ``dout = w[:, None] * d_out``: the vector-Jacobian product of
    ``sum_i w_i log pi(a_i | s_i)`` (eq. (1) of :mod:`purepg.pg.surrogates`).
``half_mse_and_grad`` (value network)
    Eq. (1) of :mod:`purepg.model.value`, ``loss = 1/2 mean_i (V(s_i) - R_i)^2`` with
    ``d loss / d V(s_i) = (V(s_i) - R_i) / N``, forward and backward; the two sums NumPy takes pairwise
    (``mean`` of the squares, and the 1-unit head's bias sum over a column) go through
    :func:`purepg.kernels.batch._pairwise_sum`, NumPy's own order.

Between the first two stays the ratio ``exp(log pi - log pi_old)``, NumPy's ``exp`` (whose SIMD version
rounds differently from the C library's a kernel would call).

Same bits as the step-by-step path (``Policy.log_prob_with_vjp``, ``value_loss`` with a workspace),
which calls the same compiled pieces in the same order (``tests/test_heads.py``). The references state
the same equations with the NumPy passes, ``numpy.mean`` and ``sum``: bit for bit for the backward pass
and the value loss, and to the accuracy of :func:`purepg.kernels.categorical_log_prob_and_grad` (the C
library's ``exp`` / ``log`` against NumPy's) for the log-probabilities.

When: a run whose Numba cache holds these kernels (:func:`ready`). Each joins code that is compiled
already (the passes, the log-softmax, the sums) but is compiled on its own, ~0.5-1 s apiece on a first
run; a first run (empty cache) therefore takes the step-by-step path, whose kernels it compiles anyway,
and the compile-ahead process (:mod:`purepg.run.ahead`) compiles these after the run's own kernels, for
the runs that follow. The bits are the same either way.

Scope: what the one-call passes take (:func:`purepg.kernels.passes.fits`); a categorical policy's
actions int64 (an action out of range raises ``IndexError``, as NumPy's indexing does); the unclipped
value loss (the clipped losses, eq. (2) of :mod:`purepg.model.value`, keep the step-by-step path).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels import adam, batch, compiling, distributions, passes
from purepg.kernels._backend import unknown_backend


# ------------------------------------------------------------------------------ value network --
@njit(cache=True, nogil=True, error_model="numpy")
def _half_mse_and_grad_numba(theta, layout, hs, R, dzs, dtheta, sq, dv):
    N, L = R.shape[0], layout.shape[0]
    lo = N - N                                                   # a run-time 0 (no literal specialisation)
    out = passes._mlp_forward_numba(theta, layout, hs)           # (N, 1)  eqs. (1)-(3) of nn
    for i in range(N):
        d = out[i, 0] - R[i]                                     # V(s_i) - R_i
        sq[i] = d * d
        dv[i] = d / N                                            # d loss / d V(s_i)
    loss = 0.5 * ((0.0 + batch._pairwise_sum(sq, lo, N)) / N)     # 1/2 mean, NumPy's pairwise sum
    relu = L < 0                                                 # False, known at run time only: the backward
    passes._mlp_backward_numba(theta, layout, dv.reshape((N, 1)), hs[:-1], dzs, dtheta, relu)   # pass's one build
    dtheta[layout[L - 1, 2] - 1] = 0.0 + batch._pairwise_sum(dv, lo, N)   # the head's bias: sum of dv
    return loss


def _half_mse_and_grad_numpy(theta, layout, hs, R, dzs, dtheta):
    v = passes._mlp_forward_numpy(theta, layout, hs)[:, 0]       # (N,)
    loss = float(0.5 * np.mean((v - R) ** 2))                    # eq. (1)
    dv = (v - R) / R.shape[0]                                    # (N,)
    passes._mlp_backward_numpy(theta, layout, dv[:, None], hs[:-1], dzs, dtheta)
    dtheta[layout[-1, 2] - 1] = dv.sum()
    return loss


def half_mse_and_grad(theta, layout, hs, R, dzs, dtheta, backend="numba"):
    """Eq. (1) of :mod:`purepg.model.value` through a tanh value network: returns the loss; its gradient
    (P_v,) goes into ``dtheta``.

    ``theta`` (P_v,) and ``layout`` as in :mod:`purepg.kernels.passes` (the head has one unit),
    ``hs = (x, h_1, ..., h_L)`` the states (N, d_0) and arrays for the layers' outputs, ``R`` (N,) the
    targets, ``dzs`` arrays for the cotangents ((N, d_l), l = 1..L-1); every array C-contiguous float64
    (:func:`purepg.kernels.passes.fits`).
    """
    if backend == "numba":
        N = R.shape[0]
        return _half_mse_and_grad_numba(theta, layout, hs, R, dzs, dtheta, np.empty(N), np.empty(N))
    if backend == "numpy":
        return _half_mse_and_grad_numpy(theta, layout, hs, R, dzs, dtheta)
    raise unknown_backend(backend)


# ------------------------------------------------------------------------------ policy ---------
@njit(cache=True, nogil=True, error_model="numpy")
def _categorical_forward_log_prob_numba(theta, layout, hs, a, logp, g):
    z = passes._mlp_forward_numba(theta, layout, hs)             # (N, A) logits, eqs. (1)-(3) of nn
    distributions._categorical_log_prob_and_grad_numba(z, a, logp, g)   # log p_a, (C1) e_a - p
    return logp, g


def _categorical_forward_log_prob_numpy(theta, layout, hs, a):
    return distributions._categorical_log_prob_and_grad_numpy(passes._mlp_forward_numpy(theta, layout, hs), a)


def categorical_forward_log_prob(theta, layout, hs, a, backend="numba"):
    """``(log pi(a_i | s_i) (N,), d log pi / d z (N, A))`` of a tanh categorical policy: the forward pass into
    ``hs = (x, h_1, ..., h_L)`` (as :func:`purepg.kernels.mlp_forward`), then (C1); ``a`` int64 (N,)."""
    if backend == "numba":
        N, A = hs[0].shape[0], hs[-1].shape[1]
        return _categorical_forward_log_prob_numba(theta, layout, hs, a, np.empty(N), np.empty((N, A)))
    if backend == "numpy":
        return _categorical_forward_log_prob_numpy(theta, layout, hs, a)
    raise unknown_backend(backend)


@njit(cache=True, nogil=True, error_model="numpy")
def _weighted_backward_numba(theta, layout, w, d_out, hs, dzs, dtheta, dout):
    for i in range(d_out.shape[0]):
        for j in range(d_out.shape[1]):
            dout[i, j] = w[i] * d_out[i, j]                      # w[:, None] * d_out
    relu = layout.shape[0] < 0                                   # False, known at run time only (as above)
    return passes._mlp_backward_numba(theta, layout, dout, hs, dzs, dtheta, relu)


def _weighted_backward_numpy(theta, layout, w, d_out, hs, dzs, dtheta):
    return passes._mlp_backward_numpy(theta, layout, w[:, None] * d_out, hs, dzs, dtheta)


def weighted_backward(theta, layout, w, d_out, hs, dzs, dtheta, backend="numba"):
    """The backward pass (as :func:`purepg.kernels.mlp_backward`, cache ``hs = (x, h_1, ..., h_{L-1})``) from
    ``dout = w[:, None] * d_out``, ``w`` (N,), ``d_out`` (N, d_L) with ``d_L >= 2``; returns ``dtheta`` (P,)."""
    if backend == "numba":
        return _weighted_backward_numba(theta, layout, w, d_out, hs, dzs, dtheta, np.empty(d_out.shape))
    if backend == "numpy":
        return _weighted_backward_numpy(theta, layout, w, d_out, hs, dzs, dtheta)
    raise unknown_backend(backend)


# The fused kernels a first run does not call: these three and Adam's step with the clip's norm inside.
KERNELS = (_half_mse_and_grad_numba, _categorical_forward_log_prob_numba, _weighted_backward_numba,
           adam._clip_adam_update_numba)
_ready = []                                        # [True] once the kernels were found compiled or cached


def ready():
    """Whether the fused kernels (:data:`KERNELS`: the three here and
    :func:`purepg.kernels.adam.clip_adam_update`) can be called without compiling them first: compiled in
    this process, or in Numba's on-disk cache (an index file per kernel). False on a machine's first run
    (module docstring)."""
    if not _ready and all(compiling.cached(k) for k in KERNELS):
        _ready.append(True)
    return bool(_ready)
