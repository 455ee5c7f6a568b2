"""purepg.kernels.batch: a minibatch's rows and standardised advantages in one call, bit for bit.

The kernel sums in NumPy's pairwise order and takes ``std``'s steps one IEEE operation at a time, so
it is compared exactly (``assert_array_equal``, signs of zero too) with its NumPy reference, with
NumPy's own ``add.reduce`` / ``std``, and with the indexing and
:func:`purepg.algos.common.normalize_advantage` that ``ppo.minibatch`` stood for before.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from purepg.algos import ppo
from purepg.algos.common import Flat, normalize_advantage
from purepg.kernels import batch


def _vector(rng, n):
    """Values over many scales, some repeated, some exactly zero: sums whose rounding depends on order."""
    a = rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6, n)
    a[rng.random(n) < 0.1] = 0.0
    return a


@pytest.mark.parametrize("n", [*range(1, 40), 127, 128, 129, 135, 255, 256, 257, 511, 1000, 1024, 4097, 9000])
def test_pairwise_sum_is_numpys_sum(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        a = _vector(rng, n + 3)
        lo = int(rng.integers(0, 4))
        got = 0.0 + batch._pairwise_sum(a, lo, n)
        assert got == batch._pairwise_sum_numpy(a, lo, n) == np.sum(a[lo:lo + n])
        for ddof in (0, 1):
            if n > ddof:
                assert batch._std_numba(a[:n], ddof, np.empty(n)) == a[:n].std(ddof=ddof)


@settings(max_examples=80, deadline=None)
@given(N=st.integers(1, 600), frac=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       convention=st.sampled_from([None, "population", "sample_eps"]), discrete=st.booleans())
def test_minibatch_rows_equal_the_reference_and_ppo_before(N, frac, seed, convention, discrete):
    rng = np.random.default_rng(seed)
    M = max(1, int(frac * N))
    act = rng.integers(0, 5, N) if discrete else rng.standard_normal((N, 2))
    cols = (rng.standard_normal((N, 4)), act, rng.standard_normal(N), _vector(rng, N), rng.standard_normal(N),
            rng.standard_normal(N))
    if rng.random() < 0.2:
        cols = cols[:3] + (np.full(N, 1.5),) + cols[4:]             # all advantages equal: std 0
    idx = rng.permutation(N)[:M]
    got = batch.minibatch_rows(idx, cols, convention)
    ref = batch.minibatch_rows(idx, cols, convention, backend="numpy")
    adv = cols[3][idx]
    before = normalize_advantage(adv, convention) if convention else adv    # ppo.minibatch's old body
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got[3], before)
    np.testing.assert_array_equal(np.signbit(got[3]), np.signbit(before))
    assert all(g.base is None for g in got)                          # fresh arrays: a trace may keep them


def test_ppo_minibatch_takes_the_kernel_and_true_means_population():
    rng = np.random.default_rng(0)
    data = Flat(rng.standard_normal((64, 3)), rng.integers(0, 2, 64), *rng.standard_normal((4, 64)))
    idx = rng.permutation(64)[:32]
    mb = ppo.minibatch(data, idx, True)
    np.testing.assert_array_equal(mb.adv, normalize_advantage(data.adv[idx], "population"))
    np.testing.assert_array_equal(mb.obs, data.obs[idx])
    np.testing.assert_array_equal(ppo.minibatch(data, idx, None).adv, data.adv[idx])


def test_arrays_the_kernel_does_not_take_go_to_the_reference():
    rng = np.random.default_rng(1)
    cols = (np.asfortranarray(rng.standard_normal((10, 3))), rng.integers(0, 2, 10), *rng.standard_normal((4, 10)))
    idx = np.arange(5, dtype=np.int32)
    got = batch.minibatch_rows(idx, cols, "population")
    np.testing.assert_array_equal(got[0], cols[0][idx])
    with pytest.raises(ValueError, match="convention: expected one of"):
        batch.minibatch_rows(idx, cols, "sample")
