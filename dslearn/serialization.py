"""Saving and loading tensors and state dicts in the safetensors format (never pickle).

``save(obj, f)`` accepts a tensor, a NumPy array, or nested dicts, lists and tuples of them
whose other leaves are ``int``, ``float``, ``str``, ``bool`` or ``None`` (the state dict of a
model or an optimizer). The file is a plain safetensors file, so HuggingFace's readers open it:

* 8 bytes: the length N of the header, a little-endian unsigned integer;
* N bytes: a JSON header mapping each tensor's name to ``{"dtype", "shape", "data_offsets"}``
  (offsets into the data section), padded with spaces so that the data starts 8-byte aligned;
* the data section: every tensor's raw little-endian bytes, back to back, widest dtype first
  so that every tensor is aligned.

The nested structure itself lives in the header's ``__metadata__`` under ``"dslearn.tree"``,
as a JSON string in which each tensor leaf names its header key. Only data, dtype and shape are
stored: loaded tensors are leaves with ``requires_grad=False`` on the CPU (or ``map_location``),
which is what ``load_state_dict`` needs. A tensor that appears twice is stored once and loads
as one shared object. ``load`` parses JSON and copies bytes; it never runs code from the file.

May import: numpy, dslearn.dtypes, dslearn.device, dslearn.tensor.

>>> import io, dslearn as ds
>>> buffer = io.BytesIO()
>>> save({"weight": ds.ones(2, 3), "step": 7}, buffer)
>>> _ = buffer.seek(0)
>>> state = load(buffer)
>>> state["weight"].shape, state["step"]
((2, 3), 7)
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import secrets
import struct
import sys
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from dslearn import dtypes
from dslearn.device import CPU, as_device
from dslearn.tensor import Tensor

TREE_KEY = "dslearn.tree"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 100_000_000  # the limit HuggingFace's safetensors enforces

_CODES = {dtypes.float64: "F64", dtypes.float32: "F32", dtypes.float16: "F16", dtypes.bfloat16: "BF16",
          dtypes.int64: "I64", dtypes.int32: "I32", dtypes.int16: "I16", dtypes.int8: "I8", dtypes.uint8: "U8",
          dtypes.bool_: "BOOL"}
_CODE_OF_NUMPY = {dtype.np: code for dtype, code in _CODES.items()}
_NUMPY_OF_CODE = {code: dtype.np for dtype, code in _CODES.items()}


class SerializationError(ValueError):
    """A file that ``load`` cannot read: truncated, corrupted, or not a safetensors file."""


class _MissingFileError(SerializationError, FileNotFoundError):
    """``load`` of a path that does not exist (also catchable as ``FileNotFoundError``)."""


# -- writing ----------------------------------------------------------------------------------


def save(obj, f: str | os.PathLike | BinaryIO) -> None:
    """Write ``obj`` (tensors, arrays, nested dict/list/tuple of them) to a path or a binary file.

    Writing to a path is atomic: a crash mid-write leaves the previous file untouched. Tensors keep
    their data, dtype and shape (not ``requires_grad``, nor their device: they load on the CPU).

    >>> import io, dslearn as ds
    >>> buffer = io.BytesIO()
    >>> save([ds.tensor([1, 2]), (0.5, None)], buffer)
    >>> load(io.BytesIO(buffer.getvalue()))
    [tensor([1, 2]), (0.5, None)]
    """
    store = _TensorStore()
    tree = _encode(obj, (), store)
    header = store.header()
    header_text = json.dumps({"format": "dslearn", "version": FORMAT_VERSION, "tree": tree},
                             separators=(",", ":"), allow_nan=False)
    header_bytes = json.dumps({"__metadata__": {TREE_KEY: header_text}, **header}, separators=(",", ":")).encode()
    header_bytes += b" " * (-(8 + len(header_bytes)) % 8)

    def write(file: BinaryIO) -> None:
        file.write(struct.pack("<Q", len(header_bytes)))
        file.write(header_bytes)
        for _, array, _ in store.entries:
            file.write(memoryview(_little_endian_bytes(array)))

    if isinstance(f, (str, os.PathLike)):
        atomic_write(f, write)
    else:
        write(f)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace ``path`` with what ``write(file)`` writes; readers never see a partial file.

    The data goes to a temporary file in the same directory, is flushed to disk, then renamed
    over ``path``. If ``write`` raises, the temporary file is removed and ``path`` is unchanged.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "notes.txt"
    ...     atomic_write(path, lambda file: file.write(b"hello"))
    ...     path.read_bytes()
    b'hello'
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if os.name == "posix":  # make the rename itself durable
        directory_descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)


class _TensorStore:
    """The tensors met while encoding: each object stored once, under a name taken from its path."""

    def __init__(self) -> None:
        self.keys: dict[int, str] = {}  # id(leaf) -> header key
        self.taken: set[str] = {"__metadata__"}
        self.entries: list[tuple[str, np.ndarray, str]] = []  # (header key, contiguous array, dtype code)

    def add(self, leaf, path: tuple, array: np.ndarray) -> str:
        if id(leaf) in self.keys:
            return self.keys[id(leaf)]
        native = array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype
        if native not in _CODE_OF_NUMPY:
            raise TypeError(f"save: {_show_path(path)} has dtype {array.dtype}, which cannot be stored; "
                            f"supported: {', '.join(d.name for d in _CODES)}")
        name = ".".join(str(part) for part in path) or "tensor"
        key, n = name, 1
        while key in self.taken:
            key, n = f"{name}#{n}", n + 1
        self.keys[id(leaf)] = key
        self.taken.add(key)
        contiguous = array if array.flags.c_contiguous else array.copy(order="C")
        self.entries.append((key, contiguous, _CODE_OF_NUMPY[native]))
        return key

    def header(self) -> dict:
        """Header entries in data order: widest dtype first, so every tensor starts aligned."""
        self.entries.sort(key=lambda entry: -entry[1].dtype.itemsize)
        header, offset = {}, 0
        for key, array, code in self.entries:
            header[key] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
            offset += array.nbytes
        return header


def _encode(obj, path: tuple, store: _TensorStore):
    """``obj`` as JSON: containers and odd floats become one-key tagged objects, tensors name their key."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, Tensor):
        return {"$tensor": store.add(obj, path, obj.detach().numpy())}
    if isinstance(obj, np.ndarray):
        return {"$ndarray": store.add(obj, path, obj)}
    if isinstance(obj, np.generic):
        return {"$scalar": store.add(obj, path, np.asarray(obj))}
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else {"$float": repr(float(obj))}
    if isinstance(obj, list):
        return [_encode(item, (*path, i), store) for i, item in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(item, (*path, i), store) for i, item in enumerate(obj)]}
    if isinstance(obj, dict):
        for key in obj:
            _check_key(key, path)
        return {"$dict": [[_encode(key, (), store), _encode(value, (*path, key), store)] for key, value in obj.items()]}
    raise TypeError(f"save: {_show_path(path)} is a {type(obj).__name__}; dslearn saves tensors, NumPy arrays, "
                    "dict/list/tuple, int, float, str, bool and None (never pickled objects)")


