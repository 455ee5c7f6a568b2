r"""The Adam step in one pass (:func:`purepg.optim.adam_step`).

Eqs. (A1)-(A3) of :mod:`purepg.optim.adam` touch every coordinate alone (on ``g`` times a global-norm
clip's scale, which the same pass applies): ``m <- beta1 m + (1 - beta1) g``,
``v <- beta2 v + ((1 - beta2) g) g``, ``theta <- theta - (lr (m / c1)) / (sqrt(v / c2) + eps)`` with the
bias corrections ``c1 = 1 - beta1^t``, ``c2 = 1 - beta2^t``. The NumPy reference writes the three
equations on whole (P,) vectors: about a dozen passes, each with a temporary; the kernel makes one pass,
with the same operations per coordinate in the same order, so the same bits. It is compiled with
``error_model="numpy"``: a division by zero gives inf/NaN as in NumPy instead of raising, which also
lets the loop vectorise (``c1, c2 > 0`` anyway).

``clip_adam_update`` also takes the global-norm clip's scale in the same call
(:func:`purepg.optim.clip_adam_step`): ``||g||_2`` as ``numpy.linalg.norm`` computes it, the square root
of NumPy's own ``cblas_ddot`` of ``g`` with itself (:func:`purepg.kernels.blas.dot`), then
``scale = max_norm / (||g||_2 + offset)`` where ``||g||_2 + offset > max_norm``, else 1.
Only where :data:`purepg.kernels.blas.AVAILABLE` holds.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels._backend import unknown_backend
from purepg.kernels.blas import dot


@njit(cache=True, nogil=True, error_model="numpy")
def _adam_update_numba(theta, g, m, v, lr, beta1, beta2, eps, c1, c2, scale):
    P = theta.shape[0]
    theta_new, m_new, v_new = np.empty(P), np.empty(P), np.empty(P)
    a1, a2 = 1.0 - beta1, 1.0 - beta2
    for i in range(P):
        gi = g[i] * scale                                        # the clipped gradient (scale 1: g itself)
        mi = beta1 * m[i] + a1 * gi                              # (A1)
        vi = beta2 * v[i] + a2 * gi * gi                         # (A2)
        m_new[i] = mi
        v_new[i] = vi
        theta_new[i] = theta[i] - lr * (mi / c1) / (np.sqrt(vi / c2) + eps)   # (A3)
    return theta_new, m_new, v_new


def _adam_update_numpy(theta, g, m, v, lr, beta1, beta2, eps, c1, c2, scale):
    g = g * scale                                                # (P,)  clip_grad_norm's product
    m = beta1 * m + (1.0 - beta1) * g                            # (P,)  (A1)
    v = beta2 * v + (1.0 - beta2) * g * g                        # (P,)  (A2)
    m_hat = m / c1                                               # (P,)  (A3)
    v_hat = v / c2                                               # (P,)
    return theta - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def adam_update(theta, g, m, v, t, lr, beta1, beta2, eps, backend="numba", scale=1.0):
    """One Adam step at step count ``t >= 1``: ``(theta_new, m_new, v_new)``, new (P,) float64 arrays.

    ``theta``, ``g``, ``m``, ``v`` are (P,) float64 (not modified); see :func:`purepg.optim.adam_step`.
    The step is taken along ``g * scale``, each product in the same pass: a global-norm clip's scale
    (:func:`purepg.optim.clip_grad_norm` multiplies the same way; ``x * 1.0`` is ``x``, bit for bit).
    """
    c1, c2 = 1.0 - beta1**t, 1.0 - beta2**t
    if backend == "numba":
        return _adam_update_numba(theta, g, m, v, float(lr), float(beta1), float(beta2), float(eps), c1, c2,
                                  float(scale))
    if backend == "numpy":
        return _adam_update_numpy(theta, g, m, v, lr, beta1, beta2, eps, c1, c2, scale)
    raise unknown_backend(backend)


@njit(cache=True, nogil=True, error_model="numpy")
def _clip_adam_update_numba(theta, g, m, v, lr, beta1, beta2, eps, c1, c2, max_norm, offset):
    norm = np.sqrt(dot(g.shape[0], g, 1, g, 1))                  # numpy.linalg.norm(g)
    if not np.isfinite(norm):
        return theta, m, v, norm                                 # the caller reports it; nothing is stepped
    scale = max_norm / (norm + offset) if norm + offset > max_norm else 1.0
    theta_new, m_new, v_new = _adam_update_numba(theta, g, m, v, lr, beta1, beta2, eps, c1, c2, scale)
    return theta_new, m_new, v_new, norm


def _clip_adam_update_numpy(theta, g, m, v, lr, beta1, beta2, eps, c1, c2, max_norm, offset):
    norm = np.linalg.norm(g)
    if not np.isfinite(norm):
        return theta, m, v, norm
    scale = max_norm / (norm + offset) if norm + offset > max_norm else 1.0
    return (*_adam_update_numpy(theta, g, m, v, lr, beta1, beta2, eps, c1, c2, scale), norm)


def clip_adam_update(theta, g, m, v, t, lr, beta1, beta2, eps, max_norm, offset=0.0, backend="numba"):
    """:func:`adam_update` along ``g`` clipped to global norm ``max_norm`` (``offset`` added to the norm, as
    :func:`purepg.optim.clip_grad_norm`), in one call: ``(theta_new, m_new, v_new, norm)``, ``norm`` =
    ``||g||_2`` before clipping. A non-finite norm steps nothing (``theta``, ``m``, ``v`` returned as they
    are): the caller reports it. The numba backend needs :data:`purepg.kernels.blas.AVAILABLE`."""
    c1, c2 = 1.0 - beta1**t, 1.0 - beta2**t
    args = (theta, g, m, v, float(lr), float(beta1), float(beta2), float(eps), c1, c2, float(max_norm), float(offset))
    if backend == "numba":
        theta_new, m_new, v_new, norm = _clip_adam_update_numba(*args)
        return theta_new, m_new, v_new, float(norm)
    if backend == "numpy":
        theta_new, m_new, v_new, norm = _clip_adam_update_numpy(*args)
        return theta_new, m_new, v_new, float(norm)
    raise unknown_backend(backend)
