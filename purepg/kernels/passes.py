r"""A tanh MLP's forward, backward and forward-mode passes, each in one kernel call (``mlp_forward``,
``mlp_backward``, ``mlp_jvp``).

The passes are eqs. (1)-(9) of :mod:`purepg.model.nn` on one batch of ``N`` rows, written into the
arrays of a workspace (``MLP.workspace``). Called step by step from Python they cost ~25 NumPy and Numba
calls per pass, and at the batch sizes of a PPO minibatch (256 rows, 64 units) the interpreter's share
is a quarter of the pass. Each kernel here runs a whole pass in one call: the products go to NumPy's own
BLAS (:mod:`purepg.kernels.blas`, with the arguments ``numpy.matmul`` gives it), the elementwise steps
are the kernels the step-by-step pass calls (:func:`purepg.kernels.elementwise.bias_tanh`'s loop, and
``dphi_mul``'s with the column sum of eq. (5)). The kernels hold no Python object, so they run without
the GIL: the policy's and the value network's passes of a minibatch step can run on two cores at once.
The small kernels a pass calls (the products below, ``_add_rows``, the bias-and-tanh and ``dphi_mul``
loops) are compiled into the pass (``inline="always"``): a Numba function compiled on its own costs a
first run ~0.1-0.3 s before any of its code (``bench/README.md``, "Cold start"); called from Python they
still compile on their own. The generated arithmetic is the same, so are the bits.

Layout. ``layout`` is an int64 (L, 5) array, per layer ``l``: the offsets of ``W_l`` and ``b_l`` in
``theta`` and the end of ``b_l``, then ``d_l`` and ``d_{l-1}`` (:func:`layout_of`). ``hs`` is a tuple
of the layers' (N, d) arrays: for the forward pass ``(x, h_1, ..., h_L)`` (it writes ``h_1`` to
``h_L = out``), for the backward and forward-mode passes the cache ``(x, h_1, ..., h_{L-1})``.

Where each product goes (NumPy's choice for the same operands, ``matmul.c.src``):

==============================  ======================================================
product, operand shapes         routine
==============================  ======================================================
inner dimension 1               a loop, ``C_ij = 0 + A_i1 B_1j`` (an outer product)
(N, k) times a vector (k,)      ``dgemv`` (column-major, transposed)
any other                       ``dgemm`` (row-major)
==============================  ======================================================

Scope. tanh networks with hidden layers (of at least 2 units each), ``N >= 2`` rows, all
arrays C-contiguous and writable (:func:`fits`); the networks take their step-by-step pass otherwise,
and whenever :data:`purepg.kernels.blas.AVAILABLE` is False. The bias gradient of a 1-unit head
(a value function's) is left to the caller: NumPy sums a column of one in another order (pairwise).

Accuracy: bit for bit. The references ``_mlp_*_numpy`` state the passes in NumPy (``numpy.matmul``,
purepg's ``tanh``, broadcasting); ``tests/test_passes.py`` compares each kernel with its reference and
with the step-by-step passes of :class:`purepg.model.nn.MLP`, over layer sizes and batch sizes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels import elementwise, nn
from purepg.kernels._backend import unknown_backend
from purepg.kernels.blas import AVAILABLE, COL_MAJOR, NO_TRANS, ROW_MAJOR, TRANS, gemm, gemv


def layout_of(sizes):
    """The (L, 5) int64 ``layout`` of an MLP of layer sizes ``(d_0, ..., d_L)`` (module docstring)."""
    rows, off = [], 0
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        rows.append((off, off + d_out * d_in, off + d_out * d_in + d_out, d_out, d_in))
        off = rows[-1][2]
    return np.array(rows, dtype=np.int64)


def fits(sizes, N, *arrays):
    """Whether the kernels take this pass: BLAS found, the scope of the module docstring, and every array
    one the kernels take (:func:`takes`)."""
    if not AVAILABLE or N < 2 or len(sizes) < 3 or min(sizes[1:-1]) < 2:
        return False
    return all(map(takes, arrays))


def takes(a):
    """Whether the kernels take the array ``a``: a C-contiguous, writable float64 one."""
    return a.dtype == np.float64 and a.flags.c_contiguous and a.flags.writeable


# ------------------------------------------------------------------------------ the products ---
@njit(cache=True, nogil=True, inline="always")
def _matmul(A, W, C, transposed):
    """``C = A W^T`` (``transposed``: ``W`` the (n, k) matrix, a layer's weights as in eq. (1)) or ``C = A W``
    (``W`` the (k, n) matrix, as in eq. (6)), ``W`` given by its row-major entries; ``A`` (N, k), ``C`` (N, n).
    Either way an inner dimension of 1 is NumPy's loop and a single output column its ``dgemv``; only
    ``dgemm``'s layout of ``W`` differs."""
    N, k = A.shape
    n = C.shape[1]
    if k == 1:
        for i in range(N):
            for j in range(n):
                C[i, j] = 0.0 + A[i, 0] * W[j]
    elif n == 1:
        gemv(COL_MAJOR, TRANS, k, N, A, k, W, 1, C, 1)
    elif transposed:
        gemm(ROW_MAJOR, NO_TRANS, TRANS, N, n, k, A, k, W, k, C, n)
    else:
        gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, N, n, k, A, k, W, n, C, n)


