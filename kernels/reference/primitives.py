"""NumPy references for the strided primitives (``kernels.cpu.primitives``).

Same signatures as the kernels, computed another way: instead of index arithmetic, NumPy's
own stride machinery (``as_strided``) turns each flat storage back into an array view,
``np.broadcast_to`` broadcasts it, and a plain Python loop applies the scalar function.

May import: numpy.

>>> import numpy as np
>>> out = np.zeros(3)
>>> tensor_map(abs)(out, np.array([3]), np.array([1]), np.array([-1.0, 2.0, -3.0]), np.array([3]), np.array([1]))
>>> out
array([1., 2., 3.])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def index_to_position(index: np.ndarray, strides: np.ndarray) -> int:
    """Storage position of ``index``, as a dot product."""
    return int(np.dot(index, strides))


def to_index(ordinal: int, shape: np.ndarray, out_index: np.ndarray) -> None:
    """Row-major index of the ``ordinal``-th element, by ``np.unravel_index``."""
    out_index[:] = np.unravel_index(ordinal, tuple(shape))


def broadcast_index(big_index: np.ndarray, big_shape: np.ndarray, shape: np.ndarray, out_index: np.ndarray) -> None:
    """Right-aligned ``big_index``, with 0 wherever ``shape`` has size 1."""
    aligned = np.asarray(big_index)[len(big_shape) - len(shape):]
    out_index[:] = np.where(np.asarray(shape) == 1, 0, aligned)


def _view(storage: np.ndarray, shape: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """The array that (storage, shape, strides) describes, as a NumPy view."""
    byte_strides = tuple(int(s) * storage.itemsize for s in strides)
    return np.lib.stride_tricks.as_strided(storage, shape=tuple(shape), strides=byte_strides)


def tensor_map(fn: Callable) -> Callable:
    """``map(out, out_shape, out_strides, in_storage, in_shape, in_strides)``, one element at a time."""
    def map_reference(out, out_shape, out_strides, in_storage, in_shape, in_strides):
        source = np.broadcast_to(_view(in_storage, in_shape, in_strides), tuple(out_shape))
        target = _view(out, out_shape, out_strides)
        for index in np.ndindex(*target.shape):
            target[index] = fn(source[index])

    return map_reference


def tensor_zip(fn: Callable) -> Callable:
    """``zip(out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides)``, one element at a time."""
    def zip_reference(out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides):
        left = np.broadcast_to(_view(a, a_shape, a_strides), tuple(out_shape))
        right = np.broadcast_to(_view(b, b_shape, b_strides), tuple(out_shape))
        target = _view(out, out_shape, out_strides)
        for index in np.ndindex(*target.shape):
            target[index] = fn(left[index], right[index])

    return zip_reference


def tensor_reduce(fn: Callable) -> Callable:
    """``reduce(out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start)``, one output at a time."""
    def reduce_reference(out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start):
        source = np.moveaxis(_view(a, a_shape, a_strides), reduce_dim, -1)
        target = np.moveaxis(_view(out, out_shape, out_strides), reduce_dim, -1)
        for index in np.ndindex(*target.shape[:-1]):
            accumulator = start
            for value in source[index]:
                accumulator = fn(accumulator, value)
            target[index][0] = accumulator

    return reduce_reference
