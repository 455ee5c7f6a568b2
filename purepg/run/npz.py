"""The bytes of an ``.npz`` archive, written without ``zipfile``'s per-member cost: the checkpoints' writer.

A checkpoint is a few hundred small arrays (a vector env's state alone is a member per attribute of
every copy), and :func:`numpy.savez` spends ~25 us of Python on each member (a ``zipfile`` entry opened,
a header formatted, a trailer written): ~7 ms per checkpoint of 8 CartPole-v1 copies, paid on the
run's own core every ``checkpoint_every`` iterations. :func:`archive` writes the same archive format
(a ZIP of stored, uncompressed ``<key>.npy`` members) in one pass:

* each member's bytes are exactly those :func:`numpy.lib.format.write_array` writes for the array --
  NumPy's own header, taken from NumPy once per ``(dtype, shape, order)`` and kept, then the data in
  the order that header states;
* the ZIP structure around them is the classic one (local headers, central directory, end record;
  no ZIP64 records, which the sizes here never need), read by :func:`numpy.load` and any unzip.

Where the classic format does not fit (an archive over 2 GiB, over 65,535 members) or an array is
not plain data (an object array, which NumPy would pickle), :func:`archive` returns
:func:`numpy.savez`'s bytes instead. The reference is :func:`numpy.savez` itself:
``tests/test_npz.py`` checks that every member's bytes are NumPy's and that :func:`numpy.load`
returns the same arrays.
"""
from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np

_LOCAL = struct.Struct("<IHHHHHIIIHH")          # local file header, before the name
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header, before the name
_END = struct.Struct("<IHHHHIIH")               # end of central directory record
_VERSION = 20                                   # 2.0: stored members, no ZIP64
_UNIX = 3 << 8                                  # "made by": Unix, for the permission bits below
_MODE = 0o600 << 16                             # rw------- (what zipfile gives a member written by name)
_MAX_BYTES, _MAX_MEMBERS = 2**31 - 1, 0xFFFF
_HEADERS_KEPT = 4096

_headers: dict = {}                             # (dtype, shape, fortran order) -> NumPy's .npy header


def _dos_time(t=None, date_time=None):
    """The ZIP's (time, date) fields of the local time ``t`` (seconds since the epoch) or of ``date_time``
    ``(year, month, day, hour, minute, second)`` (2-second resolution; years from 1980)."""
    y, mo, d, h, mi, s = time.localtime(t)[:6] if date_time is None else date_time
    return (h << 11) | (mi << 5) | (s // 2), (max(y, 1980) - 1980) << 9 | (mo << 5) | d


def _data(a):
    """The array's data in the order NumPy writes it: ``(buffer, fortran_order)``."""
    if a.flags.c_contiguous:
        return a.reshape(-1).view(np.uint8) if a.size else b"", False
    if a.flags.f_contiguous:                     # NumPy keeps Fortran order for these
        return a.T.reshape(-1).view(np.uint8), True
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8), False


def _header(a, fortran):
    """NumPy's ``.npy`` header for ``a`` (:func:`numpy.lib.format.write_array`'s own bytes, kept per layout)."""
    key = (a.dtype, a.shape, fortran)
    h = _headers.get(key)
    if h is None:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.empty(a.shape, a.dtype, order="F" if fortran else "C"),
                                  allow_pickle=False)
        h = buf.getvalue()[:buf.tell() - a.nbytes]
        if len(_headers) >= _HEADERS_KEPT:
            _headers.clear()
        _headers[key] = h
    return h


def _name(key):
    """The member's name as stored, and the ZIP flag bit 11 where it is UTF-8 (as ``zipfile`` does)."""
    name = key + ".npy"
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), 0x800


def archive(flat, date_time=None):
    """The bytes of ``numpy.savez(f, **flat)``'s archive, written in one pass (module docstring).

    Parameters
    ----------
    flat : dict of str -> array_like
        Members in order; each value as :func:`numpy.asanyarray` makes it.
    date_time : tuple of 6 int, optional
        The members' timestamp ``(year, month, day, hour, minute, second)``; None: now (as
        :func:`numpy.savez`). A fixed one makes the bytes a function of ``flat`` alone.

    Returns
    -------
    bytes
    """
    arrays = {k: np.asanyarray(v) for k, v in flat.items()}
    total = sum(a.nbytes + 256 + 2 * len(k) for k, a in arrays.items())
    if (len(arrays) > _MAX_MEMBERS or total > _MAX_BYTES
            or any(a.dtype.hasobject or not getattr(type(a.dtype), "_legacy", True) for a in arrays.values())):
        return _savez(arrays)
    clock, date = _dos_time(None if date_time is not None else time.time(), date_time)
    parts, central, offset = [], [], 0
    for key, a in arrays.items():
        data, fortran = _data(a)
        head = _header(a, fortran)
        name, flags = _name(key)
        size = len(head) + a.nbytes
        crc = zlib.crc32(data, zlib.crc32(head))
        parts += (_LOCAL.pack(0x04034B50, _VERSION, flags, 0, clock, date, crc, size, size, len(name), 0),
                  name, head, data)
        central += (_CENTRAL.pack(0x02014B50, _UNIX | _VERSION, _VERSION, flags, 0, clock, date, crc, size, size,
                                  len(name), 0, 0, 0, 0, _MODE, offset), name)
        offset += _LOCAL.size + len(name) + size
    cd = b"".join(central)
    n = len(arrays)
    return b"".join([*parts, cd, _END.pack(0x06054B50, 0, 0, n, n, len(cd), offset, 0)])


def _savez(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
