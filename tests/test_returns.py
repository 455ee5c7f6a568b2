"""Tests for purepg.pg.returns: the kernels against independent sums, closed forms, identities, errors.

Tolerances. Every comparison here is with an independent formula (the NumPy reference backend, which is
the definition as a matrix product; the closed-form GAE sum; a per-episode recomputation) and
re-associates sums of at most ~30 terms of size <= 10 on the bounded inputs below: rounding is
~10 * 30 * 30 * 2.2e-16 ~ 2e-12, so ``atol = 1e-10`` leaves a wide margin while any wrong term
(O(1e-2) or more) fails. The tight kernel-versus-reference bounds are in ``tests/test_kernels.py``.
"""
import re

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from purepg.pg import returns as rt

TOL = 1e-10  # independent-formula comparisons, see the module docstring


def close(a, b, tol=TOL):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- strategies

st_unit = st.floats(0.0, 1.0)
st_real = st.floats(-10.0, 10.0)


@st.composite
def st_batch(draw, max_T=12, max_E=4):
    """A (T, E) batch obeying the layout contract: v_next[t] == v[t+1] while the episode goes on,
    free finite values at boundaries and at t = T-1 (bootstraps, or ignored where terminated)."""
    T, E = draw(st.integers(1, max_T)), draw(st.integers(1, max_E))
    arr = hnp.arrays(np.float64, (T, E), elements=st_real)
    rew, v, v_next = draw(arr), draw(arr), draw(arr)
    term, trunc = draw(hnp.arrays(np.bool_, (T, E))), draw(hnp.arrays(np.bool_, (T, E)))
    inside = ~(term | trunc)[:-1]  # (T-1, E): step t is followed by step t+1 of the same episode
    v_next[:-1][inside] = v[1:][inside]
    return dict(rew=rew, v=v, v_next=v_next, terminated=term, truncated=trunc)


def segments(done_col):
    """(start, end) index pairs of the episode segments of one env column (end inclusive)."""
    ends = [t for t in range(len(done_col)) if done_col[t] or t == len(done_col) - 1]
    starts = [0] + [e + 1 for e in ends[:-1]]
    return list(zip(starts, ends))


def td_residual(b, gamma):
    return b["rew"] + gamma * (1.0 - b["terminated"]) * b["v_next"] - b["v"]  # (T, E)


# ----------------------------------------------------------------------------- discounted sums


@given(hnp.arrays(np.float64, st.integers(0, 30), elements=st_real), st_unit)
def test_discount_cumsum_kernel_matches_the_definition(x, gamma):
    y = rt.discount_cumsum(x, gamma)  # eq. (2), the recursion (kernel)
    close(y, rt.discount_cumsum(x, gamma, backend="numpy"))  # eq. (1) as a matrix product (reference)
    close(y, [sum(gamma ** (k - t) * x[k] for k in range(t, x.size)) for t in range(x.size)])  # eq. (1) term by term


def test_discount_cumsum_hand_values():
    close(rt.discount_cumsum([1.0, 2.0, 3.0], 0.5), [2.75, 3.5, 3.0], 0)
    close(rt.discount_cumsum([1.0, 2.0, 3.0], 1.0), [6.0, 5.0, 3.0], 0)
    close(rt.discount_cumsum([1.0, 2.0, 3.0], 0.0), [1.0, 2.0, 3.0], 0)
    assert rt.discount_cumsum(np.zeros(0), 0.9).shape == (0,)


@given(hnp.arrays(np.float64, st.integers(1, 30), elements=st_real), st_unit)
def test_total_return_and_reward_to_go(rew, gamma):
    direct = sum(gamma**t * r for t, r in enumerate(rew))
    assert abs(rt.total_return(rew, gamma) - direct) <= TOL * (1 + abs(direct))
    q = rt.reward_to_go(rew, gamma)
    direct_q = [sum(gamma**k * r for k, r in enumerate(rew[t:])) for t in range(rew.size)]
    close(q, direct_q)                      # every Q_t from its own sum, not only Q_0 = total_return
    close(q[:-1], rew[:-1] + gamma * q[1:])  # eq. (2)
    assert q[-1] == rew[-1]


def test_total_return_defaults_to_undiscounted_and_empty_is_zero():
    assert rt.total_return([1.0, 2.0, 3.0]) == 6.0
    close(rt.reward_to_go([1.0, 2.0, 3.0]), [6.0, 5.0, 3.0], 0)
    assert rt.total_return([]) == 0.0


