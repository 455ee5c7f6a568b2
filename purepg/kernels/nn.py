r"""Kernels of the MLP's passes (:mod:`purepg.model.nn`): per-sample gradient fill, Fisher accumulation, phi'.

Per-sample gradient fill (``persample_fill``)
---------------------------------------------
For an MLP with layer sizes ``(d_0, ..., d_L)``, the gradient of sample ``i`` w.r.t. layer ``l`` is
``dW_l[i] = outer(dz_l[i], h_{l-1}[i])`` and ``db_l[i] = dz_l[i]`` (eqs. (4)-(5) of :mod:`purepg.model.nn`
without the sum over ``i``). Given the layer inputs ``H = [h_0 | h_1 | ... | h_{L-1}]`` (N, sum d_{l-1}) and
the pre-activation cotangents ``DZ = [dz_1 | ... | dz_L]`` (N, sum d_l), the fill writes row ``i`` of the
(N, P) matrix in the PyTorch layout. The kernel writes each entry once, along a row; the NumPy reference
builds one (N, d_l, d_{l-1}) broadcast product per layer and copies it into place. The fill is bound by
memory traffic, not arithmetic (a 2048 x 4610 score matrix is 75 MB), so outputs larger than
``STREAM_BYTES`` are written with non-temporal stores, which skip reading each cache line before
overwriting it; the values are bit-for-bit those of a plain store. Each entry is one product (or a
copy) in both: the same bits.

The per-sample rows serve two results: the score matrix (``dout`` = d log pi / d out), and the
square-root factor ``U`` of the exact Fisher, ``F = U^T U / N`` (``dout`` = rows of a factor of the
output-space Fisher, see :mod:`purepg.model.policy`). The accumulation ``U^T U`` is a BLAS product
(``fisher_accumulate``): it is the fastest way to sum outer products on a CPU, and its reference is the
explicit sum of outer products (``einsum``); the loop kernel ``_outer_accumulate_numba`` is kept as a
second, independent check. The three sum R products per entry in different orders: they agree to about
``R eps sum_r |U_ra U_rb|``.

Activation derivative, in place (``dphi_mul``)
----------------------------------------------
Eq. (7) of :mod:`purepg.model.nn`, ``dz_{l-1} = dh_{l-1} * phi'(z_{l-1})``, with ``phi'`` written in terms of
the cached ``h = phi(z)``: ``1 - h^2`` for tanh, ``[h > 0]`` for relu. NumPy needs a temporary
``(N, d)`` array for ``phi'`` and three passes; the kernel does one pass and no allocation. Each entry
is ``dh * (1 - h h)`` (or ``dh * 1.0`` / ``dh * 0.0``) in both: the same IEEE operations in the same
order, so the results are bit-for-bit equal (the kernel is compiled without fastmath, so no
multiply-add is fused). With ``db=`` the same pass also sums the new ``dz`` over the rows, the bias
gradient of eq. (5): row after row, the order in which NumPy's ``sum(axis=0)`` adds a C-contiguous
(N, d >= 2) array, so again the same bits (for d = 1 or a strided ``dz`` NumPy sums pairwise, and the
wrapper leaves the sum to NumPy).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from purepg.kernels._backend import unknown_backend

# Outputs at least this large are written with non-temporal (streaming) stores: they exceed the caches,
# so a normal store would first read every line it overwrites (about 2x the memory traffic). Smaller
# outputs stay in cache for the caller.
STREAM_BYTES = 8 * 2**20


@intrinsic
def _stream_store(typingctx, arr, idx, val):
    """``arr.data[idx] = val`` (``idx`` counts elements from the array's first one) with LLVM's
    ``!nontemporal`` hint: the store bypasses the cache instead of first reading the line it overwrites.
    A hint only -- the value written is the same; where the CPU has no such store it is a plain one."""
    sig = types.void(arr, idx, val)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        store = builder.store(args[2], builder.gep(ary.data, [args[1]]))
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _persample_fill_numba(sizes, H, DZ, out, stream):
    N = H.shape[0]
    L = sizes.shape[0] - 1
    rs = out.strides[0] // 8                                    # row stride of out, in elements
    for i in range(N):
        off = 0
        hoff = 0
        zoff = 0
        for l in range(L):
            d_in = sizes[l]
            d_out = sizes[l + 1]
            for j in range(d_out):
                g = DZ[i, zoff + j]
                base = off + j * d_in
                for k in range(d_in):
                    if stream:
                        _stream_store(out, i * rs + base + k, g * H[i, hoff + k])
                    else:
                        out[i, base + k] = g * H[i, hoff + k]   # dW_l[i][j, k]
            off += d_out * d_in
            for j in range(d_out):
                if stream:
                    _stream_store(out, i * rs + off + j, DZ[i, zoff + j])
                else:
                    out[i, off + j] = DZ[i, zoff + j]           # db_l[i][j]
            off += d_out
            hoff += d_in
            zoff += d_out
    return out


def _persample_fill_numpy(sizes, H, DZ, out):
    off = hoff = zoff = 0
    N = H.shape[0]
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        h = H[:, hoff:hoff + d_in]                              # (N, d_in)
        dz = DZ[:, zoff:zoff + d_out]                           # (N, d_out)
        out[:, off:off + d_out * d_in] = (dz[:, :, None] * h[:, None, :]).reshape(N, d_out * d_in)
        off += d_out * d_in
        out[:, off:off + d_out] = dz
        off += d_out
        hoff += d_in
        zoff += d_out
    return out


def persample_fill(sizes, H, DZ, backend="numba", out=None):
    """Per-sample MLP gradients in the flat layout. ``sizes`` int64 (L+1,), ``H``, ``DZ`` as above.

    Returns ``out`` of shape (N, P), ``P = sum_l d_l (d_{l-1} + 1)``.
    """
    P = int(sum(int(o) * int(i) + int(o) for i, o in zip(sizes[:-1], sizes[1:])))
    if out is None:
        out = np.empty((H.shape[0], P))
    if backend == "numba":
        stream = out.nbytes >= STREAM_BYTES and out.strides[1] == 8 and out.strides[0] % 8 == 0
        return _persample_fill_numba(sizes, H, DZ, out, stream)
    if backend == "numpy":
        return _persample_fill_numpy(sizes, H, DZ, out)
    raise unknown_backend(backend)


@njit(cache=True, nogil=True)
def _outer_accumulate_numba(U, F):
    """Reference-style kernel: F += sum_r outer(U[r], U[r]) (upper triangle, then mirrored)."""
    R, P = U.shape
    for r in range(R):
        for a in range(P):
            ua = U[r, a]
            if ua != 0.0:
                for b in range(a, P):
                    F[a, b] += ua * U[r, b]
    for a in range(P):
        for b in range(a):
            F[a, b] = F[b, a]
    return F


def fisher_accumulate(U, F, backend="numba"):
    """``F += U^T U`` for a block of factor rows ``U`` (R, P); ``F`` (P, P) updated in place.

    ``backend="numba"`` uses BLAS (``U.T @ U``), the fast path; ``"numpy"`` sums explicit outer
    products ``np.einsum('ra,rb->ab')`` -- the definition; ``"loops"`` is the Numba loop kernel, kept
    as a second independent reference.
    """
    if backend == "numba":
        F += U.T @ U
    elif backend == "numpy":
        F += np.einsum("ra,rb->ab", U, U)
    elif backend == "loops":
        _outer_accumulate_numba(np.ascontiguousarray(U), F)
    else:
        raise unknown_backend(backend, ("numba", "numpy", "loops"))
    return F


@njit(cache=True, nogil=True)
def _dphi_mul_numba(dh, h, relu):
    n, d = dh.shape
    for i in range(n):
        for j in range(d):
            x = h[i, j]
            if relu:
                dh[i, j] *= 1.0 if x > 0.0 else 0.0             # [h > 0]
            else:
                dh[i, j] *= 1.0 - x * x                          # 1 - tanh(z)^2
    return dh


@njit(cache=True, nogil=True, inline="always")
def _dphi_mul_colsum_numba(dh, h, relu, db):
    n, d = dh.shape
    for i in range(n):
        for j in range(d):
            x = h[i, j]
            if relu:
                dh[i, j] *= 1.0 if x > 0.0 else 0.0
            else:
                dh[i, j] *= 1.0 - x * x
            if i == 0:
                db[j] = 0.0 + dh[i, j]                           # from +0, as numpy: a lone -0.0 row sums to +0.0
            else:
                db[j] += dh[i, j]                                # rows in order, as numpy's axis-0 sum
    return dh


def _dphi_mul_numpy(dh, h, relu):
    if relu:
        dh *= (h > 0.0).astype(np.float64)
        return dh
    d = h * h                                                    # (N, d)
    dh *= np.subtract(1.0, d, out=d)
    return dh


def dphi_mul(dh, h, activation, backend="numba", db=None):
    """``dh *= phi'(z)`` in place from ``h = phi(z)``; ``dh``, ``h`` (N, d) float64, ``activation`` tanh/relu.

    ``db`` (d,), optional: also write the column sums of the new ``dh`` into it (``dh.sum(axis=0)``, the
    bias gradient of eq. (5) of :mod:`purepg.model.nn`) -- in the same pass over ``dh`` for the Numba backend.
    NumPy sums the rows of a C-contiguous (N, d >= 2) array in order, and so does the kernel: the same
    bits. For ``d = 1`` or a strided ``dh``, NumPy's summation order differs (pairwise), so there the
    column sum is NumPy's own. Returns ``dh``.
    """
    relu = activation == "relu"
    if backend == "numba":
        if db is not None and dh.shape[1] >= 2 and dh.shape[0] >= 1 and dh.flags.c_contiguous:
            return _dphi_mul_colsum_numba(dh, h, relu, db)
        _dphi_mul_numba(dh, h, relu)
    elif backend == "numpy":
        _dphi_mul_numpy(dh, h, relu)
    else:
        raise unknown_backend(backend)
    if db is not None:
        dh.sum(axis=0, out=db)
    return dh
