"""purepg._recycle: a large output's memory is used again only when nothing refers to the earlier result."""
import threading

import numpy as np
import pytest

from purepg import _recycle
from purepg.model.policy import CategoricalPolicy, GaussianPolicy

pytestmark = pytest.mark.skipif(_recycle._UNSHARED is None, reason="reference counts do not tell here")


def _address(a):
    return a.__array_interface__["data"][0]


@pytest.fixture
def small(monkeypatch):
    """Every shape recycled (the threshold off), and a clean list of kept arrays before and after."""
    monkeypatch.setattr(_recycle, "MIN_BYTES", 0)
    _recycle.clear()
    yield
    _recycle.clear()


def test_a_dropped_result_lends_its_memory_to_the_next(small):
    a = _recycle.empty((3, 4))
    where = _address(a)
    del a
    b = _recycle.empty((3, 4))
    assert _address(b) == where and b.shape == (3, 4) and b.dtype == np.float64 and b.flags.c_contiguous


def _holder(a, how):
    """Something that keeps ``a``'s memory in use without being ``a`` itself (except for "the array")."""
    return {"the array": a, "a view": a[1:, ::2], "a memoryview": memoryview(a), "a list": [a]}[how]


@pytest.mark.parametrize("hold", ["the array", "a view", "a memoryview", "a list"])
def test_a_result_still_referred_to_is_never_handed_out_again(small, hold):
    a = _recycle.empty((3, 4))
    a[:] = 7.0
    held = _holder(a, hold)
    del a
    b = _recycle.empty((3, 4))
    b[:] = -1.0
    seen = np.asarray(held[0] if isinstance(held, list) else held)
    assert not np.shares_memory(b, seen) and np.all(seen == 7.0)


def test_small_outputs_and_uncounted_interpreters_always_allocate(monkeypatch):
    _recycle.clear()
    a = _recycle.empty((2, 2))                      # 32 bytes, under MIN_BYTES: never kept
    where = _address(a)
    del a
    assert _recycle._kept == {}
    monkeypatch.setattr(_recycle, "MIN_BYTES", 0)
    monkeypatch.setattr(_recycle, "_UNSHARED", None)
    _recycle.empty((2, 2))
    assert _recycle._kept == {} and isinstance(where, int)


def test_at_most_SHAPES_shapes_are_kept_the_oldest_let_go(small):
    for n in range(1, _recycle.SHAPES + 2):
        _recycle.empty((n, 3))
    assert list(_recycle._kept) == [(n, 3) for n in range(2, _recycle.SHAPES + 2)]


def test_threads_never_share_an_array_they_hold(small):
    errors, barrier = [], threading.Barrier(4)

    def work(k):
        barrier.wait()
        for _ in range(300):
            a = _recycle.empty((8, 8))
            a[:] = k
            if not np.all(a == k):                  # another thread wrote into the array this one holds
                errors.append(k)
            del a

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("make", [lambda: CategoricalPolicy(4, 3, (64, 64)), lambda: GaussianPolicy(4, 2, (64, 64))])
def test_a_score_matrix_on_recycled_memory_equals_a_fresh_one(make):
    """At the real threshold (a 75 MB score matrix): the second call takes the first result's memory,
    filled with NaN, and writes every entry (the Gaussian's log-std columns too)."""
    _recycle.clear()
    pol, rng = make(), np.random.default_rng(0)
    theta, N = pol.init(rng), 2048
    obs = rng.standard_normal((N, 4))
    act = rng.integers(0, 3, N) if pol.discrete else rng.standard_normal((N, 2))
    assert 8 * N * pol.num_params >= _recycle.MIN_BYTES
    expected = pol.score(theta, obs, act, out=np.empty((N, pol.num_params)))
    S = pol.score(theta, obs, act)
    where = _address(S)
    S[:] = np.nan
    del S
    S = pol.score(theta, obs, act)
    assert _address(S) == where
    np.testing.assert_array_equal(S, expected)
    _recycle.clear()
