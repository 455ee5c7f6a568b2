"""Tests of purepg.env.normalize: Chan et al.'s merge, the normalisation, checkpoints, bad input."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purepg.env import normalize as nz

# Observations: entries in [-1e3, 1e3] around a common offset in [-1e4, 1e4] (|mean| >> std is the
# case the merge formula is there for). Rows 1..40, columns 1..4.
st_offset = st.floats(-1e4, 1e4)


@st.composite
def st_data_and_cuts(draw, d=None):
    """``(X (N, d), cut points)``: a data set and a split of its rows into consecutive batches."""
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4)) if d is None else d
    X = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-1e3, 1e3))) + draw(st_offset)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return X, cuts


def fold(X, cuts):
    """Statistics built by :func:`update` over the batches ``X[cuts[i]:cuts[i+1]]`` (empty ones too)."""
    s = nz.init(X.shape[1])
    for lo, hi in zip([0] + cuts, cuts + [X.shape[0]]):
        s = nz.update(s, X[lo:hi])
    return s


# Tolerances. np.mean / np.var are the at-once reference. Each merge adds O(eps) relative error to
# the mean and O(eps) relative error (w.r.t. var + mean^2 * eps) to the variance; with <= 7 merges
# and |x| <= 1.1e4, the mean agrees to ~1e-15 * 1e4 * 7 ~ 1e-10 absolute, and the variance (scale up
# to ~1e6) to ~1e-9 relative plus an absolute 1e-6 for the cancellation in x - mean at |x| ~ 1e4.
# A wrong merge (missing delta^2 term, n_a/n_b swapped) is off by O(1) relative.
@given(st_data_and_cuts())
def test_merging_in_batches_equals_computing_at_once(data):
    X, cuts = data
    s = fold(X, cuts)
    assert s.count == X.shape[0]
    np.testing.assert_allclose(s.mean, X.mean(axis=0), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(s.var, X.var(axis=0), rtol=1e-9, atol=1e-6)


@given(st.integers(1, 4).flatmap(lambda d: st.tuples(st_data_and_cuts(d), st_data_and_cuts(d))))
def test_merge_is_symmetric_and_has_the_empty_set_as_identity(pair):
    a, b = fold(*pair[0]), fold(*pair[1])
    ab, ba = nz.merge(a, b), nz.merge(b, a)
    assert ab.count == ba.count == a.count + b.count
    np.testing.assert_allclose(ab.mean, ba.mean, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(ab.var, ba.var, rtol=1e-9, atol=1e-6)
    e = nz.init(a.mean.shape[0])
    for s in (nz.merge(e, a), nz.merge(a, e)):
        assert s.count == a.count
        np.testing.assert_allclose(s.mean, a.mean, rtol=1e-15, atol=0)
        np.testing.assert_allclose(s.var, a.var, rtol=1e-14, atol=0)


def test_merge_by_hand():
    # A = {0, 2}: mean 1, var 1. B = {4}: mean 4, var 0. Union {0, 2, 4}: mean 2, var 8/3.
    a = nz.update(nz.init(1), np.array([[0.0], [2.0]]))
    s = nz.update(a, np.array([[4.0]]))
    assert (a.count, a.mean[0], a.var[0]) == (2, 1.0, 1.0)
    assert s.count == 3 and s.mean[0] == 2.0
    assert s.var[0] == pytest.approx(8.0 / 3.0, rel=1e-15)


def test_empty_batch_leaves_the_statistics_unchanged():
    s = nz.update(nz.init(3), np.arange(6.0).reshape(2, 3))
    assert nz.update(s, np.zeros((0, 3))) is s


def test_normalize_formula_clip_and_floor():
    s = nz.RunningStats(5, np.array([1.0, -2.0, 3.0]), np.array([4.0, 0.25, 0.0]))
    x = np.array([[3.0, -1.0, 3.0], [1.0, 100.0, 3.5]])
    z = nz.normalize(s, x, clip=None)
    # eq. (4) by hand: (3-1)/sqrt(4+1e-8), (-1+2)/sqrt(.25+1e-8), constant coordinate -> 0.
    np.testing.assert_allclose(z[0], [2 / np.sqrt(4 + 1e-8), 1 / np.sqrt(0.25 + 1e-8), 0.0], rtol=1e-15)
    assert z[1, 2] == pytest.approx(0.5 / np.sqrt(nz.VAR_FLOOR), rel=1e-15)   # 5000: floor, not inf
    zc = nz.normalize(s, x, clip=10.0)
    np.testing.assert_array_equal(zc, np.clip(z, -10, 10))
    assert zc[1, 1] == 10.0 and zc[1, 2] == 10.0


@given(st_data_and_cuts())
def test_normalised_data_has_zero_mean_and_unit_variance(data):
    X, cuts = data
    s = fold(X, cuts)
    z = nz.normalize(s, X, clip=None)
    # mean of z is 0 up to rounding of (x - mean) at |x| ~ 1e4 divided by std (>= 1e-4 by the floor):
    # relative to the column's scale sqrt(var + floor) this is ~1e-12 * |x| / std; we check the
    # identities z_mean = 0 and z_var = var / (var + floor) where the column is not near-constant.
    keep = X.std(axis=0) > 1e-3
    np.testing.assert_allclose(z.mean(axis=0)[keep], 0.0, atol=1e-6)
    np.testing.assert_allclose(z.var(axis=0)[keep], (s.var / (s.var + nz.VAR_FLOOR))[keep], rtol=1e-6)


def test_to_dict_from_dict_round_trip_through_npz(tmp_path):
    s = nz.update(nz.init(2), np.array([[1.0, 2.0], [3.0, 5.0], [0.5, -1.0]]))
    np.savez(tmp_path / "n.npz", **nz.to_dict(s))
    with np.load(tmp_path / "n.npz", allow_pickle=False) as f:
        r = nz.from_dict(dict(f))
    assert r.count == s.count and isinstance(r.count, int)
    np.testing.assert_array_equal(r.mean, s.mean)
    np.testing.assert_array_equal(r.var, s.var)


@pytest.mark.parametrize("d, match", [
    ({"mean": np.zeros(2), "var": np.ones(2)}, "normaliser state: expected the keys count, mean, var, got \\['mean', 'var'\\]"),
    ({"count": np.array(-1), "mean": np.zeros(2), "var": np.ones(2)}, "count: expected an integer >= 0, got array\\(-1\\)"),
    ({"count": np.array(1.5), "mean": np.zeros(2), "var": np.ones(2)}, "count: expected an integer >= 0"),
    ({"count": np.array(3), "mean": np.zeros(2), "var": np.ones(3)}, "one equal shape"),
    ({"count": np.array(3), "mean": np.zeros(2), "var": -np.ones(2)}, "expected finite values with var >= 0"),
    ({"count": np.array(3), "mean": np.array([0.0, np.nan]), "var": np.ones(2)}, "expected finite values with var"),
])
def test_from_dict_rejects_corrupt_states(d, match):
    with pytest.raises(ValueError, match=match):
        nz.from_dict(d)


def test_bad_input_messages():
    s = nz.init(3)
    with pytest.raises(ValueError, match=r"dim: expected an integer >= 1.*got 0"):
        nz.init(0)
    with pytest.raises(ValueError, match=r"x_batch: expected shape \(N, 3\).*got shape \(4, 2\)"):
        nz.update(s, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"x_batch: expected shape \(N, 3\).*got shape \(3,\)"):
        nz.update(s, np.zeros(3))
    with pytest.raises(ValueError, match=r"clip: expected a positive number or None, got -1"):
        nz.normalize(s, np.zeros((1, 3)), clip=-1.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 3\), got \(2, 4\)"):
        nz.normalize(s, np.zeros((2, 4)))


# ----------------------------------------------------------------------------- reward scaling
@st.composite
def st_reward_sequence(draw):
    """(gamma, rewards (T, E), done flags (T, E)) with rewards over six orders of magnitude."""
    T, E = draw(st.integers(1, 30)), draw(st.integers(1, 4))
    r = draw(hnp.arrays(np.float64, (T, E), elements=st.floats(-1e3, 1e3)))
    done = draw(hnp.arrays(np.bool_, (T, E)))
    return draw(st.floats(0.0, 1.0)), r, done


def _scaled_by_hand(gamma, r, done, clip=10.0):
    """Eqs. (5)-(7) written out: every return R_t^e kept in a list, the variance taken over the list.

    Returns the scaled rewards (T, E), every return seen, the last returns (E,) and the variance
    sigma_t^2 each step t divided by (T,)."""
    T, E = r.shape
    R, seen, out, var = np.zeros(E), [], np.empty((T, E)), np.empty(T)
    for t in range(T):
        R = gamma * R + r[t]                                       # eq. (5)
        seen.extend(R)
        var[t] = np.var(np.array(seen))                            # eq. (6), at once
        out[t] = np.clip(r[t] / np.sqrt(var[t] + nz.VAR_FLOOR), -clip, clip)   # eq. (7)
        R = np.where(done[t], 0.0, R)                              # a new episode starts at 0
    return out, np.array(seen), R, var


# Tolerance: eq. (6) by merges against np.var at once differs by ~1e-15 relative per merge (<= 30
# merges, returns up to ~3e4): the scaled rewards agree to 1e-9 relative; a wrong order of the
# steps (scale before merge, reset before scale) changes them by O(1).
@given(st_reward_sequence())
def test_reward_scaling_follows_eqs_5_to_7(case):
    gamma, r, done = case
    rs = nz.return_scale_init(r.shape[1], gamma)
    got = []
    for t in range(r.shape[0]):
        rs, s = nz.scale_rewards(rs, r[t], done[t])
        got.append(s)
    want, seen, R, _ = _scaled_by_hand(gamma, r, done)
    np.testing.assert_allclose(np.array(got), want, rtol=1e-9, atol=1e-12)
    assert rs.stats.count == seen.size and rs.gamma == gamma
    np.testing.assert_allclose(rs.stats.var[0], seen.var(), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(rs.ret, R)


@given(st_reward_sequence(), st.floats(0.01, 100.0))
def test_reward_scaling_removes_the_reward_unit(case, c):
    """Rewards in other units (times c > 0) give the same scaled rewards: the point of eq. (7), up to
    the floor VAR_FLOOR. Step t divides by sqrt(sigma_t^2 + VAR_FLOOR) with the variance *so far*, so
    the floor matters wherever that running variance is small -- at the first step it is 0 when E = 1,
    however much the returns vary later. In units c the divisor is sqrt(c^2 sigma_t^2 + VAR_FLOOR), so
    b_t / a_t = sqrt((sigma_t^2 + f) / (sigma_t^2 + f / c^2)), f = VAR_FLOOR, which differs from 1 by at
    most f / (2 sigma_t^2 min(c, 1)^2) <= 5e-7 where sigma_t^2 min(c, 1)^2 >= 1e-2; clipping is
    1-Lipschitz, so it cannot widen the gap. Rounding of eq. (6) (returns up to
    ~3e4 with std >= 0.1) is <~ u |mean| / std < 1e-10 relative. Hence rtol 1e-6 on those steps.
    On the other steps the floor changes the result on purpose (it is part of the definition) and
    sigma_t^2 itself may be rounding-level, so nothing unit-free is claimed there."""
    gamma, r, done = case
    a, _, _, var = _scaled_by_hand(gamma, r, done)
    b, _, _, _ = _scaled_by_hand(gamma, c * r, done)
    unit_free = var * min(c, 1.0) ** 2 >= 1e-2                                   # (T,)
    np.testing.assert_allclose(b[unit_free], a[unit_free], rtol=1e-6, atol=1e-12)


def test_reward_scaling_frozen_does_not_merge_and_roundtrips():
    rs = nz.return_scale_init(2, 0.9)
    rs, _ = nz.scale_rewards(rs, np.array([1.0, 3.0]), np.array([False, True]))
    np.testing.assert_array_equal(rs.ret, [1.0, 0.0])                  # copy 1's episode ended
    frozen, s = nz.scale_rewards(rs, np.array([2.0, 2.0]), np.array([False, False]), frozen=True)
    assert frozen.stats is rs.stats
    np.testing.assert_allclose(s, 2.0 / np.sqrt(1.0 + nz.VAR_FLOOR))     # var of {1, 3} is 1
    np.testing.assert_array_equal(frozen.ret, [2.9, 2.0])
    back = nz.return_scale_from_dict(nz.return_scale_to_dict(frozen))
    assert back.gamma == 0.9 and back.stats.count == 2
    np.testing.assert_array_equal(back.ret, frozen.ret)


@pytest.mark.parametrize("call, match", [
    (lambda: nz.return_scale_init(0, 0.9), r"num_envs: expected an integer >= 1, got 0\. Fix: "),
    (lambda: nz.return_scale_init(2, 1.5), r"gamma: expected a finite number in \[0, 1\], got 1\.5\. Fix: "),
    (lambda: nz.scale_rewards(nz.return_scale_init(2, 0.9), np.zeros(3), np.zeros(3, bool)),
     r"r, done: expected shape \(2,\) \(one per copy\), got \(3,\) and \(3,\)\. Fix: "),
    (lambda: nz.return_scale_from_dict({"count": 1, "mean": [0.0], "var": [1.0]}),
     r"reward-scaling state: expected the keys ret, gamma, got .*Fix: the checkpoint is corrupt"),
    (lambda: nz.return_scale_from_dict({"count": 1, "mean": [0.0], "var": [1.0], "ret": [np.nan], "gamma": 0.9}),
     r"reward-scaling state: expected 1-D statistics and a finite \(E,\) field 'ret'"),
])
def test_reward_scaling_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_reward_scaling_matches_stable_baselines3_vecnormalize():
    """Optional cross-check (skips without stable-baselines3): VecNormalize(norm_reward=True) on three
    Pendulum copies, random actions, 2000 steps with truncations; our eqs. (5)-(7) on the same raw
    rewards and done flags. VecNormalize starts its statistics at count 1e-4 and keeps rewards in
    float32 buffers, so from step 10 on the two agree to 1e-5 relative (measured ~1e-6), not exactly."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    venv = VecNormalize(make_vec_env("Pendulum-v1", n_envs=3, seed=0), norm_obs=False, norm_reward=True, gamma=0.9)
    venv.reset()
    rng, rs = np.random.default_rng(0), nz.return_scale_init(3, 0.9)
    for t in range(2000):
        _, r_sb3, done, _ = venv.step(rng.uniform(-2.0, 2.0, (3, 1)))
        rs, ours = nz.scale_rewards(rs, venv.get_original_reward(), done)
        if t >= 10:
            np.testing.assert_allclose(ours, r_sb3, rtol=1e-5)