def _check_key(key, path: tuple) -> None:
    if isinstance(key, tuple):
        for part in key:
            _check_key(part, path)
    elif not (key is None or isinstance(key, (bool, int, float, str))) or isinstance(key, np.generic):
        raise TypeError(f"save: {_show_path(path)} has a key of type {type(key).__name__}; "
                        "dict keys must be str, int, float, bool, None or tuples of them")


def _show_path(path: tuple) -> str:
    return "obj" + "".join(f"[{part!r}]" for part in path)


def _little_endian_bytes(array: np.ndarray) -> np.ndarray:
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        array = array.byteswap()
    return array.reshape(-1).view(np.uint8)


# -- reading ----------------------------------------------------------------------------------


def load(f: str | os.PathLike | BinaryIO, map_location=None):
    """Read what ``save`` wrote (or any safetensors file, as a dict of tensors); never runs code.

    ``map_location`` ('cpu', 'cuda:0', a Device) places the tensors; the default is the CPU.
    A bad file raises ``SerializationError`` naming the file and the problem.

    >>> import io, pickle
    >>> load(io.BytesIO(pickle.dumps(None)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dslearn.serialization.SerializationError: load(<BytesIO>): this looks like a pickle/torch.save file; ...
    """
    if isinstance(map_location, (dict, Callable)):
        raise TypeError("load: map_location must be a device such as 'cpu' or 'cuda:0'")
    device = as_device(map_location)
    if not isinstance(f, (str, os.PathLike)):
        name = getattr(f, "name", None)
        return _Reader(f, repr(name) if isinstance(name, str) else f"<{type(f).__name__}>", device).read()
    name = repr(os.fspath(f))
    try:
        file = open(f, "rb")
    except FileNotFoundError:
        raise _MissingFileError(f"load({name}): no such file") from None
    except IsADirectoryError:
        raise SerializationError(f"load({name}): this is a directory, not a file") from None
    with file:
        return _Reader(file, name, device).read()


