"""Tests of purepg.run.checkpoint: nested state flattened and restored exactly (Hypothesis), the atomic
write (a failed write leaves the previous file and no temporary file), and load's refusals of missing,
truncated and foreign files."""
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from purepg.optim import AdamState, adam_init
from purepg.run import checkpoint

st_key = st.text("abcxyz_0123", min_size=1, max_size=4)
st_leaf = (hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=3))
           | st.integers(-2**62, 2**62) | st.floats(allow_nan=False))
st_adam = st.builds(lambda n, t: AdamState(np.arange(n, dtype=float), np.ones(n), t), st.integers(0, 3),
                    st.integers(0, 10**6))
st_tree = st.recursive(st.dictionaries(st_key, st_leaf | st_adam, min_size=1, max_size=3),
                       lambda inner: st.dictionaries(st_key, inner | st_leaf, min_size=1, max_size=3), max_leaves=8)


def _assert_same(a, b):
    assert type(a) is type(b) or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)), (a, b)
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, AdamState):
        np.testing.assert_array_equal(a.m, b.m)
        np.testing.assert_array_equal(a.v, b.v)
        assert a.t == b.t
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@given(st_tree)
def test_flatten_unflatten_restore_any_tree(tree):
    """Scalars come back as the same Python numbers, arrays bit for bit, AdamStates as AdamStates (every
    dict drawn is non-empty: an empty one has no leaf to store)."""
    flat = checkpoint.flatten(tree)
    assert all(isinstance(v, np.ndarray) for v in flat.values())
    _assert_same(checkpoint.unflatten(flat), tree)


@given(st_tree)
def test_save_load_restore_any_tree(tmp_path_factory, tree):
    p = str(tmp_path_factory.mktemp("ck") / "c.npz")
    checkpoint.save(p, tree, {"step": 3, "name": "x"})
    back, meta = checkpoint.load(p)
    _assert_same(back, tree)
    assert meta == {"step": 3, "name": "x"}


def test_checkpoint_roundtrip_and_format(tmp_path):
    p = str(tmp_path / "c.npz")
    tree = {"a": {"b": np.arange(3.0)}, "opt": adam_init(2), "x": 1.5}
    checkpoint.save(p, tree, {"k": 1})
    back, meta = checkpoint.load(p, required=("a", "opt"))
    np.testing.assert_array_equal(back["a"]["b"], np.arange(3.0))
    assert back["x"] == 1.5 and meta == {"k": 1} and back["opt"].t == 0
    with pytest.raises(checkpoint.CheckpointError, match="field 'zz' is missing"):
        checkpoint.load(p, required=("zz",))
    np.savez(p, a=np.zeros(1))
    with pytest.raises(checkpoint.CheckpointError, match="__format__ is '<missing>'"):
        checkpoint.load(p)


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    p = tmp_path / "c.npz"
    checkpoint.save(str(p), {"a": np.zeros(2)}, {})
    before = p.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(str(p), {"a": np.ones(2)}, {})
    assert p.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_load_refuses_missing_truncated_and_foreign_files(tmp_path):
    p = tmp_path / "c.npz"
    with pytest.raises(checkpoint.CheckpointError, match=r"c\.npz: no such file"):
        checkpoint.load(str(p))
    checkpoint.save(str(p), {"a": np.arange(4.0)}, {"k": 1})
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match=r"truncated or corrupt\. Fix: restore it"):
        checkpoint.load(str(p))
    np.savez(p, __format__=np.array(checkpoint.FORMAT), a=np.zeros(1))
    with pytest.raises(checkpoint.CheckpointError, match=r"field __meta__ is missing or corrupt"):
        checkpoint.load(str(p))
    np.savez(p, __format__=np.array("purepg-checkpoint-0"), __meta__=np.array("{}"))
    with pytest.raises(checkpoint.CheckpointError, match=r"__format__ is 'purepg-checkpoint-0', expected"):
        checkpoint.load(str(p))
    assert issubclass(checkpoint.CheckpointError, ValueError)
