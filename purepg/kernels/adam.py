r"""The Adam step in one pass (:func:`purepg.optim.adam_step`).

Eqs. (A1)-(A3) of :mod:`purepg.optim.adam` touch every coordinate alone (on ``g`` times a global-norm
clip's scale, which the same pass applies): ``m <- beta1 m + (1 - beta1) g``,
``v <- beta2 v + ((1 - beta2) g) g``, ``theta <- theta - (lr (m / c1)) / (sqrt(v / c2) + eps)`` with the
bias corrections ``c1 = 1 - beta1^t``, ``c2 = 1 - beta2^t``. The NumPy reference writes the three
equations on whole (P,) vectors: about a dozen passes, each with a temporary; the kernel makes one pass,
with the same operations per coordinate in the same order, so the same bits. It is compiled with
``error_model="numpy"``: a division by zero gives inf/NaN as in NumPy instead of raising, which also
lets the loop vectorise (``c1, c2 > 0`` anyway).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from purepg.kernels._backend import unknown_backend


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
