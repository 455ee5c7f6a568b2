"""Adam, global-norm clipping, schedules and minibatches on flat float64 vectors.

Everything here acts on a parameter vector ``theta`` (P,) and on callables, never on a network, so each
routine is tested on dense matrices and then reused by every algorithm in :mod:`purepg.algos`.

1. Adam (Kingma & Ba 2015, Algorithm 1)
---------------------------------------
With gradient ``g_t`` at step ``t = 1, 2, ...`` and ``m_0 = v_0 = 0``::

    m_t = beta1 m_{t-1} + (1 - beta1) g_t                                        (A1)
    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2                                      (A2)
    theta_t = theta_{t-1} - lr * mhat_t / (sqrt(vhat_t) + eps),
    mhat_t = m_t / (1 - beta1^t),  vhat_t = v_t / (1 - beta2^t)                  (A3)

Unrolling (A1) gives ``m_t = (1 - beta1) sum_{i=1..t} beta1^(t-i) g_i``, whose weights sum to
``1 - beta1^t``: with a constant gradient ``m_t = (1 - beta1^t) g``, so dividing by ``1 - beta1^t``
removes the bias towards the zero start; likewise for ``v_t``. ``eps`` is Adam's own hyperparameter.
``adam_step`` DESCENDS along ``g``; pass ``-g`` to ascend.

2. Global-norm clipping: ``g <- g * min(1, c / ||g||_2)`` (Pascanu et al. 2013, Algorithm 1).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from purepg import kernels
from purepg import _check

# ----------------------------------------------------------------------------- 1. Adam


class AdamState(NamedTuple):
    """Adam's moments after ``t`` steps: ``m`` (P,) and ``v`` (P,) of (A1)-(A2)."""

    m: np.ndarray  # (P,)
    v: np.ndarray  # (P,)
    t: int


def adam_init(P: int) -> AdamState:
    """The state before the first step: ``m = v = 0`` (P,), ``t = 0``."""
    P = _check.integer(P, "P", 1, "pass the number of parameters, e.g. pol.num_params")
    return AdamState(np.zeros(P), np.zeros(P), 0)


def adam_step(theta, g, state: AdamState, *, lr, beta1=0.9, beta2=0.999, eps=1e-8, check=True):
    """One bias-corrected Adam step that descends along ``g``, eqs. (A1)-(A3).

    Parameters
    ----------
    theta : (P,) parameters.  g : (P,) gradient of the loss to minimise (pass ``-g`` to ascend).
    state : AdamState from :func:`adam_init` or a previous step.
    lr, beta1, beta2, eps : Kingma & Ba 2015, Algorithm 1 (``alpha``, ``beta_1``, ``beta_2``, ``epsilon``).
    check : ``False`` skips the validation of the arguments (a training loop that validated its state
        once per iteration and steps once per minibatch; a non-finite ``g`` then reaches ``theta``).

    Returns
    -------
    theta_new : (P,) new array.  state_new : AdamState with ``t + 1``.

    The three equations run as one pass over the coordinates, :func:`purepg.kernels.adam_update`; they
    are written in NumPy, vector by vector, in its reference beside it (:mod:`purepg.kernels.adam`).
    """
    if check:
        theta, state, (lr, beta1, beta2, eps) = _adam_args(theta, state, lr, beta1, beta2, eps)
        g = _gradient(g, theta.size)
    t = state.t + 1
    theta_new, m, v = kernels.adam_update(theta, g, state.m, state.v, t, lr, beta1, beta2, eps)   # (A1)-(A3)
    return theta_new, AdamState(m, v, t)


def _adam_args(theta, state, lr, beta1, beta2, eps):
    """Validated ``(theta, state, (lr, beta1, beta2, eps))`` of an Adam step."""
    theta = _check.as_vector(theta, None, "theta", fix="pass the flat parameter vector")
    fix = "pass the state returned by adam_init(P) or by the previous adam_step"
    state = AdamState(_check.as_vector(state.m, theta.size, "state.m", fix=fix),
                      _check.as_vector(state.v, theta.size, "state.v", fix=fix), _check.integer(state.t, "state.t", 0, fix))
    lr = _check.real(lr, "lr", 0.0, np.inf, fix="use a positive learning rate such as 3e-4", lo_open=True)
    beta1 = _check.real(beta1, "beta1", 0.0, 1.0, fix="the usual value is 0.9", hi_open=True)
    beta2 = _check.real(beta2, "beta2", 0.0, 1.0, fix="the usual value is 0.999", hi_open=True)
    eps = _check.real(eps, "eps", 0.0, np.inf, fix="the usual value is 1e-8 (PyTorch) or 1e-5 (SB3 PPO)", lo_open=True)
    return theta, state, (lr, beta1, beta2, eps)


