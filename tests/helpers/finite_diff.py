"""Central finite differences in float64, the one helper every gradient test uses.

Tolerance reasoning (used by the tests that call these helpers)
---------------------------------------------------------------
For a smooth f, the central difference ``(f(x+h v) - f(x-h v)) / 2h`` has truncation error
``h^2/6 * f'''`` and rounding error about ``eps * |f| / h`` with ``eps = 2.2e-16``. The two balance at
``h ~ eps^(1/3) ~ 6e-6``, where the total error is ``~ eps^(2/3) ~ 4e-11`` times the scale of f and
its third derivative. We use ``h = 1e-6`` and, in tests, a relative+absolute tolerance of ``1e-6``
to leave room for third derivatives up to ~1e4 on the small, bounded inputs the strategies generate
(weights in [-2, 2], observations in [-3, 3]). A wrong gradient (sign, missing term, transposed
layout) is off by O(1) relative, far above that.
"""
import numpy as np

H = 1e-6


def directional(f, x, v, h=H):
    """Central difference of scalar or array ``f`` at ``x`` in direction ``v``: ~ J(x) v."""
    x = np.asarray(x, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    return (np.asarray(f(x + h * v)) - np.asarray(f(x - h * v))) / (2.0 * h)


def gradient(f, x, h=H):
    """Per-coordinate central-difference gradient (or Jacobian, stacked on the last axis) of ``f``."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for k in range(x.size):
        e = np.zeros_like(x)
        e.flat[k] = 1.0
        cols.append(directional(f, x, e, h))
    return np.stack(cols, axis=-1)


def hessian(f, x, h=1e-4):
    """Central-difference Hessian of scalar ``f``: second differences on each pair of coordinates.

    ``h = 1e-4`` because second differences divide by ``h^2``: rounding is ``eps |f| / h^2 ~ 2e-8``
    and truncation ``h^2 f'''' / 12 ~ 1e-9``, so tests compare with tolerance ~1e-6.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    Hm = np.empty((n, n))
    E = np.eye(n) * h
    for i in range(n):
        for j in range(i, n):
            v = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j]) + f(x - E[i] - E[j])) / (4 * h * h)
            Hm[i, j] = Hm[j, i] = v
    return Hm


def assert_fd_close(analytic, numeric, f_scale):
    """Compare an analytic derivative with its central difference (tolerance: the module docstring).

    ``rtol = 1e-6`` covers the O(h^2) truncation; ``atol = 1e-8 (1 + f_scale)`` the O(eps |f| / h) rounding,
    with ``f_scale`` the magnitude of the differentiated function near the point.
    """
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8 * (1.0 + f_scale))


def assert_fd_close_scaled(g, g_fd, f0):
    """:func:`assert_fd_close` for objectives whose gradients are large next to their value: ``atol``
    ``1e-6 (1 + max(|f|, max |g|))`` covers the rounding of a difference quotient of such a function."""
    scale = 1.0 + max(abs(f0), float(np.max(np.abs(g))))
    np.testing.assert_allclose(g, g_fd, rtol=1e-6, atol=1e-6 * scale)
