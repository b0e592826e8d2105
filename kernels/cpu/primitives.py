"""MiniTorch-style strided primitives: ``tensor_map``, ``tensor_zip`` and ``tensor_reduce``.

A tensor is three things: a flat 1-D *storage*, a *shape*, and *strides* counted in elements
(not bytes). Element ``index`` lives at ``storage[sum(index[d] * strides[d])]``. A transpose,
a slice or a broadcast changes only the shape and strides, never the storage: broadcasting
simply repeats an element by giving its dimension stride 0.

Three index helpers convert between an element's ordinal (its number in row-major order),
its index and its storage position; the three factories take a scalar function and return a
parallel Numba kernel with explicit, flat arguments::

    map    (out, out_shape, out_strides, in_storage, in_shape, in_strides)
    zip    (out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides)
    reduce (out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start)

These are the signatures the CUDA back end and the JIT build on. ``map_array``, ``zip_arrays`` and
``reduce_array`` run a kernel on ordinary NumPy arrays (transposes and broadcast views
included, without copying them) and check their arguments; the kernels themselves trust
theirs, as compiled code does. Inputs in float16 or bfloat16 are computed in float32.

Kernels made by the factories are compiled on their first call and not cached on disk: the
cache could not tell when the scalar function they close over has changed.

May import: numpy, numba, ml_dtypes.

>>> import numpy as np
>>> double = tensor_map(lambda x: 2.0 * x)
>>> map_array(double, np.arange(6.0).reshape(2, 3).T)
array([[ 0.,  6.],
       [ 2.,  8.],
       [ 4., 10.]])
"""

from __future__ import annotations

from collections.abc import Callable

import ml_dtypes
import numpy as np
from numba import njit, prange
from numba.core.dispatcher import Dispatcher

CHUNK = 1024  # elements per parallel task; each task allocates its index buffers once
_HALF = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


# --- index helpers ----------------------------------------------------------------------


@njit(inline="always", cache=True)
def index_to_position(index: np.ndarray, strides: np.ndarray) -> int:
    """Storage position of the element at ``index``: ``sum(index[d] * strides[d])``.

    >>> import numpy as np
    >>> int(index_to_position(np.array([1, 2]), np.array([3, 1])))
    5
    """
    position = 0
    for d in range(len(index)):
        position += index[d] * strides[d]
    return position


@njit(inline="always", cache=True)
def to_index(ordinal: int, shape: np.ndarray, out_index: np.ndarray) -> None:
    """Write into ``out_index`` the index of the ``ordinal``-th element in row-major order.

    >>> import numpy as np
    >>> index = np.empty(2, np.int64)
    >>> to_index(5, np.array([2, 3]), index)
    >>> index
    array([1, 2])
    """
    remaining = ordinal
    for d in range(len(shape) - 1, -1, -1):
        out_index[d] = remaining % shape[d]
        remaining = remaining // shape[d]


@njit(inline="always", cache=True)
def broadcast_index(big_index: np.ndarray, big_shape: np.ndarray, shape: np.ndarray, out_index: np.ndarray) -> None:
    """Map an index of the broadcast shape ``big_shape`` to an index of ``shape`` (NumPy rules).

    Dimensions are aligned on the right; where ``shape`` has size 1 the index is 0.

    >>> import numpy as np
    >>> index = np.empty(2, np.int64)
    >>> broadcast_index(np.array([4, 1, 2]), np.array([5, 3, 3]), np.array([1, 3]), index)
    >>> index
    array([0, 2])
    """
    offset = len(big_shape) - len(shape)
    for d in range(len(shape)):
        out_index[d] = big_index[d + offset] if shape[d] > 1 else 0


@njit(inline="always", cache=True)
def _is_contiguous(shape: np.ndarray, strides: np.ndarray) -> bool:
    """Row-major and gap-free (the stride of a size-1 dimension does not matter)."""
    expected = 1
    for d in range(len(shape) - 1, -1, -1):
        if shape[d] != 1 and strides[d] != expected:
            return False
        expected *= shape[d]
    return True


@njit(inline="always", cache=True)
def _carries(out_shape: np.ndarray, shape: np.ndarray, strides: np.ndarray, table: np.ndarray, row: int) -> None:
    """Fill ``table[row, d]``: how far an operand's position moves when dimension ``d`` of the
    output index goes up by one and every dimension after ``d`` wraps back to 0.

    The operand has ``shape`` and ``strides`` and broadcasts to ``out_shape`` (stride 0 where it
    is broadcast).
    """
    offset = len(out_shape) - len(shape)
    wrapped = 0
    for d in range(len(out_shape) - 1, -1, -1):
        stride = strides[d - offset] if d >= offset and shape[d - offset] > 1 else 0
        table[row, d] = stride - wrapped
        wrapped += (out_shape[d] - 1) * stride


