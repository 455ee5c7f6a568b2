r"""Every Numba kernel of purepg, by domain, each beside its one NumPy reference.

A kernel is a ``@njit(cache=True, nogil=True)`` loop (never fastmath) named ``_<name>_numba``; it
touches no Python object, so it runs without the GIL and a second thread (a run with ``threads=2``,
:mod:`purepg.run.workers`) computes alongside it. Its reference
``_<name>_numpy`` states the same equation as vectorised NumPy (not the loop again); the wrapper
``<name>(..., backend="numba" | "numpy")`` allocates the outputs and runs one or the other. The math
modules call the wrappers one level below the function that states the equation. Random numbers are
never drawn inside a kernel: callers pass them in. ``tests/test_kernels.py`` tests every kernel against
its reference to the accuracy below (Hypothesis inputs) and finds every ``@njit`` of the package here.

================================================  ======================================  ===========================
kernel (module: wrapper)                          NumPy reference                         accuracy
================================================  ======================================  ===========================
nn: ``persample_fill``                            per-layer broadcast outer products      bit for bit
nn: ``fisher_accumulate`` (``"loops"``)           ``einsum`` sum of outer products        ``R eps sum_r |U_ra U_rb|``
nn: ``dphi_mul`` (with ``db=``: colsum)           ``dh * (1 - h^2)`` / ``dh * [h > 0]``   bit for bit
adam: ``adam_update``                             (A1)-(A3) on whole vectors              bit for bit
adam: ``clip_adam_update`` (norm by ``ddot``)     ``np.linalg.norm``, then (A1)-(A3)      bit for bit
sampling: ``inverse_cdf``                         ``cumsum``, compare, count              bit for bit (same actions)
acting: ``categorical_act`` (forward, sample)     ``h @ W.T``, ``np.tanh``, the two above  same actions (see module)
acting: ``categorical_act_blas`` (BLAS products)  ``mlp_forward``'s, the two above         same actions (see module)
elementwise: ``tanh`` (MLP activation)            ``np.tanh``                             4 ulp (mpmath)
elementwise: ``bias_tanh`` (``z + b``, then tanh)  ``np.tanh(z + b)``                      as ``tanh``; = its 2 passes
distributions: ``log_softmax``                    ``z - m - log sum exp(z - m)``          ``8 eps (1 + |value|)``
distributions: ``categorical_log_prob_and_grad``  log-softmax, ``e_a - p``                ``8 eps (1 + |value|)``
returns: ``discount_cumsum``                      eq. (1) as a matrix product             ``4 (T+1) eps (M |x|)_t``
returns: ``discounted_returns``                   eq. (4) as a segment matrix product     ``4 (T+1) eps (M |x|)_t``
returns: ``gae_advantages``                       eq. (5) as a segment matrix product     ``4 (T+1) eps (M |x|)_t``
rollout: ``step_flags``                           ``isfinite(...).all()``, ``any(...)``   exact (booleans)
surrogates: ``clip_terms``                        eq. (3) with ``np.clip``, ``np.where``  bit for bit
batch: ``minibatch_rows`` (gather, standardise)    ``c[idx]``, ``mean``, ``std``           bit for bit
passes: ``mlp_forward`` (one call, BLAS inside)   ``np.matmul``, ``tanh``, broadcasting   bit for bit
passes: ``mlp_backward`` (eqs. (4)-(7))           ``dz.T @ h``, ``dz @ W``, ``sum``       bit for bit
passes: ``mlp_jvp`` (eqs. (8)-(9))                ``h @ dW.T + dh @ W.T + db``            bit for bit
heads: ``half_mse_and_grad`` (eq. (1) of value)   NumPy passes, ``mean``, ``sum``         bit for bit
heads: ``categorical_forward_log_prob``           NumPy pass, log-softmax, ``e_a - p``    as ``categorical_log_prob_and_grad``
heads: ``weighted_backward``                      NumPy pass of ``w[:, None] * d_out``    bit for bit
================================================  ======================================  ===========================

Bit for bit where kernel and reference do the same IEEE operations per entry in the same order (no
fastmath, so nothing is fused); a bound where the C library's ``exp``/``log`` meet NumPy's own, or where
a sum is taken in another order (each module's docstring gives the reason). ``fisher_accumulate``'s
fast path is BLAS (``U.T @ U``), its Numba loop a second check. The ``passes`` kernels call NumPy's own
BLAS from inside the kernel (:mod:`purepg.kernels.blas`, with the arguments ``numpy.matmul`` passes): the
same routine on the same operands, so the same bits as their NumPy references.
"""
from purepg.kernels import acting  # noqa: F401  (transposed_weights, for categorical_act)
from purepg.kernels.acting import categorical_act
from purepg.kernels.adam import adam_update
from purepg.kernels.batch import minibatch_rows
from purepg.kernels import elementwise  # noqa: F401  (vectorised tanh: purepg.kernels.elementwise.tanh)
from purepg.kernels import passes  # noqa: F401  (fits, layout_of)
from purepg.kernels.passes import mlp_backward, mlp_forward, mlp_jvp
from purepg.kernels.distributions import categorical_log_prob_and_grad, log_softmax
from purepg.kernels.nn import STREAM_BYTES, dphi_mul, fisher_accumulate, persample_fill
from purepg.kernels.returns import discount_cumsum, discounted_returns, gae_advantages
from purepg.kernels.rollout import step_flags
from purepg.kernels.sampling import inverse_cdf
from purepg.kernels.surrogates import clip_terms
from purepg.kernels import heads  # noqa: F401  (a network pass with its head's terms, one call)

__all__ = ["STREAM_BYTES", "adam_update", "categorical_act", "categorical_log_prob_and_grad", "clip_terms", "discount_cumsum",
           "discounted_returns", "dphi_mul", "fisher_accumulate", "gae_advantages", "inverse_cdf",
           "log_softmax", "minibatch_rows", "mlp_backward", "mlp_forward", "mlp_jvp", "persample_fill", "step_flags"]