# ----------------------------------------------------------------------------- hand-written episodes
# env 0: terminated at t = 2 (v_next[2] = 99 must be ignored), then an episode cut by the batch end.
# env 1: truncated at t = 1 with V(s_final) = 4, then an episode terminated at t = 4 (v_next 7 ignored).
HAND = dict(
    rew=np.array([[1.0, 1.0], [2.0, 0.0], [3.0, -1.0], [4.0, 2.0], [5.0, 1.0]]),
    v=np.array([[0.5, 1.0], [1.0, 2.0], [1.5, 0.0], [2.0, 1.0], [2.5, 3.0]]),
    v_next=np.array([[1.0, 2.0], [1.5, 4.0], [99.0, 1.0], [2.5, 3.0], [3.0, 7.0]]),
    terminated=np.array([[0, 0], [0, 0], [1, 0], [0, 0], [0, 1]], dtype=bool),
    truncated=np.array([[0, 0], [0, 1], [0, 0], [0, 0], [0, 0]], dtype=bool),
)
# gamma = 0.5: delta = r + 0.5 (1 - term) v_next - v, by hand:
DELTA_HALF = np.array([[1.0, 1.0], [1.75, 0.0], [1.5, -0.5], [3.25, 2.5], [4.0, -2.0]])
# bootstrapped MC returns, gamma = 0.5: env 0 G2 = 3, G1 = 2 + 1.5, G0 = 1 + 1.75, G4 = 5 + 1.5,
# G3 = 4 + 3.25; env 1 G1 = 0 + 2, G0 = 1 + 1, G4 = 1, G3 = 2 + 0.5, G2 = -1 + 1.25.
G_HALF = np.array([[2.75, 2.0], [3.5, 2.0], [3.0, 0.25], [7.25, 2.5], [6.5, 1.0]])
# undiscounted: env 0 6, 5, 3 | 12, 8; env 1 1 + 4, 4 | 2, 3, 1.
G_ONE = np.array([[6.0, 5.0], [5.0, 4.0], [3.0, 2.0], [12.0, 3.0], [8.0, 1.0]])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_hand_episode_returns(backend):
    h = HAND
    args = (h["rew"], h["terminated"], h["truncated"], h["v_next"])
    close(rt.discounted_returns(*args, 0.5, backend=backend), G_HALF, 0)
    close(rt.discounted_returns(*args, 1.0, backend=backend), G_ONE, 0)
    close(rt.discounted_returns(*args, 0.0, backend=backend), h["rew"], 0)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize(
    "gamma, lam, adv",
    [  # gamma lam = 0.25: env 0 A4 = 4, A3 = 3.25 + 1, A2 = 1.5, A1 = 1.75 + 0.375, A0 = 1 + 0.53125;
        # env 1 A4 = -2, A3 = 2.5 - 0.5, A2 = -0.5 + 0.5, A1 = 0 (truncated), A0 = 1 + 0.
        (0.5, 0.5, [[1.53125, 1.0], [2.125, 0.0], [1.5, 0.0], [4.25, 2.0], [4.0, -2.0]]),
        (0.5, 1.0, G_HALF - HAND["v"]),  # lam = 1: MC return minus V
        (0.5, 0.0, DELTA_HALF),  # lam = 0: the TD residual
        (1.0, 1.0, G_ONE - HAND["v"]),
        (0.0, 0.7, HAND["rew"] - HAND["v"]),  # gamma = 0: no bootstrap at all
    ],
)
def test_hand_episode_gae(backend, gamma, lam, adv):
    h = HAND
    out = rt.gae(h["rew"], h["v"], h["v_next"], h["terminated"], h["truncated"], gamma, lam, backend=backend)
    close(out.adv, adv, 1e-15)
    close(out.ret, np.asarray(adv) + h["v"], 1e-15)


def test_hand_episode_gae_closed_form_irrational_weights():
    """gamma = 0.9, lam = 0.95: eq. (5) written out per segment."""
    h, g, gl = HAND, 0.9, 0.9 * 0.95
    d = h["rew"] + g * (1 - h["terminated"]) * h["v_next"] - h["v"]
    e0 = [d[0, 0] + gl * d[1, 0] + gl**2 * d[2, 0], d[1, 0] + gl * d[2, 0], d[2, 0],
          d[3, 0] + gl * d[4, 0], d[4, 0]]
    e1 = [d[0, 1] + gl * d[1, 1], d[1, 1], d[2, 1] + gl * d[3, 1] + gl**2 * d[4, 1],
          d[3, 1] + gl * d[4, 1], d[4, 1]]
    adv, ret = rt.gae(h["rew"], h["v"], h["v_next"], h["terminated"], h["truncated"], g, 0.95)
    close(adv, np.array([e0, e1]).T)
    close(ret, adv + h["v"], 0)
    assert d[1, 1] == 0.0 + g * 4.0 - 2.0 and d[2, 0] == 3.0 - 1.5  # truncated bootstraps, terminated not


