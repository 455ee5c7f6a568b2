"""Tests for purepg.pg.baselines: the variance-optimal baselines minimise what they claim to, and errors.

Each optimality claim is checked as a stationarity condition: the directional derivative of the
(weighted) variance, or second moment, at the returned b_k is zero. The quantities are quadratic in b, so
a central difference with step ``H_QUAD`` is exact up to rounding; ``1e-8 * (1 + f)`` bounds that
rounding for the bounded inputs below, while a wrong b_k moves the derivative by O(1).
"""
import re
from fractions import Fraction

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import example, given

from purepg.pg import baselines as bl
from helpers import finite_diff as fd

st_real = st.floats(-10.0, 10.0)
TOL = 1e-10  # formula comparisons: re-associated sums of <= 8 bounded terms round far below this


def close(a, b, tol=TOL):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def raises(exc, msg):
    return pytest.raises(exc, match=re.escape(msg))


def wmean(x, w):
    return w @ x / w.sum()


def wvar(x, w):
    return wmean((x - wmean(x, w)) ** 2, w)


@st.composite
def st_traj_stats(draw, centred=False):
    """G (n, P), R (n,), w (n,) with n in [2, 8], P in [1, 4]; entries bounded. ``centred`` shifts G so
    that E_w[g] = 0, the property exact enumeration has, which makes eq. (1) the variance minimiser."""
    n, P = draw(st.integers(2, 8)), draw(st.integers(1, 4))
    G = draw(hnp.arrays(np.float64, (n, P), elements=st.floats(-3, 3)))
    R = draw(hnp.arrays(np.float64, n, elements=st_real))
    w = draw(hnp.arrays(np.float64, n, elements=st.floats(0.01, 1.0)))
    if centred:
        G = G - wmean(G, w)  # (n, P)
    return G, R, w


def exact_ratio(w, g, R):
    """Eq. (1), ``sum_i w_i g_i^2 R_i / sum_i w_i g_i^2``, in exact rational arithmetic on the given floats,
    rounded once to float64: an oracle free of the underflow and overflow of ``g^2`` in float64."""
    w, g, R = ([Fraction(float(x)) for x in v] for v in (w, g, R))
    return float(sum(a * b * b * c for a, b, c in zip(w, g, R)) / sum(a * b * b for a, b in zip(w, g)))


def exact_rtg(scores, rtg, w=None):
    """Eq. (2) for one parameter, ``sum_i w_i S_i U_i / sum_i w_i S_i^2`` with ``S_i = sum_t g_it`` and
    ``U_i = sum_t g_it Q_it`` (``scores[i]``, ``rtg[i]``: (T_i,)), in exact rational arithmetic on the
    given floats, rounded once to float64; 0 where every ``S_i`` is 0 (the baseline's convention)."""
    F = lambda x: Fraction(float(x))  # noqa: E731
    w = [Fraction(1)] * len(scores) if w is None else [F(x) for x in w]
    S = [sum((F(g) for g in gs), Fraction(0)) for gs in scores]
    U = [sum((F(g) * F(q) for g, q in zip(gs, qs)), Fraction(0)) for gs, qs in zip(scores, rtg)]
    den = sum(a * x * x for a, x in zip(w, S))
    return float(sum(a * x * y for a, x, y in zip(w, S, U)) / den) if den else 0.0


# d/db of a quadratic in b: central differences are exact for any h except for rounding
# eps * |f| / h. f <= E[g^2] (|R| + |b|)^2 <= 9 * 20^2 ~ 4e3, so h = 1e-2 gives rounding ~1e-10;
# the test tolerance 1e-8 * (1 + f) is far below the 2 E[g^2] |b - b*| of a wrong baseline.
H_QUAD = 1e-2


@given(st_traj_stats(centred=True))
def test_optimal_baseline_minimises_weighted_variance(data):
    G, R, w = data
    b = bl.optimal_baseline(G, R, w)  # (P,)
    for k in range(G.shape[1]):
        g = G[:, k]

        def f(bk):
            return wvar(g * (R - bk), w)

        f_star = f(b[k])
        assert abs(fd.directional(f, b[k], 1.0, h=H_QUAD)) <= 1e-8 * (1 + f_star)
        for db in np.linspace(-5.0, 5.0, 21):  # Var(b) - Var(b*) = E_w[g^2] (b - b*)^2 exactly
            assert f(b[k] + db) >= f_star - 1e-9 * (1 + f_star)
            close(f(b[k] + db) - f_star, wmean(g * g, w) * db**2, 1e-8 * (1 + f_star))
        assert f_star <= f(0.0) + 1e-9 * (1 + f_star)
        assert f_star <= f(bl.mean_baseline(R, w)) + 1e-9 * (1 + f_star)