@njit(inline="always", cache=True)
def _advance(index: np.ndarray, shape: np.ndarray) -> int:
    """Step ``index`` to the next row-major index of ``shape`` like an odometer; return the
    dimension that went up (the ones after it wrapped to 0). ``index`` must not be the last."""
    d = len(shape) - 1
    while index[d] == shape[d] - 1:
        index[d] = 0
        d -= 1
    index[d] += 1
    return d


# --- kernel factories -------------------------------------------------------------------


def _jitted(fn: Callable) -> Dispatcher:
    return fn if isinstance(fn, Dispatcher) else njit(inline="always")(fn)


def tensor_map(fn: Callable) -> Callable:
    """A parallel kernel ``map(out, out_shape, out_strides, in_storage, in_shape, in_strides)``.

    ``out[i] = fn(in[i])`` for every index ``i`` of ``out``; the input broadcasts to ``out_shape``.
    ``fn`` is a scalar function, jitted here unless it already is.

    Performance contract: main loop in parallel over chunks of CHUNK elements. A chunk finds
    its first positions with ``to_index``, ``broadcast_index`` and ``index_to_position``, then
    steps index and positions like an odometer (no division, index buffers allocated once per
    chunk, never in the element loop). When ``out`` and the input are contiguous with the same
    shape: a flat parallel loop with no index at all.

    >>> import numpy as np
    >>> square = tensor_map(lambda x: x * x)
    >>> out = np.zeros(3)
    >>> square(out, np.array([3]), np.array([1]), np.array([1.0, 2.0, 3.0]), np.array([3]), np.array([1]))
    >>> out
    array([1., 4., 9.])
    """
    scalar = _jitted(fn)

    @njit(parallel=True)
    def map_kernel(out, out_shape, out_strides, in_storage, in_shape, in_strides):
        size = np.prod(out_shape)
        if (np.array_equal(out_shape, in_shape) and _is_contiguous(out_shape, out_strides)
                and _is_contiguous(in_shape, in_strides)):
            for i in prange(size):
                out[i] = scalar(in_storage[i])
        else:
            carries = np.empty((2, len(out_shape)), np.int64)
            _carries(out_shape, out_shape, out_strides, carries, 0)
            _carries(out_shape, in_shape, in_strides, carries, 1)
            for chunk in prange((size + CHUNK - 1) // CHUNK):
                first, end = chunk * CHUNK, min(size, (chunk + 1) * CHUNK)
                out_index, in_index = np.empty(len(out_shape), np.int64), np.empty(len(in_shape), np.int64)
                to_index(first, out_shape, out_index)
                broadcast_index(out_index, out_shape, in_shape, in_index)
                out_pos, in_pos = index_to_position(out_index, out_strides), index_to_position(in_index, in_strides)
                for ordinal in range(first, end):
                    out[out_pos] = scalar(in_storage[in_pos])
                    if ordinal + 1 < end:
                        d = _advance(out_index, out_shape)
                        out_pos, in_pos = out_pos + carries[0, d], in_pos + carries[1, d]

    return map_kernel


def tensor_zip(fn: Callable) -> Callable:
    """A parallel kernel ``zip(out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides)``.

    ``out[i] = fn(a[i], b[i])`` for every index ``i`` of ``out``; ``a`` and ``b`` broadcast to it.

    Performance contract: as ``tensor_map``: main loop in parallel over chunks of CHUNK
    elements, odometer stepping, index buffers once per chunk; a flat parallel loop when all
    three are contiguous with the same shape.

    >>> import numpy as np
    >>> add = tensor_zip(lambda x, y: x + y)
    >>> out = np.zeros(4)  # a (2, 1) column plus a (2,) row, broadcast to (2, 2)
    >>> add(out, np.array([2, 2]), np.array([2, 1]),
    ...     np.array([0.0, 10.0]), np.array([2, 1]), np.array([1, 1]),
    ...     np.array([1.0, 2.0]), np.array([2]), np.array([1]))
    >>> out
    array([ 1.,  2., 11., 12.])
    """
    scalar = _jitted(fn)

    @njit(parallel=True)
    def zip_kernel(out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides):
        size = np.prod(out_shape)
        if (np.array_equal(out_shape, a_shape) and np.array_equal(out_shape, b_shape)
                and _is_contiguous(out_shape, out_strides) and _is_contiguous(a_shape, a_strides)
                and _is_contiguous(b_shape, b_strides)):
            for i in prange(size):
                out[i] = scalar(a[i], b[i])
        else:
            carries = np.empty((3, len(out_shape)), np.int64)
            _carries(out_shape, out_shape, out_strides, carries, 0)
            _carries(out_shape, a_shape, a_strides, carries, 1)
            _carries(out_shape, b_shape, b_strides, carries, 2)
            for chunk in prange((size + CHUNK - 1) // CHUNK):
                first, end = chunk * CHUNK, min(size, (chunk + 1) * CHUNK)
                out_index = np.empty(len(out_shape), np.int64)
                a_index, b_index = np.empty(len(a_shape), np.int64), np.empty(len(b_shape), np.int64)
                to_index(first, out_shape, out_index)
                broadcast_index(out_index, out_shape, a_shape, a_index)
                broadcast_index(out_index, out_shape, b_shape, b_index)
                out_pos = index_to_position(out_index, out_strides)
                a_pos, b_pos = index_to_position(a_index, a_strides), index_to_position(b_index, b_strides)
                for ordinal in range(first, end):
                    out[out_pos] = scalar(a[a_pos], b[b_pos])
                    if ordinal + 1 < end:
                        d = _advance(out_index, out_shape)
                        out_pos, a_pos, b_pos = out_pos + carries[0, d], a_pos + carries[1, d], b_pos + carries[2, d]

    return zip_kernel


def tensor_reduce(fn: Callable) -> Callable:
    """A parallel kernel ``reduce(out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start)``.

    ``out_shape`` is ``a_shape`` with ``a_shape[reduce_dim]`` replaced by 1, and each output is
    ``fn(...fn(fn(start, a[.., 0, ..]), a[.., 1, ..])..., a[.., n-1, ..])``.

    Performance contract: parallel over chunks of output elements (about CHUNK input elements
    each), odometer stepping over the outputs; the reduction runs in a local accumulator, one
    write per output, no global writes in the inner loop. A full reduction to a single value
    runs on one thread.

    >>> import numpy as np
    >>> add = tensor_reduce(lambda acc, x: acc + x)
    >>> out = np.empty(2)
    >>> add(out, np.array([2, 1]), np.array([1, 1]), np.arange(6.0), np.array([2, 3]), np.array([3, 1]), 1, 0.0)
    >>> out
    array([ 3., 12.])
    """
    scalar = _jitted(fn)

    @njit(parallel=True)
    def reduce_kernel(out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start):
        size = np.prod(out_shape)
        length, step = a_shape[reduce_dim], a_strides[reduce_dim]
        per_chunk = max(1, CHUNK // max(1, length))
        carries = np.empty((2, len(out_shape)), np.int64)
        _carries(out_shape, out_shape, out_strides, carries, 0)
        _carries(out_shape, a_shape, a_strides, carries, 1)  # out_shape[reduce_dim] == 1: never advanced
        for chunk in prange((size + per_chunk - 1) // per_chunk):
            first, end = chunk * per_chunk, min(size, (chunk + 1) * per_chunk)
            index = np.empty(len(out_shape), np.int64)
            to_index(first, out_shape, index)  # also a's index, with index[reduce_dim] == 0
            out_pos, a_pos = index_to_position(index, out_strides), index_to_position(index, a_strides)
            for ordinal in range(first, end):
                accumulator = start
                for j in range(length):
                    accumulator = scalar(accumulator, a[a_pos + j * step])
                out[out_pos] = accumulator
                if ordinal + 1 < end:
                    d = _advance(index, out_shape)
                    out_pos, a_pos = out_pos + carries[0, d], a_pos + carries[1, d]

    return reduce_kernel


# --- running kernels on NumPy arrays ------------------------------------------------------


def _compute_dtype(dtype: np.dtype, op: str) -> np.dtype:
    """The dtype a kernel computes ``dtype`` in; TypeError for dtypes Numba cannot compute."""
    if dtype in _HALF:
        return np.dtype(np.float32)
    if dtype.kind not in "biufc":
        raise TypeError(f"{op}: unsupported dtype {dtype}")
    return dtype


def _viewable(arr: np.ndarray) -> bool:
    """Whether a kernel can address ``arr`` in place as storage[sum(index * strides)], storage at its start."""
    addressable = all(s >= 0 and s % arr.itemsize == 0 for s in arr.strides)
    return addressable and arr.dtype not in _HALF and arr.dtype.kind in "biufc"


def storage_shape_strides(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(storage, shape, strides)`` that kernels take, viewing ``arr``'s memory without copying.

    Strides are in elements. Arrays whose strides are negative or not a multiple of the item
    size are copied first (as are float16 and bfloat16 arrays, converted to float32).

    >>> import numpy as np
    >>> storage, shape, strides = storage_shape_strides(np.arange(6.0).reshape(2, 3).T)
    >>> storage, shape, strides
    (array([0., 1., 2., 3., 4., 5.]), array([3, 2]), array([1, 3]))
    """
    if not _viewable(arr):
        arr = np.ascontiguousarray(arr, dtype=_compute_dtype(arr.dtype, "storage_shape_strides"))
    strides = np.array([s // arr.itemsize for s in arr.strides], dtype=np.int64)
    shape = np.array(arr.shape, dtype=np.int64)
    span = 0 if arr.size == 0 else 1 + int(np.sum((shape - 1) * strides))
    storage = np.lib.stride_tricks.as_strided(arr, shape=(span,), strides=(arr.itemsize,),
                                              writeable=arr.flags.writeable)
    return storage, shape, strides


def _run_into(out: np.ndarray, op: str, launch: Callable) -> np.ndarray:
    """Call ``launch(storage, shape, strides)`` on ``out`` (or on a stand-in copied into it)."""
    if not out.flags.writeable:
        raise ValueError(f"{op}: out is read-only (a broadcast view?)")
    if out.size and any(stride == 0 and extent > 1 for stride, extent in zip(out.strides, out.shape)):
        raise ValueError(f"{op}: out has overlapping elements (strides {out.strides})")
    target = out if _viewable(out) else np.empty(out.shape, _compute_dtype(out.dtype, op))
    launch(*storage_shape_strides(target))
    if target is not out:
        out[...] = target
    return out


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _output(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype, op: str) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != shape:
        raise ValueError(f"{op}: out has shape {out.shape}, expected {shape}")
    return out


def map_array(kernel: Callable, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Run a ``tensor_map`` kernel on ``x``; the result has ``x``'s shape and dtype unless ``out`` is given.

    ``out`` may be any writable view (a transpose, a slice) of a shape that ``x`` broadcasts to.

    >>> import numpy as np
    >>> map_array(tensor_map(lambda v: -v), np.array([-1.5, 2.0]))
    array([ 1.5, -2. ])
    """
    x = np.asarray(x)
    _compute_dtype(x.dtype, "map")
    shape = x.shape if out is None else out.shape
    if not _broadcasts_to(x.shape, shape):
        raise ValueError(f"map: input of shape {x.shape} does not broadcast to out of shape {shape}")
    out = _output(out, shape, x.dtype, "map")
    x_parts = storage_shape_strides(x)
    return _run_into(out, "map", lambda *out_parts: kernel(*out_parts, *x_parts))


def zip_arrays(kernel: Callable, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Run a ``tensor_zip`` kernel on ``a`` and ``b``, broadcast together as NumPy does.

    >>> import numpy as np
    >>> zip_arrays(tensor_zip(lambda x, y: x * y), np.array([[1.0], [2.0]]), np.array([3.0, 4.0]))
    array([[3., 4.],
           [6., 8.]])
    """
    a, b = np.asarray(a), np.asarray(b)
    for operand in (a, b):
        _compute_dtype(operand.dtype, "zip")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"zip: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
    out = _output(out, shape, np.result_type(a, b), "zip")
    a_parts, b_parts = storage_shape_strides(a), storage_shape_strides(b)
    return _run_into(out, "zip", lambda *out_parts: kernel(*out_parts, *a_parts, *b_parts))


def reduce_array(kernel: Callable, a: np.ndarray, dim: int, start: float,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Run a ``tensor_reduce`` kernel along ``dim`` of ``a``; the result keeps ``dim`` with size 1.

    >>> import numpy as np
    >>> largest = tensor_reduce(lambda acc, v: max(acc, v))
    >>> reduce_array(largest, np.array([[1.0, 5.0], [7.0, 2.0]]), dim=0, start=-np.inf)
    array([[7., 5.]])
    """
    a = np.asarray(a)
    _compute_dtype(a.dtype, "reduce")
    if not -a.ndim <= dim < a.ndim:
        raise IndexError(f"reduce: dim {dim} is out of range for an array of shape {a.shape}")
    dim %= a.ndim
    shape = a.shape[:dim] + (1,) + a.shape[dim + 1:]
    out = _output(out, shape, a.dtype, "reduce")
    a_parts = storage_shape_strides(a)
    return _run_into(out, "reduce", lambda *out_parts: kernel(*out_parts, *a_parts, dim, start))