def test_truncated_bootstraps_and_terminated_does_not():
    h = dict(HAND)
    flipped = dict(h, terminated=h["truncated"].copy(), truncated=h["terminated"].copy())
    a = rt.gae(**h, gamma=0.9, lam=0.8).adv
    b = rt.gae(**flipped, gamma=0.9, lam=0.8).adv
    # env 1, t = 1 now terminated: loses gamma V(s_final) = 0.9 * 4; env 0, t = 2 now truncated: gains 0.9 * 99
    close(b[1, 1] - a[1, 1], -0.9 * 4.0)
    close(b[2, 0] - a[2, 0], 0.9 * 99.0)


# ----------------------------------------------------------------------------- batched, Hypothesis


@given(st_batch(), st_unit, st_unit)
def test_batched_kernels_match_the_segment_sums(b, gamma, lam):
    """The recursions (4) and (6) against the independent references: the same sums as matrix products."""
    g_nb = rt.discounted_returns(b["rew"], b["terminated"], b["truncated"], b["v_next"], gamma)
    g_np = rt.discounted_returns(b["rew"], b["terminated"], b["truncated"], b["v_next"], gamma, backend="numpy")
    close(g_nb, g_np)
    out_nb, out_np = rt.gae(**b, gamma=gamma, lam=lam), rt.gae(**b, gamma=gamma, lam=lam, backend="numpy")
    close(out_nb.adv, out_np.adv)
    close(out_nb.ret, out_np.ret)


@given(st_batch(), st_unit)
def test_gae_identities_lam_one_and_zero(b, gamma):
    G = rt.discounted_returns(b["rew"], b["terminated"], b["truncated"], b["v_next"], gamma)
    adv1, ret1 = rt.gae(**b, gamma=gamma, lam=1.0)
    close(adv1, G - b["v"])
    close(ret1, G)
    close(rt.gae(**b, gamma=gamma, lam=0.0).adv, td_residual(b, gamma))


@given(st_batch(), st_unit, st_unit)
def test_gae_equals_closed_form_sum_per_segment(b, gamma, lam):
    adv = rt.gae(**b, gamma=gamma, lam=lam).adv
    d = td_residual(b, gamma)
    for e in range(adv.shape[1]):
        for s, end in segments(b["terminated"][:, e] | b["truncated"][:, e]):
            for t in range(s, end + 1):
                expected = sum((gamma * lam) ** l * d[t + l, e] for l in range(end - t + 1))  # eq. (5)
                close(adv[t, e], expected)


@given(st_batch(), st_unit)
def test_returns_restart_at_boundaries_as_single_trajectories(b, gamma):
    """Each segment equals reward_to_go of its rewards with the bootstrap folded into the last reward."""
    G = rt.discounted_returns(b["rew"], b["terminated"], b["truncated"], b["v_next"], gamma)
    for e in range(G.shape[1]):
        for s, end in segments(b["terminated"][:, e] | b["truncated"][:, e]):
            r = b["rew"][s:end + 1, e].copy()
            r[-1] += 0.0 if b["terminated"][end, e] else gamma * b["v_next"][end, e]
            close(G[s:end + 1, e], rt.reward_to_go(r, gamma))


@given(st_batch(), st_unit, st_unit, hnp.arrays(np.float64, 1, elements=st_real))
def test_terminated_v_next_is_ignored_and_columns_are_independent(b, gamma, lam, junk):
    out = rt.gae(**b, gamma=gamma, lam=lam)
    changed = dict(b, v_next=np.where(b["terminated"], junk[0] + 1e3, b["v_next"]))
    close(rt.gae(**changed, gamma=gamma, lam=lam).adv, out.adv, 0)
    for e in range(out.adv.shape[1]):
        col = {k: a[:, e] for k, a in b.items()}  # 1-D input: one trajectory
        close(rt.gae(**col, gamma=gamma, lam=lam).adv, out.adv[:, e], 0)


