r"""A learned state-value function V(s), its regression loss with exact gradient, and its fit.

Model
-----
``V(s) = MLP(s)``, an :class:`purepg.model.nn.MLP` with sizes ``(obs_dim, *hidden, 1)``: orthogonal weights
with gain sqrt(2) on hidden layers and 1 on the head, zero biases (Engstrom et al. 2020,
"Implementation matters", sec. 3; Andrychowicz et al. 2021, "What matters in on-policy RL", sec. 3.2).
Its parameters are one flat vector ``theta_v`` (P_v,), in the layout of :mod:`purepg.model.nn`.

Loss (sign convention of :mod:`purepg.pg.surrogates`: a ``*_loss`` is **minimised**)
---------------------------------------------------------------------------------
For predictions ``v_i = V(s_i)`` and targets ``R_i`` (returns, or GAE targets ``A_i + v^old_i``)::

    L_V = (1/2N) sum_i (v_i - R_i)^2,      dL_V/dv_i = (v_i - R_i) / N                      (1)

(PPO, Schulman et al. 2017, eq. 9, halved so that the derivative carries no factor 2).
Optional clipping as in OpenAI Baselines ``ppo2`` and CleanRL (not in the paper): with the rollout's
predictions ``v^old`` and ``v^c_i = v^old_i + clip(v_i - v^old_i, -eps_v, eps_v)``::

    L_V = (1/2N) sum_i max((v_i - R_i)^2, (v^c_i - R_i)^2).                                 (2)

Where the unclipped square is larger, ``dL_V/dv_i = (v_i - R_i)/N``; where the clipped one is, it is
``(v^c_i - R_i)/N`` inside ``|v_i - v^old_i| <= eps_v`` and 0 outside (``v^c_i`` is then constant).
At ties the derivative is split evenly between the two squares and the clip has derivative 1 on its
closed interval -- PyTorch's ``maximum`` / ``clamp`` backward conventions, so autograd on the same loss
gives the same gradient. (Inside the interval ``v^c = v`` and both branches agree anyway.)
Stable-Baselines3 differs: it regresses the clipped prediction alone, without the max or the 1/2.

The gradient w.r.t. ``theta_v`` is one VJP through the network (eq. (4)-(7) of :mod:`purepg.model.nn`)::

    grad_theta_v L_V = sum_i (dL_V/dv_i) grad_theta_v V(s_i) = net.backward(theta_v, dL_V/dv, cache).

Fit
---
Minibatch Adam on (1)/(2) (:func:`purepg.optim.adam_fit`): each epoch draws a permutation of the N
samples from ``rng`` and visits them in consecutive minibatches of ``minibatch_size`` (the last one
smaller if ``minibatch_size`` does not divide N), one :func:`purepg.optim.adam_step` per minibatch.

Explained variance
------------------
``EV = 1 - Var[R - v] / Var[R]``: 1 for a perfect fit, 0 for predicting the mean, negative when
worse than that. If ``Var[R] = 0`` (constant targets) there is no variance to explain and the ratio is
undefined: :func:`explained_variance` returns ``nan`` (as Stable-Baselines3's does), never a number
made up by adding an epsilon to the denominator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from purepg import kernels, optim
from purepg import _check
from purepg._check import init_scheme
from purepg.model.nn import MLP
from purepg.pg.surrogates import Objective


class FitInfo(NamedTuple):
    """Diagnostics of :meth:`ValueFunction.fit`, each over the whole batch."""

    loss_before: float            # L_V at the input theta_v
    loss_after: float             # L_V at the returned theta_v
    explained_variance_before: float
    explained_variance_after: float
    n_updates: int                # number of Adam steps taken


def value_loss_terms(v, target, *, v_old=None, clip_eps=None, clip_style="max"):
    """Eq. (1), or the clipped eq. (2) when ``v_old`` and ``clip_eps`` are given.

    ``clip_style`` says what is clipped: ``"max"`` is eq. (2), the larger of the unclipped and clipped
    squared errors (PPO paper's code, CleanRL ``ppo.py`` ``clip_vloss``, Tianshou ``ppo.py``);
    ``"prediction"`` regresses the clipped prediction alone, ``1/2 mean (v_c - R)^2`` with
    ``v_c = v_old + clip(v - v_old, +-eps_v)`` (eq. 2', Stable-Baselines3 ``ppo/ppo.py`` ``clip_range_vf``).

    Parameters
    ----------
    v : array_like, shape (N,)
        Predictions ``V(s_i)``.
    target : array_like, shape (N,)
        Regression targets ``R_i``.
    v_old : array_like, shape (N,), optional
        The rollout's predictions, centre of the clip (needs ``clip_eps``).
    clip_eps : float, optional
        ``eps_v > 0`` (needs ``v_old``).

    Returns
    -------
    loss : float
    dloss_dv : ndarray, shape (N,)
    """
    v = _check.per_sample(v, "v", like="v")
    R = _check.per_sample(target, "target", v.shape[0], like="v")
    N = v.shape[0]
    if (v_old is None) != (clip_eps is None):
        got = "an array" if v_old is not None else None
        raise ValueError(f"v_old, clip_eps: expected both or neither, got v_old={got}, clip_eps={clip_eps!r}. "
                         f"Fix: pass both to clip the value loss, or neither.")
    if v_old is None:
        return _value_loss_terms(v, R)
    eps_v = _check.real(clip_eps, "clip_eps", 0.0, lo_open=True, fix="use a value clip range such as 0.2")
    _check_clip_style(clip_style)
    return _value_loss_terms(v, R, _check.per_sample(v_old, "v_old", N, like="v"), eps_v, clip_style)


CLIP_STYLES = ("max", "prediction")


def _check_clip_style(clip_style):
    if clip_style not in CLIP_STYLES:
        raise ValueError(f"clip_style: expected one of {', '.join(CLIP_STYLES)}, got {clip_style!r}. "
                         f"Fix: 'max' (PPO paper, CleanRL) or 'prediction' (Stable-Baselines3)")


def _value_loss_terms(v, R, v_old=None, eps_v=None, clip_style="max"):
    """:func:`value_loss_terms` of validated (N,) float64 arrays (``v_old`` and ``eps_v > 0`` both or neither)."""
    N = v.shape[0]
    if v_old is None:
        return float(0.5 * np.mean((v - R) ** 2)), (v - R) / N     # eq. (1)
    vc = v_old + np.clip(v - v_old, -eps_v, eps_v)               # (N,)
    inside = (v - v_old >= -eps_v) & (v - v_old <= eps_v)        # clip' = 1 on the closed interval
    if clip_style == "prediction":
        return float(0.5 * np.mean((vc - R) ** 2)), inside * (vc - R) / N    # eq. (2')
    u, c = (v - R) ** 2, (vc - R) ** 2                           # (N,), (N,)
    w_u = np.where(u > c, 1.0, np.where(u == c, 0.5, 0.0))      # share of the unclipped square
    dloss_dv = (w_u * (v - R) + (1.0 - w_u) * inside * (vc - R)) / N   # (N,)
    return float(0.5 * np.mean(np.maximum(u, c))), dloss_dv       # eq. (2)


def value_loss(net, theta_v, obs, target, *, v_old=None, clip_eps=None, clip_style="max", check=True, ws=None):
    """Eq. (1) or (2) for a value network ``net`` (an MLP with one output) and its gradient.

    Parameters
    ----------
    net : MLP
        Sizes ``(obs_dim, ..., 1)``.
    theta_v : ndarray, shape (P_v,)
    obs : ndarray, shape (N, obs_dim)
    target : ndarray, shape (N,)
    v_old, clip_eps, clip_style : optional, see :func:`value_loss_terms`.
    check : bool
        ``False`` skips the validation of the arguments (for a training loop that validated its batch
        once per iteration: float64 arrays of matching shapes, finite; ``clip_eps > 0`` if given).
    ws : Workspace, optional
        With ``check=False``: ``net.workspace(N)``, which the network's passes write into (the same bits).

    Returns
    -------
    Objective
        ``value`` = the loss (minimised), ``grad`` (P_v,) its gradient w.r.t. ``theta_v``.
    """
    if not check:
        if ws is not None:
            return _value_loss_into(ws, net, theta_v, obs, target, v_old, clip_eps, clip_style)
        out, cache = net.forward(theta_v, obs, check=False)     # (N, 1)
        loss, dv = _value_loss_terms(out[:, 0], target, v_old, clip_eps, clip_style)
        return Objective(loss, net.backward(theta_v, dv[:, None], cache, check=False))
    if ws is not None:
        raise ValueError("ws: expected check=False with a workspace (for validated arguments), got check=True. "
                         "Fix: pass check=False with ws, or no ws")
    if net.sizes[-1] != 1:
        raise ValueError(f"net: expected one output (sizes ending in 1), got sizes {net.sizes}. "
                         f"Fix: build the value network as MLP((obs_dim, *hidden, 1)).")
    out, cache = net.forward(theta_v, obs)                       # (N, 1)
    loss, dv = value_loss_terms(out[:, 0], target, v_old=v_old, clip_eps=clip_eps, clip_style=clip_style)
    return Objective(loss, net.backward(theta_v, dv[:, None], cache))


def _value_loss_into(ws, net, theta_v, obs, target, v_old, eps_v, clip_style="max"):
    """:func:`value_loss` of validated arrays, the network's passes written into ``ws = net.workspace(N)``
    (a loop over equal-sized minibatches reuses the same arrays, :mod:`purepg.model.nn`, "Reused buffers").
    Eq. (1) on a network the one-call passes take is one kernel call, passes, terms and sums
    (:func:`purepg.kernels.heads.half_mse_and_grad`, the same bits), once that kernel is compiled
    (:func:`purepg.kernels.heads.ready`)."""
    if v_old is None and kernels.heads.ready() and net._one_call(obs.shape[0], theta_v, obs, target):
        net._check_ws(ws, obs.shape[0])                          # eq. (1), both passes: one kernel call
        grad = np.empty(net.num_params)
        return Objective(kernels.heads.half_mse_and_grad(theta_v, net._layout_array, (obs, *ws.h), target,
                                                         ws.dz, grad), grad)
    out, cache = net.forward_into(ws, theta_v, obs)              # (N, 1)
    loss, dv = _value_loss_terms(out[:, 0], target, v_old, eps_v, clip_style)
    return Objective(loss, net.backward_into(ws, theta_v, dv[:, None], cache))


def explained_variance(pred, target):
    """``1 - Var[target - pred] / Var[target]``; ``nan`` when ``Var[target] = 0`` (see module docstring).

    Parameters
    ----------
    pred, target : array_like, shape (N,)

    Returns
    -------
    float
    """
    v = _check.per_sample(pred, "pred", like="pred")
    R = _check.per_sample(target, "target", v.shape[0], like="pred")
    var_R = np.var(R)
    if var_R == 0.0:
        return float("nan")   # constant targets: nothing to explain, the ratio is undefined
    return float(1.0 - np.var(R - v) / var_R)


@dataclass(frozen=True)
class ValueFunction:
    """Structure of a value network; parameters ``theta_v`` are always passed explicitly.

    Parameters
    ----------
    obs_dim : int
        ``d_0``, the observation size.
    hidden : tuple of int
        Hidden layer sizes (``()`` gives a linear V).
    activation : {"tanh", "relu"}
    init_scheme : {"orthogonal", "torch"}
        How :meth:`init` draws ``theta_v`` (see :mod:`purepg.model.nn`, "Initialisation").
    """

    obs_dim: int
    hidden: tuple = (64, 64)
    activation: str = "tanh"
    init_scheme: str = "orthogonal"
    net: MLP = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        obs_dim = _check.positive_int(self.obs_dim, "obs_dim", "pass the length of one observation vector")
        try:
            hidden = tuple(_check.positive_int(h, "hidden", "give positive layer widths, e.g. (64, 64)")
                           for h in self.hidden)
        except TypeError:
            raise TypeError(f"hidden: expected a tuple of layer widths, got {self.hidden!r}. "
                            f"Fix: e.g. hidden=(64, 64), or () for a linear V.") from None
        init_scheme(self.init_scheme, "init_scheme")
        object.__setattr__(self, "obs_dim", obs_dim)
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "net", MLP((obs_dim, *hidden, 1), self.activation))

    @property
    def num_params(self) -> int:
        """``P_v``, the length of ``theta_v``."""
        return self.net.num_params

    def init(self, rng: np.random.Generator) -> np.ndarray:
        """Orthogonal init, gains sqrt(2) on hidden layers and 1 on the head, zero biases (or PyTorch's
        ``nn.Linear`` default if ``init_scheme="torch"``): (P_v,)."""
        gains = (np.sqrt(2.0),) * len(self.hidden) + (1.0,)
        return self.net.init(rng, gains=gains, scheme=self.init_scheme)

    def predict(self, theta_v, obs) -> np.ndarray:
        """``V(s_i)`` for each row of ``obs`` (N, obs_dim): shape (N,)."""
        out, _ = self.net.forward(theta_v, obs)                  # (N, 1)
        return out[:, 0]

    def loss(self, theta_v, obs, target, *, v_old=None, clip_eps=None, clip_style="max", check=True,
             ws=None) -> Objective:
        """Eq. (1) or (2) and its gradient (P_v,); see :func:`value_loss` (also for ``check`` and ``ws``)."""
        return value_loss(self.net, theta_v, obs, target, v_old=v_old, clip_eps=clip_eps, clip_style=clip_style,
                          check=check, ws=ws)

    def fit(self, theta_v, adam_state, obs, targets, *, lr, epochs, minibatch_size, rng,
            v_old=None, clip_eps=None, max_grad_norm=None, beta1=0.9, beta2=0.999, eps=1e-8, scale=1.0,
            order=None):
        """Minibatch Adam on eq. (1) (or (2)) via :func:`purepg.optim.adam_fit`.

        Parameters
        ----------
        theta_v : ndarray, shape (P_v,)
        adam_state : AdamState
            From ``purepg.optim.adam_init(P_v)`` or a previous fit.
        obs : ndarray, shape (N, obs_dim)
        targets : ndarray, shape (N,)
        lr : float
            Adam step size, ``> 0``.
        epochs, minibatch_size : int
            Passes over the data and samples per Adam step, both ``>= 1``.
        rng : numpy.random.Generator
            Draws the minibatch permutations.
        v_old, clip_eps : optional
            Clip the loss as in eq. (2).
        max_grad_norm : float, optional
            Global-norm clipping of each minibatch gradient (:func:`purepg.optim.clip_grad_norm`).
        beta1, beta2, eps : float
            Adam's hyperparameters (PyTorch's defaults; PPO implementations often use ``eps=1e-5``).
        scale : float
            The regressed loss is ``scale`` times eq. (1): 1 is the halved mean square, 2 the plain mean
            square of ``torch.nn.functional.mse_loss`` (sb3-contrib TRPO's critic). Adam is invariant to it
            but for ``eps``.
        order : sequence of (N,) permutations, optional
            One per epoch, replacing the ``rng`` draws (to replay another library's minibatch order).

        Returns
        -------
        theta_v : ndarray, shape (P_v,)
        adam_state : AdamState
        info : FitInfo
        """
        lr = _check.real(lr, "lr", 0.0, lo_open=True, fix="use a step size such as 1e-3")
        epochs = _check.positive_int(epochs, "epochs", "make at least one pass over the data")
        mb = _check.positive_int(minibatch_size, "minibatch_size", "use e.g. 64, or N for full-batch steps")
        _check.generator(rng)
        theta_v = self.net.check_theta(theta_v, "theta_v")
        obs = np.asarray(obs, dtype=np.float64)
        targets = _check.per_sample(targets, "targets", obs.shape[0] if obs.ndim == 2 else None, like="obs")
        v_old = None if v_old is None else _check.per_sample(v_old, "v_old", targets.shape[0], like="targets")
        v = self.predict(theta_v, obs)                           # (N,): the loss and EV before, one pass
        before = value_loss_terms(v, targets, v_old=v_old, clip_eps=clip_eps)[0]
        ev_before = explained_variance(v, targets)

        workspaces = {}                                          # one MLP.workspace per minibatch size

        def loss_grad(th, idx):                                  # eq. (1)/(2) on one minibatch idx
            sub_old = None if v_old is None else v_old[idx]      # validated by the `before` loss terms above
            M = idx.shape[0]
            if M not in workspaces:
                workspaces[M] = self.net.workspace(M)
            out = _value_loss_into(workspaces[M], self.net, th, obs[idx], targets[idx], sub_old, clip_eps)
            return out if scale == 1.0 else Objective(scale * out.value, scale * out.grad)

        theta_v, adam_state, losses = optim.adam_fit(loss_grad, theta_v, adam_state, targets.shape[0],
                                                     epochs=epochs, batch_size=mb, lr=lr, rng=rng,
                                                     max_grad_norm=max_grad_norm, beta1=beta1, beta2=beta2, eps=eps,
                                                     order=order)
        v = self.predict(theta_v, obs)                           # (N,) after the fit
        after = value_loss_terms(v, targets, v_old=v_old, clip_eps=clip_eps)[0]
        ev_after = explained_variance(v, targets)
        return theta_v, adam_state, FitInfo(before, after, ev_before, ev_after, len(losses))