@given(st_traj_stats())
@example(
    data=(np.array([[2.64043035e-161],
            [2.64043035e-161]]), np.array([0.5, 0. ]), np.array([0.5, 0.5])),
).via('discovered failure')
@example(
    data=(np.array([[2.64043035e-161],
            [2.64043035e-161]]), np.array([0.5, 0.5]), np.array([1., 1.])),
).via('discovered failure')
def test_optimal_baseline_formula_and_second_moment_on_any_sample(data):
    G, R, w = data
    b = bl.optimal_baseline(G, R, w)
    for k in range(G.shape[1]):
        g2 = G[:, k] ** 2
        if not np.any((G[:, k] != 0) & (w > 0)):                # E_w[g_k^2] = 0 exactly
            assert b[k] == 0.0
            continue
        close(b[k], exact_ratio(w, G[:, k], R))                 # eq. (1) in exact rational arithmetic
        assert R.min() - TOL <= b[k] <= R.max() + TOL  # a g^2-weighted average of the returns
        m2 = lambda bk: wmean(g2 * (R - bk) ** 2, w)  # noqa: E731
        assert abs(fd.directional(m2, b[k], 1.0, h=H_QUAD)) <= 1e-8 * (1 + m2(b[k]))
    close(bl.optimal_baseline(G, R, 7.0 * w), b)  # weights need not be normalised
    close(bl.optimal_baseline(G, R), bl.optimal_baseline(G, R, np.ones_like(w)), 0)


@pytest.mark.parametrize("scale_exp", [-1074, -1060, -700, -540, -512, -250, 0, 250, 251, 500, 512, 540, 700, 1000])
def test_optimal_baselines_do_not_depend_on_the_scale_of_the_scores(scale_exp):
    """(1) and (2) are invariant to ``g_k -> c g_k`` (and ``w -> c w``). With scores and weights times a
    power of two ``c`` -- also where ``g^2`` underflows (a score of 1e-161 squares to a 9-bit subnormal) or
    overflows in float64 -- the baselines are the exact rational values of the scaled inputs, and those
    of the unscaled inputs where the scaling was exact; within ``2^+-250`` eq. (1) as written, bit for bit."""
    rng = np.random.default_rng(7)
    n, T, P = 6, 3, 3
    scores, rtg, w = rng.standard_normal((n, T, P)), rng.standard_normal((n, T)), rng.uniform(0.1, 1.0, n)
    scores[:, :, 2] = rng.choice([-1.0, 1.0], (n, T))   # a column of one magnitude: no entry far below the rest
    R = rtg[:, 0]
    G = scores[:, 0, :]                                  # (n, P): the per-trajectory g of eq. (1)
    c = 2.0 ** scale_exp
    Gc, sc, wc = G * c, scores * c, w * c if abs(scale_exp) <= 1000 else w
    b1, b2 = bl.optimal_baseline(Gc, R, wc), bl.optimal_baseline_rtg(sc, rtg, wc)
    for k in range(P):
        if np.any(Gc[:, k] != 0):
            close(b1[k], exact_ratio(wc, Gc[:, k], R), 1e-12)
        S = [sum(Fraction(float(x)) for x in sc[i, :, k]) for i in range(n)]
        U = [sum(Fraction(float(x)) * Fraction(float(q)) for x, q in zip(sc[i, :, k], rtg[i])) for i in range(n)]
        if any(S):
            W = [Fraction(float(x)) for x in wc]
            exact = sum(a * s * u for a, s, u in zip(W, S, U)) / sum(a * s * s for a, s in zip(W, S))
            close(b2[k], float(exact), 1e-12)
    np.testing.assert_allclose(bl.optimal_baseline_rtg(list(sc), list(rtg), wc), b2, rtol=1e-12)   # list form
    if np.array_equal(Gc / c, G) and np.array_equal(sc / c, scores):   # the scaling was exact
        np.testing.assert_allclose(b1, bl.optimal_baseline(G, R, w), rtol=1e-12)
        np.testing.assert_allclose(b2, bl.optimal_baseline_rtg(scores, rtg, w), rtol=1e-12)
    if abs(scale_exp) <= 250:                            # no rescaling: eq. (1) as written, bit for bit
        G2 = Gc * Gc
        np.testing.assert_array_equal(b1, (wc @ (G2 * R[:, None])) / (wc @ G2))


