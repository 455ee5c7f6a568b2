r"""NumPy's own BLAS, callable from inside a Numba kernel: the products of :mod:`purepg.kernels.passes`.

A network pass is a few matrix products with elementwise work between them (eqs. (1)-(9) of
:mod:`purepg.model.nn`). Called from Python, each product and each elementwise step is one NumPy or
Numba call, ~2-4 us of interpreter work apiece, ~25 of them per pass; a kernel that runs the whole pass
in one call needs the products inside it, as fast as ``numpy.matmul``. Loops compiled by Numba are
2.5-3.8x slower than OpenBLAS from 64 rows up (``bench/small_gemm.py``), so the kernels call the BLAS
library NumPy itself calls.

Which library, and the same call as NumPy's
-------------------------------------------
NumPy's wheels for Linux on x86-64 ship OpenBLAS built with 64-bit integers, its symbols prefixed
``scipy_`` and suffixed ``64_`` (``numpy.show_config()`` names it ``scipy-openblas``). :func:`_locate`
finds that shared library among the ones this process has loaded (``/proc/self/maps``) and takes the
addresses of ``cblas_dgemm``, ``cblas_dgemv`` and ``cblas_ddot`` from it (``ddot``: the dot product
``numpy.linalg.norm`` takes the square root of); ``llvmlite.binding.add_symbol`` registers
them under purepg's names, and the intrinsics :func:`gemm`, :func:`gemv` and :func:`dot` call those names, so the
compiled kernels stay in Numba's on-disk cache (the address is looked up again in every process).

:mod:`purepg.kernels.passes` calls them with the arguments ``numpy.matmul`` passes for the same operands
(NumPy's ``matmul.c.src``: a matrix-matrix product is ``gemm`` in row-major order, a matrix times a
vector ``gemv``, a product whose inner dimension is 1 a plain loop ``0 + a b``), so a product inside a
kernel is the same library routine on the same arguments as NumPy's: the same bits, on every CPU
OpenBLAS supports. ``tests/test_passes.py`` checks it against the passes of :class:`purepg.model.nn.MLP`.

Where NumPy uses another BLAS (a conda build with MKL, a source build), where the library cannot be
found, or where ``PUREPG_FUSED=0`` is set in the environment, :data:`AVAILABLE` is False and the
networks run their passes call by call in NumPy, as before: the same results, more time in Python.
:data:`REASON` says why.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

ROW_MAJOR, COL_MAJOR = 101, 102          # CBLAS_ORDER
NO_TRANS, TRANS = 111, 112               # CBLAS_TRANSPOSE
_PREFIX, _SUFFIX = "scipy_cblas_", "64_"  # NumPy's wheels: OpenBLAS with 64-bit integers (ILP64)
_NAMES = {"dgemm": "purepg_numpy_cblas_dgemm", "dgemv": "purepg_numpy_cblas_dgemv", "ddot": "purepg_numpy_cblas_ddot"}


def _numpy_blas_name():
    """The BLAS NumPy was built against, from ``numpy.show_config`` (None if it does not say)."""
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return blas.get("name"), blas.get("openblas configuration", "")
    except Exception:  # noqa: BLE001  (an old or unusual NumPy: no fused passes)
        return None, ""


def _loaded_libraries():
    """Paths of the shared libraries mapped into this process (Linux; empty elsewhere)."""
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6
                           and ".so" in line})
    except OSError:
        return []


def _locate():
    """``(addresses, reason)``: the addresses of NumPy's ILP64 ``cblas_dgemm``, ``cblas_dgemv`` and ``cblas_ddot``, or
    None and the reason they cannot be used."""
    if os.environ.get("PUREPG_FUSED", "1").strip() == "0":
        return None, "PUREPG_FUSED=0 is set"
    name, config = _numpy_blas_name()
    if name != "scipy-openblas" or "USE64BITINT" not in config:
        return None, f"NumPy's BLAS is {name or 'unknown'}, not the 64-bit-integer scipy-openblas of NumPy's wheels"
    numpy_dir = os.path.dirname(os.path.abspath(np.__file__))          # .../site-packages/numpy
    reason = "NumPy's OpenBLAS library is not among the loaded libraries"
    for path in _loaded_libraries():
        where = os.path.abspath(path)
        if "openblas" not in os.path.basename(path) or not where.startswith((numpy_dir + os.sep, numpy_dir + ".libs")):
            continue                                                    # NumPy's own copy, not SciPy's
        try:
            lib = ctypes.CDLL(path)                                     # loaded already: the same handle
            return {k: ctypes.cast(getattr(lib, _PREFIX + k + _SUFFIX), ctypes.c_void_p).value for k in _NAMES}, ""
        except (OSError, AttributeError) as e:
            reason = f"{path}: {e}"
    return None, reason


_addresses, REASON = _locate()
AVAILABLE = _addresses is not None      # the kernels of :mod:`purepg.kernels.passes` may run
if AVAILABLE:
    for _k, _address in _addresses.items():
        _llvm.add_symbol(_NAMES[_k], _address)


def _pointer(context, builder, ty, value):
    return context.make_array(ty)(context, builder, value).data


def _int64s(context, builder, tys, values):
    return [context.cast(builder, v, t, types.int64) for v, t in zip(values, tys)]


@intrinsic
def gemm(typingctx, order, ta, tb, m, n, k, A, lda, B, ldb, C, ldc):
    """``C <- op(A) op(B)``, (m, n), through NumPy's ``cblas_dgemm`` (alpha 1, beta 0).

    ``A``, ``B``, ``C``: float64 arrays whose first element is the matrix's (any view: only the data
    pointer is passed); ``order``, ``ta``, ``tb``: the CBLAS constants above; ``lda``, ``ldb``, ``ldc``:
    leading dimensions. Only in a kernel that runs when :data:`AVAILABLE` is True.
    """
    sig = types.void(order, ta, tb, m, n, k, A, lda, B, ldb, C, ldc)

    def codegen(context, builder, signature, args):
        i32, i64, f64 = ir.IntType(32), ir.IntType(64), ir.DoubleType()
        ptr = f64.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f64, ptr, i64, ptr, i64, f64, ptr, i64])
        fn = builder.module.globals.get(_NAMES["dgemm"]) or ir.Function(builder.module, fnty, _NAMES["dgemm"])
        t = signature.args
        o, ta_, tb_, m_, n_, k_ = _int64s(context, builder, t[:6], args[:6])
        lda_, ldb_, ldc_ = _int64s(context, builder, (t[7], t[9], t[11]), (args[7], args[9], args[11]))
        builder.call(fn, [builder.trunc(o, i32), builder.trunc(ta_, i32), builder.trunc(tb_, i32), m_, n_, k_,
                          ir.Constant(f64, 1.0), _pointer(context, builder, t[6], args[6]), lda_,
                          _pointer(context, builder, t[8], args[8]), ldb_, ir.Constant(f64, 0.0),
                          _pointer(context, builder, t[10], args[10]), ldc_])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def gemv(typingctx, order, trans, m, n, A, lda, x, incx, y, incy):
    """``y <- op(A) x`` through NumPy's ``cblas_dgemv`` (alpha 1, beta 0); arguments as :func:`gemm`."""
    sig = types.void(order, trans, m, n, A, lda, x, incx, y, incy)

    def codegen(context, builder, signature, args):
        i32, i64, f64 = ir.IntType(32), ir.IntType(64), ir.DoubleType()
        ptr = f64.as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i64, i64, f64, ptr, i64, ptr, i64, f64, ptr, i64])
        fn = builder.module.globals.get(_NAMES["dgemv"]) or ir.Function(builder.module, fnty, _NAMES["dgemv"])
        t = signature.args
        o, tr, m_, n_ = _int64s(context, builder, t[:4], args[:4])
        lda_, incx_, incy_ = _int64s(context, builder, (t[5], t[7], t[9]), (args[5], args[7], args[9]))
        builder.call(fn, [builder.trunc(o, i32), builder.trunc(tr, i32), m_, n_, ir.Constant(f64, 1.0),
                          _pointer(context, builder, t[4], args[4]), lda_, _pointer(context, builder, t[6], args[6]),
                          incx_, ir.Constant(f64, 0.0), _pointer(context, builder, t[8], args[8]), incy_])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def dot(typingctx, n, x, incx, y, incy):
    """``x . y`` (float64) through NumPy's ``cblas_ddot``, the call ``ndarray.dot`` of two float64 vectors makes
    (and so ``numpy.linalg.norm``, its square root); arguments as :func:`gemm`."""
    sig = types.float64(n, x, incx, y, incy)

    def codegen(context, builder, signature, args):
        i64, f64 = ir.IntType(64), ir.DoubleType()
        ptr = f64.as_pointer()
        fnty = ir.FunctionType(f64, [i64, ptr, i64, ptr, i64])
        fn = builder.module.globals.get(_NAMES["ddot"]) or ir.Function(builder.module, fnty, _NAMES["ddot"])
        t = signature.args
        n_, incx_, incy_ = _int64s(context, builder, (t[0], t[2], t[4]), (args[0], args[2], args[4]))
        return builder.call(fn, [n_, _pointer(context, builder, t[1], args[1]), incx_,
                                 _pointer(context, builder, t[3], args[3]), incy_])

    return sig, codegen
