"""Hypothesis strategies for what a policy-gradient implementation consumes, with the bounds they guarantee.

They are public: :mod:`purepg.testing`'s checks draw from them, purepg's own suite uses them, and a user
may draw from them in their own property tests. Importing this module needs Hypothesis
(``pip install "purepg[test]"``); :mod:`purepg.testing` itself imports without it.

Every strategy here draws float64 arrays, and each bound is stated next to it with the reason for it.
The bounds keep finite-difference tests meaningful (see ``tests/helpers/finite_diff.py``): with weights in
``[-THETA_BOUND, THETA_BOUND]`` and observations in ``[-OBS_BOUND, OBS_BOUND]`` on networks at most
``MAX_WIDTH`` wide, every pre-activation of a tanh network is at most
``MAX_WIDTH * THETA_BOUND * max(OBS_BOUND, 1) + THETA_BOUND = 38`` in size, and the third derivatives that
set the finite-difference truncation error stay far below the 1e-6 tolerances used.

The strategies are tested themselves (``tests/test_strategies.py``, ``tests/test_testing.py``): each
produces what it claims, edge cases included.

Index
-----
``layer_sizes``      MLP layer sizes ``(d_0, *hidden, d_L)``; ``hidden`` may be empty.
``mlps``             :class:`purepg.MLP` over ``layer_sizes`` and an activation.
``thetas``           a flat parameter vector of a given length.
``observations``     an ``(N, d)`` batch of observations.
``discrete_actions`` int64 actions in ``[0, n)``.
``box_actions``      float64 ``(N, d)`` continuous actions.
``logits``           ``(N, A)`` logits, optionally with extremes up to ``+-LOGIT_EXTREME``.
``log_stds``         a ``(d,)`` log-std in the safe range ``[LOG_STD_MIN, LOG_STD_MAX]``.
``policies``         a categorical or Gaussian :class:`purepg.Policy`.
``policy_cases``     ``(pol, theta, obs, act)`` ready for a policy test.
``policy_specs``     a :class:`purepg.testing.PolicySpec` (the structure a user's network is built from).
``episode_batches``  ``(T, E)`` rewards, values and terminated / truncated flags (both at once, last step).
``advantages``       advantages, including all-equal ones (standard deviation 0).
``old_log_probs``    log-probabilities of the behaviour policy near the current ones.
``hyperparameters``  PPO / TRPO hyperparameters in their valid ranges.
``spd_systems``      a symmetric positive definite matrix with bounded condition number and a right-hand side.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import purepg
from purepg.testing.spec import PolicySpec

# Bounds (module constants so tests can state them in their tolerance comments).
THETA_BOUND = 2.0      # |theta_k| <= 2: weights of order 1, as after orthogonal init with gain sqrt(2)
OBS_BOUND = 3.0        # |obs| <= 3: a normalised observation within three standard deviations
ACT_BOUND = 3.0        # |a_j| <= 3: Gaussian actions within a few sigma of the mean
MAX_DIM = 4            # input / output dimensions in [1, 4] (categorical: 2..4 actions)
MAX_WIDTH = 6          # hidden widths in [1, 6]
MAX_HIDDEN_LAYERS = 2  # 0, 1 or 2 hidden layers: covers the linear map, one and two compositions
MAX_N = 6              # batch sizes in [1, 6]: enough to tell per-sample from batch quantities
LOGIT_EXTREME = 1e4    # logits up to +-1e4: exp would overflow without the max-shift
LOGIT_MODERATE = 30.0  # moderate logits: every probability above exp(-60) / MAX_DIM ~ 2e-27
LOG_STD_MIN = -1.5     # sigma >= 0.22, so 1/sigma^2 <= e^3 ~ 20 keeps Gaussian scores O(10)
LOG_STD_MAX = 1.0      # sigma <= 2.7

ACTIVATIONS = ("tanh", "relu")


@functools.lru_cache(maxsize=None)
def _floats(bound):
    """float64 in ``[-bound, bound]``, no NaN or infinity (those are bad input, tested separately)."""
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=64)


@functools.lru_cache(maxsize=None)
def st_vector(n, bound):
    """A float64 array of shape (n,) with entries in ``[-bound, bound]``."""
    return hnp.arrays(np.float64, (n,), elements=_floats(bound))


@functools.lru_cache(maxsize=None)
def st_matrix(rows, cols, bound):
    """A float64 array of shape (rows, cols) with entries in ``[-bound, bound]``."""
    return hnp.arrays(np.float64, (rows, cols), elements=_floats(bound))


# ------------------------------------------------------------------------------- networks ------
@st.composite
def layer_sizes(draw, in_dim=None, out_dim=None, min_out=1, max_hidden_layers=MAX_HIDDEN_LAYERS,
                max_width=MAX_WIDTH):
    """``(d_0, *hidden, d_L)``: d_0 in [1, MAX_DIM], 0..2 hidden layers of width 1..6, d_L in [min_out, MAX_DIM]."""
    d0 = in_dim if in_dim is not None else draw(st.integers(1, MAX_DIM))
    dL = out_dim if out_dim is not None else draw(st.integers(min_out, MAX_DIM))
    hidden = draw(st.lists(st.integers(1, max_width), min_size=0, max_size=max_hidden_layers))
    return (d0, *hidden, dL)


@st.composite
def mlps(draw, activation=None, **size_kw):
    """A :class:`purepg.MLP` over :func:`layer_sizes` with tanh or relu (or the given activation)."""
    act = activation if activation is not None else draw(st.sampled_from(ACTIVATIONS))
    return purepg.MLP(draw(layer_sizes(**size_kw)), act)


def thetas(n, bound=THETA_BOUND):
    """A flat parameter vector (n,), entries in ``[-bound, bound]`` (default 2, see THETA_BOUND)."""
    return st_vector(n, bound)


def observations(n, d, bound=OBS_BOUND):
    """A batch of observations (n, d), entries in ``[-bound, bound]`` (default 3, see OBS_BOUND)."""
    return st_matrix(n, d, bound)


def batch_sizes(max_n=MAX_N):
    """N in [1, max_n]: at least one state (a mean over no states is undefined)."""
    return st.integers(1, max_n)


# -------------------------------------------------------------------------------- actions ------
def discrete_actions(n, n_actions):
    """int64 actions (n,) in ``[0, n_actions)``."""
    return hnp.arrays(np.int64, (n,), elements=st.integers(0, n_actions - 1))


def box_actions(n, d, bound=ACT_BOUND):
    """Continuous actions (n, d), entries in ``[-bound, bound]`` (default 3, see ACT_BOUND)."""
    return st_matrix(n, d, bound)


# ------------------------------------------------------------------- distribution params ------
def logits(n, n_actions, extreme=True):
    """Logits (n, A). With ``extreme``, entries range over ``[-1e4, 1e4]`` and the endpoints +-1e4 are
    drawn often (so probabilities underflow to exactly 0 and exp(z) would overflow without the shift);
    otherwise entries are in ``[-30, 30]``."""
    if not extreme:
        return st_matrix(n, n_actions, LOGIT_MODERATE)
    elems = st.one_of(st.sampled_from([-LOGIT_EXTREME, LOGIT_EXTREME, 0.0]), _floats(LOGIT_EXTREME),
                      _floats(LOGIT_MODERATE))
    return hnp.arrays(np.float64, (n, n_actions), elements=elems)


def log_stds(d, lo=LOG_STD_MIN, hi=LOG_STD_MAX):
    """A log-std vector (d,) in the safe range ``[-1.5, 1.0]`` (sigma in [0.22, 2.7])."""
    return hnp.arrays(np.float64, (d,), elements=st.floats(lo, hi, allow_nan=False, width=64))


# -------------------------------------------------------------------------------- policies ------
@st.composite
def policies(draw, kind=None, activation=None, max_hidden_layers=MAX_HIDDEN_LAYERS, max_width=MAX_WIDTH,
             backend="numba"):
    """A categorical (2..4 actions) or Gaussian (1..4 dims) policy over a small MLP (see layer_sizes)."""
    kind = kind if kind is not None else draw(st.sampled_from(("categorical", "gaussian")))
    act = activation if activation is not None else draw(st.sampled_from(ACTIVATIONS))
    sizes = draw(layer_sizes(min_out=2 if kind == "categorical" else 1, max_hidden_layers=max_hidden_layers,
                             max_width=max_width))
    if kind == "categorical":
        return purepg.CategoricalPolicy(sizes[0], sizes[-1], sizes[1:-1], act, backend=backend)
    return purepg.GaussianPolicy(sizes[0], sizes[-1], sizes[1:-1], act, backend=backend)


class PolicyCase(NamedTuple):
    pol: purepg.Policy
    theta: np.ndarray   # (P,): network weights in [-2, 2]; a Gaussian log_std in [-1.5, 1.0]
    obs: np.ndarray     # (N, obs_dim) in [-3, 3]
    act: np.ndarray     # (N,) int64 in [0, A) or (N, A) float64 in [-3, 3]


@st.composite
def policy_cases(draw, theta_bound=THETA_BOUND, **pol_kw):
    """A :class:`PolicyCase`: a policy from :func:`policies`, its theta, a batch of states and actions."""
    pol = draw(policies(**pol_kw))
    n = draw(batch_sizes())
    theta_net = draw(thetas(pol.net.num_params, theta_bound))
    extra = draw(log_stds(pol.act_dim)) if not pol.discrete else np.zeros(0)
    obs = draw(observations(n, pol.obs_dim))
    act = draw(discrete_actions(n, pol.act_dim) if pol.discrete else box_actions(n, pol.act_dim))
    return PolicyCase(pol, np.concatenate([theta_net, extra]), obs, act)


@st.composite
def policy_specs(draw, kind=None, activation=None, max_hidden_layers=MAX_HIDDEN_LAYERS, max_width=MAX_WIDTH):
    """A :class:`PolicySpec`: categorical (2..4 actions) or Gaussian (1..4 dims) over a small MLP."""
    kind = kind if kind is not None else draw(st.sampled_from(("categorical", "gaussian")))
    act = activation if activation is not None else draw(st.sampled_from(ACTIVATIONS))
    sizes = draw(layer_sizes(min_out=2 if kind == "categorical" else 1, max_hidden_layers=max_hidden_layers,
                             max_width=max_width))
    return PolicySpec(kind, sizes[0], sizes[-1], tuple(sizes[1:-1]), act)


class EpisodeBatch(NamedTuple):
    rew: np.ndarray         # (T, E) rewards in [-10, 10]
    v: np.ndarray           # (T, E) V(s_t) in [-10, 10]
    v_next: np.ndarray      # (T, E) V of the state after step t (the final observation where an episode ended)
    terminated: np.ndarray  # (T, E) bool
    truncated: np.ndarray   # (T, E) bool; both flags may be set at once (terminated wins)


def _flags(draw, T, E):
    """(T, E) bool flags: none, all, sparse or half set, so episodes end at any step, the last included."""
    mode = draw(st.sampled_from(("none", "all", "sparse", "half")))
    if mode in ("none", "all"):
        return np.full((T, E), mode == "all")
    elems = st.booleans() if mode == "half" else st.sampled_from([True, False, False, False, False])
    return draw(hnp.arrays(np.bool_, (T, E), elements=elems))


@st.composite
def episode_batches(draw, max_T=8, max_E=3):
    """An :class:`EpisodeBatch` of ``T`` steps of ``E`` environment copies.

    Inside an episode ``v_next[t] = v[t + 1]``; where an episode ended (either flag), ``v_next`` is the value of
    the final observation, drawn independently, as after an auto-reset.
    """
    T, E = draw(st.integers(1, max_T)), draw(st.integers(1, max_E))
    rew = draw(st_matrix(T, E, 10.0))
    v = draw(st_matrix(T, E, 10.0))
    terminated = _flags(draw, T, E)
    truncated = _flags(draw, T, E)
    v_final = draw(st_matrix(T, E, 10.0))
    v_next = np.concatenate([v[1:], v_final[-1:]], axis=0)
    ended = terminated | truncated
    v_next = np.where(ended, v_final, v_next)
    return EpisodeBatch(rew, v, v_next, terminated, truncated)


@st.composite
def advantages(draw, n, bound=10.0):
    """Advantages (n,) in ``[-bound, bound]``; one draw in four is constant (standard deviation 0)."""
    if draw(st.integers(0, 3)) == 0:
        return np.full(n, draw(_floats(bound)))
    return draw(st_vector(n, bound))


@st.composite
def old_log_probs(draw, logp, spread=0.5):
    """``logp + u`` with ``u`` in ``[-spread, spread]``: ratios ``exp(-u)`` in [0.6, 1.65] by default, so both
    sides of a 0.2 clip are reached."""
    return logp + draw(st_vector(logp.shape[0], spread))


@st.composite
def hyperparameters(draw):
    """PPO / TRPO hyperparameters in their valid ranges (dict)."""
    return dict(gamma=draw(st.floats(0.0, 1.0)), gae_lambda=draw(st.floats(0.0, 1.0)),
                clip_range=draw(st.floats(0.01, 0.5)), beta=draw(st.floats(0.0, 10.0)),
                delta=draw(st.floats(1e-4, 0.1)), lr=draw(st.floats(1e-5, 1e-2)),
                max_grad_norm=draw(st.floats(0.05, 10.0)), ls_ratio=draw(st.floats(0.3, 0.9)),
                ls_max_steps=draw(st.integers(1, 12)))


class SPDSystem(NamedTuple):
    A: np.ndarray   # (n, n) symmetric positive definite, condition number <= 1e3
    b: np.ndarray   # (n,)


@st.composite
def spd_systems(draw, max_n=8, max_cond=1e3):
    """``A = Q diag(lam) Q^T`` with eigenvalues in ``[1, max_cond]`` and a random orthogonal ``Q``; ``b`` in [-1, 1]."""
    n = draw(st.integers(1, max_n))
    Q, _ = np.linalg.qr(draw(st_matrix(n, n, 1.0)) + n * np.eye(n))
    lam = draw(hnp.arrays(np.float64, (n,), elements=st.floats(1.0, max_cond)))
    A = (Q * lam) @ Q.T
    return SPDSystem(0.5 * (A + A.T), draw(st_vector(n, 1.0)))