class _Reader:
    """One pass over one file: validate the header completely, then copy each tensor's bytes."""

    def __init__(self, file: BinaryIO, name: str, device) -> None:
        if not file.seekable():
            file = io.BytesIO(file.read())
        self.file, self.name, self.device = file, name, device
        self.arrays: dict[str, np.ndarray] = {}  # header key -> array, so shared leaves stay shared
        self.tensors: dict[str, Tensor] = {}

    def error(self, problem: str) -> SerializationError:
        return SerializationError(f"load({self.name}): {problem}")

    def read(self):
        file = self.file
        self.start = file.tell()
        size = file.seek(0, io.SEEK_END) - self.start
        file.seek(self.start)
        head = file.read(8)
        if len(head) < 8:
            raise self.not_safetensors(head, f"the file has {len(head)} bytes, fewer than the 8 of a header length")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise self.not_safetensors(head, f"header length {length} is larger than the file ({size} bytes); "
                                             "the file is truncated or not a safetensors file")
        if length > MAX_HEADER_BYTES:
            raise self.error(f"header length {length} exceeds the {MAX_HEADER_BYTES}-byte limit")
        text = file.read(length)
        if not text.startswith(b"{"):
            raise self.not_safetensors(head, "the header is not a JSON object")
        try:
            header = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise self.error(f"the header is not valid JSON ({error})") from None
        if not isinstance(header, dict):
            raise self.error("the header is not a JSON object")
        self.data_start = self.start + 8 + length
        metadata = header.pop("__metadata__", None) or {}
        self.specs = self.tensor_specs(header, size - 8 - length)
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise self.error("__metadata__ must map strings to strings")
        if TREE_KEY not in metadata:  # a safetensors file from elsewhere: a flat dict of tensors
            return {key: self.tensor(key) for key in header}
        try:
            return self.decode(self.parse_tree(metadata[TREE_KEY]))
        except RecursionError:
            raise self.error("the stored structure is nested too deeply") from None

    def not_safetensors(self, head: bytes, problem: str) -> SerializationError:
        if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") or head[:4] == b"PK\x03\x04":
            problem = ("this looks like a pickle/torch.save file; dslearn never unpickles, because unpickling "
                       "can run arbitrary code. Convert it where you trust it (e.g. safetensors.torch.save_file)")
        elif head[:6] == b"\x93NUMPY":
            problem = "this looks like a NumPy .npy file; read it with numpy.load(..., allow_pickle=False)"
        return self.error(problem)

    def tensor_specs(self, header: dict, data_size: int) -> dict[str, tuple]:
        """Check every entry: known dtype, sane shape, offsets inside the data section, no overlaps."""
        specs = {}
        for key, entry in header.items():
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
                raise self.error(f"tensor {key!r}: entry must have exactly dtype, shape and data_offsets")
            code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
            if code not in _NUMPY_OF_CODE:
                raise self.error(f"tensor {key!r}: unknown dtype {code!r}; dslearn reads {', '.join(_NUMPY_OF_CODE)}")
            if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
                raise self.error(f"tensor {key!r}: shape {shape!r} is not a list of non-negative integers")
            if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int for n in offsets)
                    and 0 <= offsets[0] <= offsets[1]):
                raise self.error(f"tensor {key!r}: data_offsets {offsets!r} are not two increasing integers")
            if offsets[1] > data_size:
                raise self.error(f"tensor {key!r}: data_offsets {offsets} lie outside the data section "
                                 f"({data_size} bytes); the file is truncated or corrupted")
            dtype = _NUMPY_OF_CODE[code]
            expected = math.prod(shape) * dtype.itemsize
            if offsets[1] - offsets[0] != expected:
                raise self.error(f"tensor {key!r}: shape {shape} of {code} needs {expected} bytes but its "
                                 f"data_offsets {offsets} span {offsets[1] - offsets[0]}")
            specs[key] = (dtype, tuple(shape), offsets[0], offsets[1])
        previous_key, previous_end = None, 0
        for key, (_, _, begin, end) in sorted(specs.items(), key=lambda item: item[1][2:]):
            if begin < previous_end and begin < end:
                raise self.error(f"tensors {previous_key!r} and {key!r} overlap in the data section")
            if end > previous_end:
                previous_key, previous_end = key, end
        return specs

    def parse_tree(self, text: str):
        try:
            document = json.loads(text)
        except ValueError as error:
            raise self.error(f"the {TREE_KEY} metadata is not valid JSON ({error})") from None
        if not isinstance(document, dict) or document.get("format") != "dslearn" or "tree" not in document:
            raise self.error(f"the {TREE_KEY} metadata is not a dslearn structure")
        version = document.get("version")
        if type(version) is not int or version > FORMAT_VERSION:
            raise self.error(f"format version {version!r} was written by a newer dslearn; "
                             f"this one reads up to version {FORMAT_VERSION}")
        return document["tree"]

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(item) for item in node]
        if not (isinstance(node, dict) and len(node) == 1):
            raise self.error(f"unrecognised node {str(node)[:60]} in the stored structure")
        ((tag, value),) = node.items()
        if tag == "$tensor":
            return self.tensor(value)
        if tag == "$ndarray":
            return self.array(value)
        if tag == "$scalar":
            return self.array(value)[()]
        if tag == "$tuple" and isinstance(value, list):
            return tuple(self.decode(item) for item in value)
        if tag == "$float" and value in ("nan", "inf", "-inf"):
            return float(value)
        if tag == "$dict" and isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
            pairs = [(self.decode(key), self.decode(item)) for key, item in value]
            try:
                return dict(pairs)
            except TypeError:
                raise self.error("a dict key in the stored structure is not hashable") from None
        raise self.error(f"unrecognised node {str(node)[:60]} in the stored structure")

    def tensor(self, key) -> Tensor:
        array = self.array(key)  # checks the key first
        if key not in self.tensors:
            tensor = Tensor._make(array)
            self.tensors[key] = tensor if self.device == CPU else tensor.to(self.device)
        return self.tensors[key]

    def array(self, key) -> np.ndarray:
        if not isinstance(key, str) or key not in self.specs:
            raise self.error(f"the stored structure refers to tensor {key!r}, which the header does not list")
        if key not in self.arrays:
            dtype, shape, begin, end = self.specs[key]
            raw = np.empty(end - begin, dtype=np.uint8)
            self.file.seek(self.data_start + begin)
            if self.file.readinto(raw) != raw.size:
                raise self.error(f"tensor {key!r}: the file ended inside its data")
            if dtype == np.bool_ and raw.size and raw.max() > 1:
                raise self.error(f"tensor {key!r}: BOOL data holds bytes other than 0 and 1")
            array = raw.view(dtype).reshape(shape)
            self.arrays[key] = array.byteswap() if sys.byteorder == "big" else array
        return self.arrays[key]
