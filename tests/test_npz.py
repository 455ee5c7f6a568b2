"""purepg.run.npz: the checkpoints' one-pass archive against its reference, numpy.savez."""
import io
import time
import zipfile

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from purepg.run import checkpoint, npz

DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_, np.complex128, ">f8",
                          "<U1", "<U17", "S5"])
LAYOUTS = st.sampled_from(["C", "F", "strided"])
KEYS = st.text(st.sampled_from("ab/:.@_-0é雪"), min_size=1, max_size=12)


@st.composite
def members(draw):
    """An ordered dict of arrays: any of :data:`DTYPES`, 0 to 3 dimensions (empty ones too), C order,
    Fortran order or a strided view, and keys with the characters of purepg's flattened names."""
    out = {}
    for key in draw(st.lists(KEYS, min_size=0, max_size=6, unique=True)):
        a = draw(hnp.arrays(np.dtype(draw(DTYPES)), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
        layout = draw(LAYOUTS)
        if layout == "F":
            a = np.asfortranarray(a)
        elif layout == "strided" and a.ndim:
            a = np.repeat(a, 2, axis=0)[::2]
        out[key] = a
    return out


def _savez(flat):
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return buf.getvalue()


@given(members())
def test_each_member_is_numpys_own_bytes_and_loads_back_the_same(flat):
    data = npz.archive(flat)
    ours, numpys = zipfile.ZipFile(io.BytesIO(data)), zipfile.ZipFile(io.BytesIO(_savez(flat)))
    assert ours.testzip() is None                                        # every CRC and size right
    assert ours.namelist() == numpys.namelist() == [k + ".npy" for k in flat]
    for name in ours.namelist():
        assert ours.read(name) == numpys.read(name)
        assert ours.getinfo(name).compress_type == zipfile.ZIP_STORED
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert z.files == list(flat)
        for k, a in flat.items():
            assert z[k].dtype == a.dtype and z[k].shape == a.shape
            assert z[k].tobytes() == np.ascontiguousarray(a).tobytes()       # bit for bit, NaNs included


def test_an_object_array_or_too_many_members_take_numpys_writer(monkeypatch):
    flat = {"x": np.arange(3.0), "o": np.array([None, 1], dtype=object)}
    assert npz.archive(flat) != b"" and np.load(io.BytesIO(npz.archive(flat)), allow_pickle=True)["o"][1] == 1
    monkeypatch.setattr(npz, "_savez", lambda arrays: b"numpy.savez")
    assert npz.archive(flat) == b"numpy.savez"
    assert npz.archive({"x": np.arange(3.0)}) != b"numpy.savez"
    monkeypatch.setattr(npz, "_MAX_MEMBERS", 1)
    assert npz.archive({"x": np.arange(3.0), "y": np.zeros(2)}) == b"numpy.savez"


def test_the_kept_headers_are_bounded(monkeypatch):
    monkeypatch.setattr(npz, "_HEADERS_KEPT", 3)
    monkeypatch.setattr(npz, "_headers", {})
    for n in range(10):
        npz.archive({"x": np.zeros(n)})
        assert len(npz._headers) <= 3


def test_a_checkpoint_written_in_one_pass_loads_as_it_was_saved(tmp_path):
    tree = {"algo": {"theta": np.linspace(-1, 1, 7), "t": 3}, "env": {"name@str": np.array("CartPole-v1")}}
    checkpoint.save(tmp_path / "c.npz", tree, {"seed": 0})
    back, meta = checkpoint.load(tmp_path / "c.npz", required=("algo", "env"))
    np.testing.assert_array_equal(back["algo"]["theta"], tree["algo"]["theta"])
    assert back["algo"]["t"] == 3 and str(back["env"]["name@str"]) == "CartPole-v1" and meta == {"seed": 0}


@pytest.mark.parametrize("t", [0.0, 1_700_000_000.0])
def test_dos_times_fit_their_fields_and_count_from_1980(t):
    clock, date = npz._dos_time(t)
    assert 0 <= clock < 2**16 and 0 <= date < 2**16
    assert date >> 9 == max(time.localtime(t).tm_year, 1980) - 1980      # 1970 is before the ZIP epoch: 1980


def test_a_fixed_timestamp_makes_the_bytes_a_function_of_the_members():
    flat = {"a": np.arange(4.0), "b": np.array("x")}
    first = npz.archive(flat, date_time=(1980, 1, 1, 0, 0, 0))
    assert npz.archive(flat, date_time=(1980, 1, 1, 0, 0, 0)) == first
    assert zipfile.ZipFile(io.BytesIO(first)).getinfo("a.npy").date_time == (1980, 1, 1, 0, 0, 0)