def _gradient(g, size):
    return _check.as_vector(g, size, "g", fix="a non-finite gradient would poison Adam's moments; skip this update")


# ----------------------------------------------------------------------------- 2. clipping


def clip_grad_norm(g, max_norm, *, offset=0.0, check=True):
    """Global-norm clipping: ``g * min(1, max_norm / (||g||_2 + offset))``.

    ``offset = 0`` is the textbook rule; ``offset = 1e-6`` reproduces ``torch.nn.utils.clip_grad_norm_``,
    which divides by ``total_norm + 1e-6`` (torch/nn/utils/clip_grad.py). The division only happens when
    ``||g|| + offset > max_norm > 0``, so a zero gradient is returned unchanged.
    ``check=False`` skips the validation of the arguments; a non-finite norm is reported either way
    (so a clipped gradient is always finite).

    Returns
    -------
    g_clipped : (P,) new array.  norm : float, ``||g||_2`` before clipping.
    """
    if check:
        g = _check.as_vector(g, None, "g", fix="a non-finite gradient cannot be clipped; skip this update")
        max_norm = _check.real(max_norm, "max_norm", 0.0, np.inf, fix="use a positive bound such as 0.5", lo_open=True)
        offset = _check.real(offset, "offset", 0.0, np.inf, fix="use 0.0, or 1e-6 to match PyTorch")
    norm, scale = _clip_scale(g, max_norm, offset)
    if scale is not None:
        return g * scale, norm  # (P,)
    return g.copy(), norm


def _clip_scale(g, max_norm, offset):
    """``(||g||_2, max_norm / (||g||_2 + offset))``, the scale None where nothing is clipped; raises on a
    non-finite norm."""
    with np.errstate(over="ignore", invalid="ignore"):
        norm = float(np.linalg.norm(g))
    if not np.isfinite(norm):
        raise ValueError(f"g: its 2-norm overflows float64 or is NaN: expected a finite norm, got {norm} (max |g_i| = "
                         f"{np.abs(g).max()}). Fix: rescale the loss; a NaN or inf entry means it diverged (lower the step)")
    return norm, (max_norm / (norm + offset) if norm + offset > max_norm else None)


