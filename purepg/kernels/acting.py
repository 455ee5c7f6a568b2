r"""The acting pass of a categorical MLP policy on a few rows, in one kernel (``categorical_act``).

A rollout step asks the policy for one action per copy of the environment, ``E`` of them (1-16): the
MLP's forward pass (eqs. (1)-(3) of :mod:`purepg.model.nn`), the log-softmax of the logits and
inverse-CDF sampling (:mod:`purepg.kernels.sampling`). On so few rows each NumPy call costs more in
Python than in arithmetic (``bench/small_gemm.py``: a 2 x 64 x 64 product takes as long in a loop as
in OpenBLAS), so the kernel runs the whole pass, row after row, in one call:

    h_0 = s,   z_l = W_l h_{l-1} + b_l,   h_l = phi(z_l) (l < L),   log p = log_softmax(z_L),
    a = min(#{b : cumsum(p)_b <= u sum(p)}, A - 1)

The weights come transposed, ``Wt_l = W_l^T`` (d_{l-1}, d_l) (:func:`transposed_weights`, once per
rollout), so the product ``z_l = sum_k h_{l-1,k} Wt_l[k, :]`` runs along contiguous rows of ``Wt_l``
and vectorises over the outputs; each ``z_{l,j}`` still adds its ``d_{l-1}`` terms from ``k = 0`` up,
then ``b_{l,j}``. ``phi`` is purepg's tanh (:mod:`purepg.kernels.elementwise`) or ``max(z, 0)``; the
log-softmax and the inverse CDF are the row functions of :func:`purepg.kernels.log_softmax` and
:func:`purepg.kernels.inverse_cdf` themselves, with ``p = exp(log p)`` between them as in
:func:`purepg.model.distributions.categorical_sample`. The uniforms ``u`` (E,) are drawn by the
caller, as everywhere in :mod:`purepg.kernels`.

Accuracy. The reference ``_categorical_act_numpy`` is the pass the policy runs otherwise: ``h @ W.T``
(BLAS, which may sum in another order and fuse multiply-adds), NumPy's ``exp``. The logits therefore
agree to a rounding bound, ``|dz_L| <= 4 d_max eps`` times the same pass on absolute values (the bound
of a length-``d`` sum in two orders, carried through layers whose ``phi`` is 1-Lipschitz), and the
actions are the same unless a uniform falls within that bound of a step of the CDF (probability of the
order of ``1e-15`` per action).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels import distributions, elementwise, passes, sampling
from purepg.kernels._backend import unknown_backend


def transposed_weights(layers):
    """``(theta_t, layout)`` for the kernel from ``[(W_l, b_l)]`` (:meth:`purepg.model.nn.MLP.unflatten`).

    ``theta_t`` (P,) holds ``W_l^T`` (C order) and ``b_l`` layer after layer; ``layout`` int64 (L, 4)
    gives per layer the offset of ``W_l^T``, the offset of ``b_l``, ``d_{l-1}`` and ``d_l``.
    """
    parts, layout, off = [], [], 0
    for W, b in layers:
        d_out, d_in = W.shape
        parts += [np.ascontiguousarray(W.T).ravel(), b]
        layout.append((off, off + d_in * d_out, d_in, d_out))
        off += d_in * d_out + d_out
    return np.concatenate(parts), np.array(layout, dtype=np.int64)


@njit(cache=True, nogil=True, inline="always")
def _sample_row(z, p, u):
    """The action for logits ``z`` (A,) and the uniform ``u``: ``p = exp(log_softmax(z))`` into ``p`` (A,),
    then the inverse CDF."""
    distributions._log_softmax_row(z, p)                         # log p
    for b in range(p.shape[0]):
        p[b] = np.exp(p[b])                                      # p
    return sampling._inverse_cdf_row(p, u)


def _sample_row_numpy(z, u):
    """:func:`_sample_row` on all rows of ``z`` (E, A) at once: NumPy's ``exp``, the reference kernels."""
    return sampling._inverse_cdf_numpy(np.exp(distributions._log_softmax_numpy(z)), u)