def test_optimal_baseline_zero_score_parameter_is_zero_and_hand_value():
    G = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    R = np.array([3.0, 1.0, 100.0])
    # k = 0: (1 * 3 + 4 * 1) / (1 + 4) = 7 / 5; k = 1: no score anywhere -> 0 by convention
    close(bl.optimal_baseline(G, R), [1.4, 0.0], 1e-15)
    close(bl.optimal_baseline(G, R, [0.5, 0.25, 0.25]), [(0.5 * 3 + 0.25 * 4) / (0.5 + 0.25 * 4), 0.0], 1e-15)


def test_mean_baseline():
    assert bl.mean_baseline([1.0, 2.0, 6.0]) == 3.0
    close(bl.mean_baseline([1.0, 2.0, 6.0], [0.5, 0.5, 0.0]), 1.5, 1e-15)


def two_step_bandit(logits, r):
    """Every trajectory of a 2-step softmax bandit: per-step scores e_a - p, probabilities, rewards."""
    p = np.exp(logits - logits.max())
    p /= p.sum()  # (A,)
    A = p.size
    scores, rtg, R, w = [], [], [], []
    for a1 in range(A):
        for a2 in range(A):
            s = np.eye(A)[[a1, a2]] - p  # (2, A): grad of log softmax w.r.t. the logits
            scores.append(s)
            rtg.append(np.array([r[a1] + r[a2], r[a2]]))
            R.append(r[a1] + r[a2])
            w.append(p[a1] * p[a2])
    return np.array(scores), np.array(rtg), np.array(R), np.array(w)


@given(hnp.arrays(np.float64, st.integers(2, 4), elements=st.floats(-2, 2)),
       hnp.arrays(np.float64, 4, elements=st_real))
def test_optimal_baselines_minimise_exact_variance_on_enumerated_bandit(logits, r):
    scores, rtg, R, w = two_step_bandit(logits, r[: logits.size])
    assert np.abs(w @ scores.sum(axis=1)).max() < 1e-12  # E[g] = 0: exact expectations
    b_tot = bl.optimal_baseline(scores.sum(axis=1), R, w)
    b_rtg = bl.optimal_baseline_rtg(scores, rtg, w)
    for k in range(logits.size):
        S = scores[:, :, k].sum(axis=1)  # (n,)
        v_tot = lambda b: wvar(S * (R - b), w)  # noqa: E731
        v_rtg = lambda b: wvar((scores[:, :, k] * (rtg - b)).sum(axis=1), w)  # noqa: E731
        for f, bk in ((v_tot, b_tot[k]), (v_rtg, b_rtg[k])):
            assert abs(fd.directional(f, bk, 1.0, h=H_QUAD)) <= 1e-8 * (1 + f(bk))
            assert all(f(bk + db) >= f(bk) - 1e-9 * (1 + f(bk)) for db in np.linspace(-5, 5, 21))
        assert v_tot(b_tot[k]) <= v_tot(bl.mean_baseline(R, w)) + 1e-9 * (1 + v_tot(0.0))


@given(st_traj_stats(), st.integers(1, 5))
def test_optimal_baseline_rtg_reduces_to_total_when_q_is_constant(data, T):
    G, R, w = data
    scores = np.repeat(G[:, None, :] / T, T, axis=1)  # (n, T, P), summing to G over t (to rounding)
    if not np.allclose(scores.sum(axis=1), G, rtol=1e-12, atol=0):   # G / T underflowed (subnormal G):
        scores = np.zeros_like(scores)                                # the whole score in the first step
        scores[:, 0] = G
    close(bl.optimal_baseline_rtg(scores, np.repeat(R[:, None], T, axis=1), w), bl.optimal_baseline(G, R, w))