def clip_adam_step(theta, g, state: AdamState, *, max_norm, offset=0.0, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """:func:`clip_grad_norm` then :func:`adam_step` on validated arguments, the clip's product in Adam's
    one pass over the coordinates (:func:`purepg.kernels.adam_update`, ``scale``): the same bits, without
    the clipped (P,) copy. ``max_norm`` None: no clipping. Returns ``(theta_new, state_new)``. Where
    NumPy's BLAS is reachable from a kernel and the fused kernels are compiled
    (:func:`purepg.kernels.heads.ready`), the norm is taken in the same call
    (:func:`purepg.kernels.adam.clip_adam_update`, the same bits)."""
    t = state.t + 1
    if max_norm is not None and kernels.blas.AVAILABLE and kernels.heads.ready():   # the norm in the same call
        theta_new, m, v, norm = kernels.adam.clip_adam_update(theta, g, state.m, state.v, t, lr, beta1, beta2, eps,
                                                              max_norm, offset)
        if not np.isfinite(norm):
            _clip_scale(g, max_norm, offset)                     # raises, naming the norm
        return theta_new, AdamState(m, v, t)
    scale = None if max_norm is None else _clip_scale(g, max_norm, offset)[1]
    theta_new, m, v = kernels.adam_update(theta, g, state.m, state.v, t, lr, beta1, beta2, eps,
                                          scale=1.0 if scale is None else scale)      # (A1)-(A3) on g * scale
    return theta_new, AdamState(m, v, t)


# ----------------------------------------------------------------------------- 3. schedules and minibatches


def linear_schedule(start, end, progress) -> float:
    """``start + progress * (end - start)``: ``start`` at progress 0, ``end`` at progress 1."""
    start = _check.real(start, "start", -np.inf, np.inf, fix="pass the value at progress 0")
    end = _check.real(end, "end", -np.inf, np.inf, fix="pass the value at progress 1")
    p = _check.real(progress, "progress", 0.0, 1.0, fix="pass the fraction of training done, schedule_progress(step, total)")
    return start + p * (end - start)


def schedule_progress(step, total_steps) -> float:
    """Fraction of training done, ``min(step / total_steps, 1)``: the last batch may overshoot the total."""
    total_steps = _check.integer(total_steps, "total_steps", 1, "pass the total number of environment steps")
    step = _check.integer(step, "step", 0, "pass the number of environment steps taken so far")
    return min(step / total_steps, 1.0)


def minibatch_indices(n, batch_size, rng: np.random.Generator) -> list[np.ndarray]:
    """A random permutation of ``range(n)`` cut into consecutive minibatches of ``batch_size``.

    Every index appears exactly once; when ``batch_size`` does not divide ``n`` the last minibatch holds
    the ``n mod batch_size`` remaining indices.
    """
    n = _check.integer(n, "n", 1, "pass the number of samples in the batch")
    batch_size = _check.integer(batch_size, "batch_size", 1, "pass a positive minibatch size")
    _check.generator(rng, "rng")
    perm = rng.permutation(n)  # (n,)
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def minibatches_of(n, batch_size, rng, order=None, epoch=0) -> list[np.ndarray]:
    """Epoch ``epoch``'s minibatches: :func:`minibatch_indices` from ``rng``, or, with ``order`` (a sequence
    of (n,) permutations, one per epoch), ``order[epoch]`` cut the same way (an outside library's order)."""
    if order is None:
        return minibatch_indices(n, batch_size, rng)
    if epoch >= len(order):
        raise ValueError(f"order: expected a permutation for epoch {epoch}, got {len(order)} permutations. "
                         "Fix: pass one permutation of range(n) per epoch")
    perm = np.asarray(order[epoch])
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise ValueError(f"order[{epoch}]: expected a permutation of range({n}), got shape {perm.shape}. "
                         "Fix: pass each epoch's sample order as a permutation of the flattened batch")
    return [perm[i:i + batch_size] for i in range(0, n, batch_size)]


def adam_fit(loss_grad, theta, state: AdamState, n, *, epochs, batch_size, lr, rng, max_grad_norm=None,
             beta1=0.9, beta2=0.999, eps=1e-8, order=None):
    """Minibatch Adam on ``loss_grad(theta, idx) -> (loss, g)`` (e.g. a value-function regression).

    Each epoch draws :func:`minibatch_indices` and takes one :func:`adam_step` (with ``lr``, ``beta1``,
    ``beta2``, ``eps``) per minibatch, after optional :func:`clip_grad_norm` (the two as
    :func:`clip_adam_step`). Returns
    ``(theta, state, losses)``, ``losses`` (epochs * n_batches,) holding each minibatch's loss before its step.
    The arguments are validated once, before the first step; each gradient ``g`` is checked (finite, (P,)).
    ``order`` (one (n,) permutation per epoch) replaces the draws of ``rng`` (:func:`minibatches_of`).
    """
    _check.function(loss_grad, "loss_grad", "pass a function (theta, idx) -> (loss, g)")
    epochs = _check.integer(epochs, "epochs", 1, "pass the number of passes over the data")
    theta, state, hyper = _adam_args(theta, state, lr, beta1, beta2, eps)
    if max_grad_norm is not None:
        max_grad_norm = _check.real(max_grad_norm, "max_grad_norm", 0.0, lo_open=True,
                                    fix="use a positive bound such as 0.5")
    losses = []
    for epoch in range(epochs):
        for idx in minibatches_of(n, batch_size, rng, order, epoch):
            loss, g = loss_grad(theta, idx)
            g = _gradient(g, theta.size)
            theta, state = clip_adam_step(theta, g, state, max_norm=max_grad_norm,           # one pass
                                          **dict(zip(("lr", "beta1", "beta2", "eps"), hyper)))
            losses.append(float(loss))
    return theta, state, np.asarray(losses)


