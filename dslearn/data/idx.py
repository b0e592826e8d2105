"""The IDX file format of MNIST and its relatives: read (gzipped or plain) and write.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in big-endian row-major order. MNIST
images are ``uint8`` arrays of shape (N, 28, 28); labels are ``uint8`` arrays of shape (N,).
The reader checks every part of that layout, so a truncated download or an HTML error page
saved under an IDX name fails with a message that says what is wrong, not with a bad array.

May import: numpy, the standard library.

>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "tiny-labels-idx1-ubyte.gz")
>>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
>>> read_idx(path)
array([3, 1, 4], dtype=uint8)
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

# IDX type code -> big-endian NumPy dtype.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """A file is not a well-formed IDX file (wrong magic number, truncated, or extra bytes)."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file, gzipped or not (decided by its first bytes, not its name).

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx2-ubyte")
    >>> write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> read_idx(path).shape
    (2, 3)
    """
    with open(path, "rb") as file:
        raw = file.read()
    return parse_idx(raw, name=os.fspath(path))


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file (gzipped or not); ``name`` is used in error messages.

    >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    array([7, 9], dtype=uint8)
    >>> parse_idx(b"<html>Not Found</html>", "labels.gz")
    Traceback (most recent call last):
    ...
    dslearn.data.idx.IdxFormatError: labels.gz: not an IDX file: it starts with b'<htm' (expected 00 00 <type> <ndim>)
    """
    if raw[:2] == GZIP_MAGIC:
        raw = _gunzip(raw, name)
    if len(raw) < 4:
        raise IdxFormatError(f"{name}: not an IDX file: only {len(raw)} bytes, fewer than the 4-byte magic number")
    zero_a, zero_b, type_code, ndim = raw[:4]
    if zero_a or zero_b:
        raise IdxFormatError(f"{name}: not an IDX file: it starts with {raw[:4]!r} (expected 00 00 <type> <ndim>)")
    if type_code not in IDX_TYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_TYPES)
        raise IdxFormatError(f"{name}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    if ndim == 0:
        raise IdxFormatError(f"{name}: IDX header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IdxFormatError(f"{name}: truncated IDX header: {ndim} dimensions need {header_size} bytes, "
                             f"the file has {len(raw)}")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise IdxFormatError(f"{name}: IDX data {problem}: shape {shape} of {dtype.newbyteorder('=').name} needs "
                             f"{expected} bytes after the header, the file has {found}")
    array = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _gunzip(raw: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise IdxFormatError(f"{name}: damaged gzip stream ({error}); the file is probably truncated") from None


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzipped when ``path`` ends in ``.gz``.

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "f-idx1-float")
    >>> write_idx(path, np.array([0.5, 2.0], dtype=np.float32)); read_idx(path)
    array([0.5, 2. ], dtype=float32)
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
    if array.dtype not in codes:
        raise TypeError(f"write_idx: IDX cannot store dtype {array.dtype} (it stores {sorted(d.name for d in codes)})")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: IDX stores arrays of 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with open(path, "wb") as file:
        file.write(gzip.compress(raw, mtime=0) if os.fspath(path).endswith(".gz") else raw)