@njit(cache=True, nogil=True, error_model="numpy")
def _categorical_act_numba(theta_t, layout, relu, x, u, h, out):
    E = x.shape[0]
    L = layout.shape[0]
    for i in range(E):
        for k in range(x.shape[1]):
            h[0, k] = x[i, k]                                    # h_0 = s_i
        cur = 0
        for l in range(L):
            w0, b0, d_in, d_out = layout[l, 0], layout[l, 1], layout[l, 2], layout[l, 3]
            nxt = 1 - cur
            for j in range(d_out):
                h[nxt, j] = 0.0
            for k in range(d_in):                                # z_l = sum_k h_{l-1,k} Wt_l[k, :]
                a = h[cur, k]
                row = w0 + k * d_out
                for j in range(d_out):
                    h[nxt, j] += a * theta_t[row + j]
            for j in range(d_out):
                z = h[nxt, j] + theta_t[b0 + j]                  # + b_l
                if l < L - 1:
                    z = (z if z > 0.0 or z != z else 0.0) if relu else elementwise._tanh_scalar(z)
                h[nxt, j] = z
            cur = nxt
        A = layout[L - 1, 3]                                     # logits z_L in row cur; p in the other
        out[i] = _sample_row(h[cur, :A], h[1 - cur, :A], u[i])
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _categorical_act_blas_numba(theta, layout, hs, u, p, out):
    passes._mlp_forward_numba(theta, layout, hs)                 # eqs. (1)-(3) on all E rows: BLAS products
    z = hs[layout.shape[0]]                                      # logits (E, A)
    for i in range(z.shape[0]):
        out[i] = _sample_row(z[i], p, u[i])
    return out


def _categorical_act_blas_numpy(theta, layout, hs, u, p=None, out=None):
    return _sample_row_numpy(passes.mlp_forward(theta, layout, hs, backend="numpy"), u)


def _categorical_act_numpy(theta_t, layout, relu, x, u):
    h = x
    for l, (w0, b0, d_in, d_out) in enumerate(layout):
        z = h @ theta_t[w0:b0].reshape(d_in, d_out) + theta_t[b0:b0 + d_out]
        h = z if l == len(layout) - 1 else (np.maximum(z, 0.0) if relu else np.tanh(z))
    return _sample_row_numpy(h, u)


def categorical_act(theta_t, layout, relu, x, u, backend="numba"):
    """Actions (E,) int64 of a categorical MLP policy at observations ``x`` (E, d_0) for uniforms ``u`` (E,).

    ``theta_t, layout`` from :func:`transposed_weights`; ``relu`` False for tanh hidden layers.
    """
    if backend == "numba":
        width = int(max(x.shape[1], layout[:, 3].max()))
        return _categorical_act_numba(theta_t, layout, bool(relu), x, u, np.empty((2, width)),
                                      np.empty(x.shape[0], dtype=np.int64))
    if backend == "numpy":
        return _categorical_act_numpy(theta_t, layout, relu, x, u)
    raise unknown_backend(backend)


def categorical_act_blas(theta, layout, hs, u, backend="numba", p=None):
    """:func:`categorical_act` of a tanh policy on ``E >= 2`` rows, its forward pass the one-call pass of
    :mod:`purepg.kernels.passes` (BLAS products, the logits bit for bit those of ``Policy.sample``'s
    forward pass): ``theta`` the network's (P,), ``layout`` from ``passes.layout_of``, ``hs`` =
    ``(x, h_1, ..., h_L)`` with ``x`` the observations (E, d_0) and arrays for the layers' outputs
    (``passes.fits`` must hold). ``p``: an optional (A,) float64 scratch array for the probabilities (a
    rollout passes one for all its steps). Returns the actions (E,) int64."""
    if backend == "numba":
        p = np.empty(hs[-1].shape[1]) if p is None else p
        return _categorical_act_blas_numba(theta, layout, hs, u, p, np.empty(u.shape[0], dtype=np.int64))
    if backend == "numpy":
        return _categorical_act_blas_numpy(theta, layout, hs, u)
    raise unknown_backend(backend)