@given(st.data())
def test_optimal_baseline_rtg_list_equals_zero_padded_array_and_formula(data):
    n, P = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 3))
    lens = data.draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))
    scores = [data.draw(hnp.arrays(np.float64, (L, P), elements=st.floats(-3, 3))) for L in lens]
    rtg = [data.draw(hnp.arrays(np.float64, L, elements=st_real)) for L in lens]
    Tm = max(lens)
    pad_s = np.zeros((n, Tm, P))
    pad_q = np.full((n, Tm), 123.0)  # any finite padding: multiplied by zero scores
    for i, L in enumerate(lens):
        pad_s[i, :L], pad_q[i, :L] = scores[i], rtg[i]
    b = bl.optimal_baseline_rtg(scores, rtg)
    close(bl.optimal_baseline_rtg(pad_s, pad_q), b)
    S = np.array([s.sum(axis=0) for s in scores])  # (n, P)
    U = np.array([q @ s for s, q in zip(scores, rtg)])  # (n, P)
    for k in range(P):
        close(b[k], exact_rtg([s[:, k] for s in scores], rtg))   # eq. (2) in exact rational arithmetic
        m2 = lambda bk: np.mean((U[:, k] - bk * S[:, k]) ** 2)  # noqa: E731  second moment, eq. (2)
        assert abs(fd.directional(m2, b[k], 1.0, h=H_QUAD)) <= 1e-8 * (1 + m2(b[k]))


# ----------------------------------------------------------------------------- bad input


def test_baseline_input_errors():
    G, R = np.ones((3, 2)), np.arange(3.0)
    with raises(ValueError, "R: expected the shape of G's trajectory axis, (3,), got (2,)"):
        bl.optimal_baseline(G, R[:2])
    with raises(ValueError, "G: expected 2 dimension(s), got shape (3,)"):
        bl.optimal_baseline(R, R)
    with raises(ValueError, "G: expected at least one trajectory, got none"):
        bl.optimal_baseline(np.zeros((0, 2)), np.zeros(0))
    with raises(ValueError, "R: expected at least one return, got an empty array"):
        bl.mean_baseline([])
    with raises(ValueError, "weights: expected values >= 0 with a positive sum, got min -0.5 and sum 0.5. Fix: pass"):
        bl.optimal_baseline(G, R, [0.5, 0.5, -0.5])
    with raises(ValueError, "weights: expected values >= 0 with a positive sum, got min 0.0 and sum 0.0"):
        bl.mean_baseline(R, np.zeros(3))
    with raises(ValueError, "weights: expected the shape of the trajectory axis, (3,), got (2,)"):
        bl.mean_baseline(R, [0.5, 0.5])
    with raises(ValueError, "weights: expected finite values, got nan at index (0,)"):
        bl.optimal_baseline(G, R, [np.nan, 1.0, 1.0])


def test_rtg_baseline_input_errors():
    s, q = [np.ones((3, 2)), np.ones((2, 2))], [np.ones(3), np.ones(2)]
    with raises(ValueError, "rtg: expected a list with one (T_i,) array per entry of scores (2 trajectories"):
        bl.optimal_baseline_rtg(s, q[:1])
    with raises(ValueError, "got ndarray. Fix: pass matching lists."):
        bl.optimal_baseline_rtg(s, np.ones((2, 3)))
    with raises(ValueError, "(0 trajectories, at least 1), got 0 entries"):
        bl.optimal_baseline_rtg([], [])
    with raises(ValueError, "rtg[1]: expected the shape of scores[1]'s time axis, (2,), got (3,)"):
        bl.optimal_baseline_rtg(s, [np.ones(3), np.ones(3)])
    with raises(ValueError, "scores: expected one parameter count P in every trajectory, got [2, 3]. Fix: pass"):
        bl.optimal_baseline_rtg([np.ones((3, 2)), np.ones((2, 3))], q)
    with raises(ValueError, "rtg: expected the shape of scores' first two axes, (2, 3), got (2, 2)"):
        bl.optimal_baseline_rtg(np.ones((2, 3, 4)), np.ones((2, 2)))
    with raises(ValueError, "scores: expected at least one trajectory, got 0. Fix: pass a non-empty batch."):
        bl.optimal_baseline_rtg(np.ones((0, 3, 4)), np.ones((0, 3)))
    with raises(ValueError, "scores[0]: expected finite values, got inf at index (1, 0)"):
        bl.optimal_baseline_rtg([np.array([[0.0, 1.0], [np.inf, 0.0]])], [np.ones(2)])