# ----------------------------------------------------------------------------- bad input


def raises(exc, msg):
    return pytest.raises(exc, match=re.escape(msg))


def hand(**changes):
    return dict(HAND, **changes)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_gamma_and_lam_outside_unit_interval(bad):
    with raises(ValueError, f"gamma: expected a finite number in [0, 1], got {bad!r}. Fix: pass a float such as 0.99"):
        rt.gae(**HAND, gamma=bad, lam=0.9)
    with raises(ValueError, f"lam: expected a finite number in [0, 1], got {bad!r}"):
        rt.gae(**HAND, gamma=0.9, lam=bad)
    with raises(ValueError, f"gamma: expected a finite number in [0, 1], got {bad!r}"):
        rt.discount_cumsum([1.0], bad)
    with raises(ValueError, f"gamma: expected a finite number in [0, 1], got {bad!r}"):
        rt.discounted_returns(HAND["rew"], HAND["terminated"], HAND["truncated"], HAND["v_next"], bad)


@pytest.mark.parametrize("bad", ["0.9", True, None])
def test_gamma_of_wrong_type(bad):
    with raises(TypeError, f"gamma: expected a finite number in [0, 1], got {type(bad).__name__} {bad!r}"):
        rt.reward_to_go([1.0], bad)


def test_mismatched_shapes():
    with raises(ValueError, "v: expected the shape of rew, (5, 2), got (4, 2). Fix: pass one entry per entry"):
        rt.gae(**hand(v=HAND["v"][:4]), gamma=0.9, lam=0.9)
    with raises(ValueError, "v_next: expected the shape of rew, (5, 2), got (5, 1)"):
        rt.discounted_returns(HAND["rew"], HAND["terminated"], HAND["truncated"], HAND["v_next"][:, :1], 0.9)
    with raises(ValueError, "truncated: expected the shape of rew, (5, 2), got (5,)"):
        rt.gae(**hand(truncated=HAND["truncated"][:, 0]), gamma=0.9, lam=0.9)
    with raises(ValueError, "rew: expected 1 or 2 dimension(s), got shape (5, 2, 1)"):
        rt.gae(**hand(rew=HAND["rew"][..., None]), gamma=0.9, lam=0.9)
    with raises(ValueError, "x: expected 1 dimension(s), got shape (5, 2)"):
        rt.discount_cumsum(HAND["rew"], 0.9)


@pytest.mark.parametrize("name", ["rew", "v", "v_next"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rewards_and_values(name, bad):
    a = HAND[name].copy()
    a[3, 1] = bad
    with raises(ValueError, f"{name}: expected finite values, got {bad} at index (3, 1). Fix: remove or replace"):
        rt.gae(**hand(**{name: a}), gamma=0.9, lam=0.9)
    with raises(ValueError, f"rew: expected finite values, got {bad} at index (1,)"):
        rt.reward_to_go([0.0, bad])


def test_flags_must_read_as_bool():
    ints = HAND["terminated"].astype(np.int64)
    floats = HAND["truncated"].astype(np.float64)
    close(rt.gae(**hand(terminated=ints, truncated=floats), gamma=0.9, lam=0.9).adv,
          rt.gae(**HAND, gamma=0.9, lam=0.9).adv, 0)
    ints[2, 1] = 2
    with raises(ValueError, "terminated: expected booleans (or 0/1), got 2 at index (2, 1). Fix: pass a bool"):
        rt.gae(**hand(terminated=ints), gamma=0.9, lam=0.9)
    floats[0, 0] = 0.5
    with raises(ValueError, "truncated: expected booleans (or 0/1), got 0.5 at index (0, 0)"):
        rt.discounted_returns(HAND["rew"], HAND["terminated"], floats, HAND["v_next"], 0.9)
    with raises(ValueError, "terminated: expected booleans, got dtype <U1. Fix: pass a bool array."):
        rt.gae(**hand(terminated=np.full((5, 2), "n")), gamma=0.9, lam=0.9)


def test_non_numeric_arrays_and_backend():
    with raises(TypeError, "rew: expected an array of real numbers, got dtype <U1. Fix: pass a float64 array."):
        rt.reward_to_go(["a", "b"])
    with raises(ValueError, "backend: expected one of ('numba', 'numpy'), got 'torch'. Fix: use 'numba'"):
        rt.gae(**HAND, gamma=0.9, lam=0.9, backend="torch")