@njit(cache=True, nogil=True, inline="always")
def _matmul_tn(A, H, C):
    """``C = A^T H``: ``A`` (N, n), ``H`` (N, k), ``C`` the (n, k) result as its row-major entries."""
    N, n = A.shape
    k = H.shape[1]
    if n == 1:
        gemv(ROW_MAJOR, TRANS, N, k, H, k, A, 1, C, 1)
    elif k == 1:
        gemv(ROW_MAJOR, TRANS, N, n, A, n, H, 1, C, 1)
    else:
        gemm(ROW_MAJOR, TRANS, NO_TRANS, n, k, N, A, n, H, k, C, k)


@njit(cache=True, nogil=True, inline="always")
def _add_rows(z, b):
    """``z += b`` for every row of ``z``."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] += b[j]


# ------------------------------------------------------------------------------ the passes -----
@njit(cache=True, nogil=True, error_model="numpy")
def _mlp_forward_numba(theta, layout, hs):
    L = layout.shape[0]
    for l in range(L):
        a, m, e = layout[l, 0], layout[l, 1], layout[l, 2]
        z = hs[l + 1]
        _matmul(hs[l], theta[a:m], z, True)                      # eq. (1): h_{l-1} W_l^T
        if l < L - 1:
            elementwise._bias_tanh_numba(z, theta[m:e])          # eqs. (1)-(2): tanh(z + b), in place
        else:
            _add_rows(z, theta[m:e])                             # eq. (3): the linear head
    return hs[L]


@njit(cache=True, nogil=True, error_model="numpy")
def _mlp_backward_numba(theta, layout, dout, hs, dzs, dtheta, relu):
    L = layout.shape[0]
    dz = dout                                                    # dz_L
    e_L = layout[L - 1, 2]
    if layout[L - 1, 3] >= 2:                                    # eq. (5), l = L: rows in order, from +0
        m_L = layout[L - 1, 1]
        for i in range(dz.shape[0]):
            for j in range(dz.shape[1]):
                if i == 0:
                    dtheta[m_L + j] = 0.0 + dz[0, j]
                else:
                    dtheta[m_L + j] += dz[i, j]
    for l in range(L - 1, -1, -1):
        a, m = layout[l, 0], layout[l, 1]
        _matmul_tn(dz, hs[l], dtheta[a:m])                       # eq. (4): dW_l = dz_l^T h_{l-1}
        if l > 0:
            buf = dzs[l - 1]
            _matmul(dz, theta[a:m], buf, False)                  # eq. (6): dh_{l-1} = dz_l W_l
            nn._dphi_mul_colsum_numba(buf, hs[l], relu,          # eq. (7), and eq. (5) for layer l - 1
                                      dtheta[layout[l - 1, 1]:layout[l - 1, 2]])
            dz = buf
    return dtheta[:e_L]


@njit(cache=True, nogil=True, error_model="numpy")
def _mlp_jvp_numba(theta, v, layout, hs, jz, jt, relu):
    L = layout.shape[0]
    for l in range(L):
        a, m, e = layout[l, 0], layout[l, 1], layout[l, 2]
        if l > 0:
            nn._dphi_mul_numba(jz[l - 1], hs[l], relu)           # eq. (9): dh_{l-1} = phi' * dz_{l-1}, in place
        _matmul(hs[l], v[a:m], jz[l], True)                      # eq. (8): h_{l-1} dW_l^T
        if l > 0:
            _matmul(jz[l - 1], theta[a:m], jt[l], True)          #          + dh_{l-1} W_l^T
            z, t = jz[l], jt[l]
            for i in range(z.shape[0]):
                for j in range(z.shape[1]):
                    z[i, j] += t[i, j]
        _add_rows(jz[l], v[m:e])                                 #          + db_l
    return jz[L - 1]


# ------------------------------------------------------------------------------ references -----
def _matmul_numpy(A, W, C, transposed):
    n, k = C.shape[1], A.shape[1]
    return np.matmul(A, W.reshape(n, k).T if transposed else W.reshape(k, n), out=C)


def _matmul_tn_numpy(A, H, C):
    return np.matmul(A.T, H, out=C.reshape(A.shape[1], H.shape[1]))


def _add_rows_numpy(z, b):
    z += b


def _layers(theta, layout):
    return [(theta[a:m].reshape(d_out, d_in), theta[m:e]) for a, m, e, d_out, d_in in layout]


def _mlp_forward_numpy(theta, layout, hs):
    layers = _layers(theta, layout)
    for l, (W, b) in enumerate(layers):
        z = np.matmul(hs[l], W.T, out=hs[l + 1]) + b             # eq. (1)
        hs[l + 1][...] = elementwise.tanh(z) if l < len(layers) - 1 else z   # eqs. (2)-(3)
    return hs[-1]


def _mlp_backward_numpy(theta, layout, dout, hs, dzs, dtheta):
    layers, grads, dz = _layers(theta, layout), _layers(dtheta, layout), dout
    if dout.shape[1] >= 2:
        grads[-1][1][...] = dout.sum(axis=0)                     # eq. (5), l = L
    for l in range(len(layers) - 1, -1, -1):
        grads[l][0][...] = dz.T @ hs[l]                          # eq. (4)
        if l > 0:
            dzs[l - 1][...] = (dz @ layers[l][0]) * (1.0 - hs[l] ** 2)   # eqs. (6)-(7)
            dz = dzs[l - 1]
            grads[l - 1][1][...] = dz.sum(axis=0)                # eq. (5)
    return dtheta


def _mlp_jvp_numpy(theta, v, layout, hs, jz, jt):
    layers, tangents = _layers(theta, layout), _layers(v, layout)
    for l, ((W, _), (dW, db)) in enumerate(zip(layers, tangents)):
        dz = hs[l] @ dW.T                                        # eq. (8), dh_0 = 0
        if l > 0:
            dz = dz + (jz[l - 1] * (1.0 - hs[l] ** 2)) @ W.T     # eqs. (8)-(9)
        jz[l][...] = dz + db
    return jz[-1]


# ------------------------------------------------------------------------------ wrappers -------
def mlp_forward(theta, layout, hs, backend="numba"):
    """Eqs. (1)-(3) into ``hs = (x, h_1, ..., h_L)``; returns ``out = h_L`` (N, d_L)."""
    if backend == "numba":
        return _mlp_forward_numba(theta, layout, hs)
    if backend == "numpy":
        return _mlp_forward_numpy(theta, layout, hs)
    raise unknown_backend(backend)


def mlp_backward(theta, layout, dout, hs, dzs, dtheta, backend="numba"):
    """Eqs. (4)-(7) from ``dout`` (N, d_L) and the cache ``hs = (x, h_1, ..., h_{L-1})`` into ``dtheta``
    (P,), the cotangents into ``dzs`` ((N, d_l), l = 1..L-1); a 1-unit head's bias entry is left unset."""
    if backend == "numba":
        return _mlp_backward_numba(theta, layout, dout, hs, dzs, dtheta, False)   # tanh: a run-time flag, so
        # phi' is the specialisation the step-by-step passes compile too (one compilation fewer on a first run)
    if backend == "numpy":
        return _mlp_backward_numpy(theta, layout, dout, hs, dzs, dtheta)
    raise unknown_backend(backend)


def mlp_jvp(theta, v, layout, hs, jz, jt, backend="numba"):
    """Eqs. (8)-(9) along ``v`` (P,) from the cache ``hs``, tangents into ``jz`` ((N, d_l), l = 1..L; ``jt``
    scratch of the same shapes); returns ``J v = jz[L - 1]`` (N, d_L)."""
    if backend == "numba":
        return _mlp_jvp_numba(theta, v, layout, hs, jz, jt, False)
    if backend == "numpy":
        return _mlp_jvp_numpy(theta, v, layout, hs, jz, jt)
    raise unknown_backend(backend)
