r"""Elementwise transcendental functions in float64 that the compiler vectorises on any x86-64 CPU.

NumPy's ``tanh`` has a SIMD implementation only where AVX-512 is available; elsewhere each element is
one call to the C library (~35 ns). A loop that calls a library function cannot be vectorised, so the
kernels here use only additions, multiplications, fused multiply-adds, one division, comparisons that
become selects, and integer operations on the bits of a float: LLVM turns the loop into SIMD code for
whatever the CPU has (4 float64 lanes with AVX2; LLVM keeps 256-bit vectors on most AVX-512 CPUs too).
Each kernel has its NumPy reference beside it (``np.tanh``, ``np.expm1``). Compiled with ``cache=True``
and without fastmath: the operations are IEEE's, in the written order.

expm1 on [0, 40]
----------------
For ``y >= 0`` write ``y = k ln 2 + r`` with ``k = floor(y / ln 2)`` and ``0 <= r < ln 2``. Then::

    e^y - 1 = 2^k (e^r - 1) + (2^k - 1)                                       (E1)
    e^r - 1 = r + r^2 q(r),   q(r) = 1/2! + r/3! + r^2/4! + ...               (E2)

``r`` is computed as ``(y - k c_hi) - k c_lo`` with ``ln 2 = c_hi + c_lo`` and ``c_hi`` having 21
trailing zero bits, so ``k c_hi`` and the first subtraction are exact for ``k < 2^21``. ``q`` is
replaced by the polynomial of degree 10 closest to it in the Chebyshev sense on ``[0, ln 2]`` (relative
error below 0.07 ulp of ``q``; ``EXPM1_COEFS`` says how it was made), evaluated by Estrin's scheme
(pairs of terms combined with ``r^2``, ``r^4``, ``r^8``: a short dependency chain) with fused
multiply-adds. Both terms of (E1) are >= 0, so their sum does not cancel; ``2^k`` is built from the
bits of ``k`` (:func:`_pow2`), not by a library call. For ``k = 0`` (``y < ln 2``), ``r = y`` exactly,
so tiny and subnormal ``y`` give ``e^y - 1 = y``.

A fused multiply-add rounds once, as IEEE 754 defines it, so the results are the same bits on every
CPU and at every vector width (LLVM may not contract or reorder anything else: no fastmath).

tanh
----
With ``e = expm1(2|x|)``::

    tanh(x) = sign(x) e / (e + 2)                                             (T1)

which has no cancellation anywhere: for small ``|x|`` it is ``2|x| (1 + |x| + ...) / (2 + ...)``, for
large ``|x|`` it rounds to 1. ``|x|`` is clamped to 20 (``tanh(20)`` rounds to 1.0 in float64, and
``2^k`` stays finite), NaN propagates, ``tanh(+-inf) = +-1``, ``tanh(-0) = -0``.

Accuracy (tested against mpmath, ``tests/test_elementwise.py``): within 4 ulp of the exact value for
every float64 input; the largest error measured over dense grids and random inputs is 2.3 ulp
(``expm1_nonneg``: 1.5 ulp). Exact for ``|x| > 19.1`` (where ``tanh`` rounds to +-1), for 0 and
subnormals. Results differ from ``np.tanh`` in the last bits (NumPy's are within ~1 ulp), but unlike
``np.tanh``, whose SIMD and C-library versions round differently, they are the same on every CPU.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from purepg.kernels._backend import unknown_backend

LN2_HI = float.fromhex("0x1.62e42fee00000p-1")     # ln 2 to 32 significant bits (21 trailing zero bits)
LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")    # ln 2 - LN2_HI, to float64
INV_LN2 = float.fromhex("0x1.71547652b82fep0")     # 1 / ln 2
TWO52 = 2.0**52
# q(r) = (e^r - 1 - r) / r^2 on [0, ln 2] to within 0.07 ulp: the near-minimax polynomial of degree 10 from
# mpmath.chebyfit(q, [0, log(2)], 11) at 120-bit precision, coefficients rounded to float64, highest first
EXPM1_COEFS = tuple(float.fromhex(c) for c in (
    "0x1.81a00b6028692p-29", "0x1.9909bb1acd1d9p-26", "0x1.292ab8aeda55cp-22", "0x1.71c65e22862fbp-19",
    "0x1.a01b1f8f1c745p-16", "0x1.a019f90e3e281p-13", "0x1.6c16c194ff7c1p-10", "0x1.111111109f4e7p-7",
    "0x1.5555555556997p-5", "0x1.555555555553fp-3", "0x1.0000000000000p-1"))
TANH_CLAMP = 20.0                                  # tanh(x) rounds to +-1 for |x| > 19.1


@intrinsic
def _pow2(typingctx, kf):
    """``2.0 ** kf`` for a float64 ``kf`` holding an integer in [0, 1023], from bits alone.

    ``kf + 2^52`` has ``kf`` in the low bits of its significand; adding the exponent bias 1023 and
    shifting left by 52 moves ``kf + 1023`` into the exponent field (the upper bits fall off), with a
    zero significand: the float64 ``2^kf``. Integer add and shift vectorise where an ``ldexp`` call does not.
    """
    sig = types.float64(types.float64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.bitcast(builder.fadd(args[0], ir.Constant(ir.DoubleType(), TWO52)), i64)
        biased = builder.shl(builder.add(bits, ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(biased, ir.DoubleType())

    return sig, codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """``a b + c`` with one rounding (IEEE fused multiply-add, ``llvm.fma``): the same bits on every CPU.

    One instruction where the CPU has FMA (every AVX2 CPU: Intel since Haswell, AMD since Piledriver);
    elsewhere LLVM calls the C library's exact ``fma``, which is slower but gives the same result.
    """
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _expm1_nonneg(y):
    """``e^y - 1`` for ``0 <= y <= 40`` by (E1)-(E2); scalar, branch-free."""
    kf = np.floor(y * INV_LN2)                     # k
    r = (y - kf * LN2_HI) - kf * LN2_LO            # y - k ln 2, in [0, ln 2) up to rounding
    c, r2 = EXPM1_COEFS, r * r                     # c[10 - j] multiplies r^j in q(r)
    r4 = r2 * r2
    q = _fma(_fma(_fma(c[0], r, c[1]), r, c[2]), r4 * r4,                        # (E2), Estrin's scheme
             _fma(_fma(_fma(c[3], r, c[4]), r2, _fma(c[5], r, c[6])), r4,
                  _fma(_fma(c[7], r, c[8]), r2, _fma(c[9], r, c[10]))))
    p = _fma(r2, q, r)                             # e^r - 1 = r + r^2 q(r)
    s = _pow2(kf)
    return _fma(s, p, s - 1.0)                     # (E1)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _tanh_scalar(x):
    """(T1) for one float64, branch-free (the conditionals compile to selects)."""
    ax = np.abs(x)
    y = 2.0 * (ax if ax < TANH_CLAMP else TANH_CLAMP)   # NaN and inf take the clamp, fixed below
    e = _expm1_nonneg(y)
    t = e / (e + 2.0)
    t = t if ax == ax else x                       # NaN in, NaN out
    return np.copysign(t, x)


@njit(cache=True, nogil=True, error_model="numpy")
def _tanh_numba(a):
    for i in range(a.shape[0]):
        a[i] = _tanh_scalar(a[i])                  # in place: one array, so no aliasing test blocks SIMD
    return a


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _bias_tanh_numba(z, b):
    n, d = z.shape
    for i in range(n):
        for j in range(d):
            z[i, j] = _tanh_scalar(z[i, j] + b[j])   # the bias add of eq. (1), then (T1): one pass, in place
    return z


@njit(cache=True, nogil=True, error_model="numpy")
def _expm1_numba(a):
    for i in range(a.shape[0]):
        a[i] = _expm1_nonneg(a[i])
    return a


def _apply_in_place(kernel, x, out):
    """``out = f(x)`` for float64 arrays of any shape with a 1-D in-place ``kernel``.

    The kernels work on one array: a loop that reads ``x`` and writes ``out`` would vectorise only
    after a run-time test that the two do not overlap, and would run scalar when they are the same
    array (``tanh(z, out=z)``, the MLP's case). So ``x`` is first copied into ``out`` unless it is ``out``.
    """
    if out is None:
        out = np.array(x, dtype=np.float64, order="C")
    elif out.shape != np.shape(x) or out.dtype != np.float64:
        raise ValueError(f"out: expected a float64 array of shape {np.shape(x)}, got {out.dtype} {out.shape}. "
                         f"Fix: pass an array like the input, or out=None")
    elif out is not x:
        out[...] = x
    if out.flags.c_contiguous:
        kernel(out.reshape(-1))
    else:
        out[...] = kernel(np.ravel(out)).reshape(out.shape)   # ravel copies a strided array
    return out


def _tanh_numpy(x, out):
    return np.tanh(x, out=out)


def _expm1_numpy(y, out):
    return np.expm1(y, out=out)


def tanh(x, out=None, backend="numba"):
    """``tanh(x)`` elementwise, float64 of any shape (module docstring: (T1), at most 4 ulp).

    ``out``: an array of ``x``'s shape to write into (may be ``x`` itself). ``backend="numpy"`` is the
    reference, ``np.tanh``. Returns ``out``.
    """
    if backend == "numba":
        return _apply_in_place(_tanh_numba, x, out)
    if backend == "numpy":
        return _tanh_numpy(x, out)
    raise unknown_backend(backend)


def _bias_tanh_numpy(z, b):
    return np.tanh(z + b, out=z)


def bias_tanh(z, b, backend="numba"):
    """``z <- tanh(z + b)`` in place: ``z`` (N, d) float64, ``b`` (d,) added to every row; returns ``z``.

    A hidden layer's bias add and activation (eqs. (1)-(2) of :mod:`purepg.model.nn`) in one pass over
    ``z`` instead of two. Each entry is the same IEEE addition followed by the same (T1) as
    ``z += b`` then :func:`tanh`, so the same bits; ``backend="numpy"`` is the reference, ``np.tanh(z + b)``
    (within 4 ulp, as :func:`tanh`). A ``z`` that is not C-contiguous takes the two passes.
    """
    if backend == "numba":
        if z.ndim == 2 and z.flags.c_contiguous:
            return _bias_tanh_numba(z, b)
        z += b
        return tanh(z, out=z)
    if backend == "numpy":
        return _bias_tanh_numpy(z, b)
    raise unknown_backend(backend)


def expm1_nonneg(y, backend="numba"):
    """``e^y - 1`` elementwise for float64 ``0 <= y <= 40`` ((E1)-(E2), the core of :func:`tanh`).

    Outside that range the kernel's result is undefined; ``backend="numpy"`` is ``np.expm1``.
    """
    if backend == "numba":
        return _apply_in_place(_expm1_numba, y, None)
    if backend == "numpy":
        return _expm1_numpy(y, None)
    raise unknown_backend(backend)
