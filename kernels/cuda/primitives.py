"""MiniTorch's ``tensor_map``, ``tensor_zip`` and ``tensor_reduce`` on the GPU, with the CPU twins' signatures.

The three factories take a scalar function and return a launcher with exactly the signature of
the kernel that ``dslearn.kernels.cpu.primitives`` builds from the same function::

    map    (out, out_shape, out_strides, in_storage, in_shape, in_strides)
    zip    (out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides)
    reduce (out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start)

Storages are flat Numba device arrays; shapes and strides (in elements) are sequences of ints,
passed to the kernel as tuples (by value: no copy to the GPU). Broadcasting works as on the CPU:
a dimension of size 1 is repeated. ``block_reducer`` builds the block-wide reduction that the
reduce kernel, softmax and the norms share.

Where the CPU kernel walks its share of the elements like an odometer, a GPU thread handles
element ``ordinal`` and finds its storage positions from scratch (``broadcast_position``): a
few integer divisions, cheap next to a read from global memory, and threads stay independent.

May import: numpy, numba, dslearn.kernels.cuda.runtime.

>>> import numpy as np
>>> from numba import cuda
>>> double = tensor_map(lambda x: 2.0 * x)
>>> out = cuda.device_array(3)
>>> double(out, [3], [1], cuda.to_device(np.array([1.0, 2.0, 3.0])), [3], [1])
>>> out.copy_to_host()
array([2., 4., 6.])
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Sequence

import numpy as np
from dslearn.kernels.cuda.runtime import MAX_BLOCKS, SIMULATOR, THREADS, WARP, blocks_for
from numba import cuda
from numba.np import numpy_support

USE_SHUFFLE = not SIMULATOR and THREADS >= 2 * WARP  # the simulator has no warp shuffles
FULL_MASK = 0xFFFFFFFF
SPLIT_LENGTH = 32 * THREADS  # a reduced dimension longer than this is split between blocks, then combined


# --- index helpers (device functions) -----------------------------------------------------


@cuda.jit(device=True)
def shape_size(shape):
    """The number of elements of ``shape`` (a tuple)."""
    size = 1
    for d in range(len(shape)):
        size *= shape[d]
    return size


@cuda.jit(device=True)
def broadcast_position(ordinal, out_shape, shape, strides):
    """Storage position, in an operand of ``shape`` and ``strides``, of the ``ordinal``-th element of
    ``out_shape`` in row-major order, the operand broadcast to ``out_shape`` (NumPy's rules)."""
    offset = len(out_shape) - len(shape)
    position = 0
    for d in range(len(out_shape) - 1, -1, -1):
        index = ordinal % out_shape[d]
        ordinal //= out_shape[d]
        if d >= offset and shape[d - offset] > 1:
            position += index * strides[d - offset]
    return position


@cuda.jit(device=True)
def reduce_positions(ordinal, out_shape, out_strides, a_strides, reduce_dim, chunk):
    """Positions in ``out`` and ``a`` of output ``ordinal``; along ``reduce_dim`` the output index ``p``
    says which chunk of ``chunk`` elements it reduces (0 unless a long dimension was split)."""
    out_position, a_position, first = 0, 0, 0
    for d in range(len(out_shape) - 1, -1, -1):
        index = ordinal % out_shape[d]
        ordinal //= out_shape[d]
        out_position += index * out_strides[d]
        if d == reduce_dim:
            first = index * chunk
            a_position += first * a_strides[d]
        else:
            a_position += index * a_strides[d]
    return out_position, a_position, first


# --- launch arguments ---------------------------------------------------------------------


def launch_tuple(values: Sequence[int]) -> tuple[int, ...]:
    """A shape or strides as a kernel argument: a tuple of ints, at least one long (a 0-d array is a
    1-element one), passed by value.

    >>> launch_tuple([]), launch_tuple((2, 3))
    ((1,), (2, 3))
    """
    ints = tuple(int(v) for v in values)
    return ints or (1,)


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major strides, in elements, of a gap-free array of ``shape``.

    >>> contiguous_strides((2, 3, 4))
    (12, 4, 1)
    """
    strides, step = [], 1
    for size in reversed(tuple(shape)):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def _contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides)):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _device_function(fn: Callable) -> Callable:
    """``fn`` compiled for the GPU, unless it already is."""
    return cuda.jit(device=True)(fn) if isinstance(fn, types.FunctionType) else fn


# --- kernel factories -----------------------------------------------------------------------


def tensor_map(fn: Callable) -> Callable:
    """A launcher ``map(out, out_shape, out_strides, in_storage, in_shape, in_strides)``: ``out[i] = fn(in[i])``.

    Performance contract: one thread per element in a grid-stride loop; each element read once
    from global memory and written once; no shared memory. Contiguous operands of one shape skip
    the index arithmetic (consecutive threads touch consecutive addresses: coalesced).

    >>> import numpy as np
    >>> from numba import cuda
    >>> out = cuda.device_array(4)  # the (2, 2) transpose of a contiguous (2, 2) input
    >>> tensor_map(lambda x: -x)(out, [2, 2], [2, 1], cuda.to_device(np.arange(4.0)), [2, 2], [1, 2])
    >>> out.copy_to_host()
    array([-0., -2., -1., -3.])
    """
    scalar = _device_function(fn)

    @cuda.jit
    def map_kernel(out, out_shape, out_strides, in_storage, in_shape, in_strides, flat):
        for ordinal in range(cuda.grid(1), shape_size(out_shape), cuda.gridsize(1)):
            if flat:
                out[ordinal] = scalar(in_storage[ordinal])
            else:
                value = in_storage[broadcast_position(ordinal, out_shape, in_shape, in_strides)]
                out[broadcast_position(ordinal, out_shape, out_shape, out_strides)] = scalar(value)

    def map_launch(out, out_shape, out_strides, in_storage, in_shape, in_strides) -> None:
        out_shape, out_strides = launch_tuple(out_shape), launch_tuple(out_strides)
        in_shape, in_strides = launch_tuple(in_shape), launch_tuple(in_strides)
        flat = out_shape == in_shape and _contiguous(out_shape, out_strides) and _contiguous(in_shape, in_strides)
        map_kernel[blocks_for(math.prod(out_shape)), THREADS](out, out_shape, out_strides, in_storage, in_shape,
                                                              in_strides, flat)

    map_launch.kernel = map_kernel
    return map_launch


def tensor_zip(fn: Callable) -> Callable:
    """A launcher ``zip(out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides)``.

    ``out[i] = fn(a[i], b[i])``, ``a`` and ``b`` broadcast to ``out_shape``.

    Performance contract: as ``tensor_map``: one thread per element, grid-stride loop, one read of
    each operand element and one write; a flat path for contiguous operands of one shape.

    >>> import numpy as np
    >>> from numba import cuda
    >>> out = cuda.device_array(4)  # a (2, 1) column plus a (2,) row, broadcast to (2, 2)
    >>> tensor_zip(lambda x, y: x + y)(out, [2, 2], [2, 1], cuda.to_device(np.array([0.0, 10.0])), [2, 1], [1, 1],
    ...                                cuda.to_device(np.array([1.0, 2.0])), [2], [1])
    >>> out.copy_to_host()
    array([ 1.,  2., 11., 12.])
    """
    scalar = _device_function(fn)

    @cuda.jit
    def zip_kernel(out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides, flat):
        for ordinal in range(cuda.grid(1), shape_size(out_shape), cuda.gridsize(1)):
            if flat:
                out[ordinal] = scalar(a[ordinal], b[ordinal])
            else:
                left = a[broadcast_position(ordinal, out_shape, a_shape, a_strides)]
                right = b[broadcast_position(ordinal, out_shape, b_shape, b_strides)]
                out[broadcast_position(ordinal, out_shape, out_shape, out_strides)] = scalar(left, right)

    def zip_launch(out, out_shape, out_strides, a, a_shape, a_strides, b, b_shape, b_strides) -> None:
        out_shape, out_strides = launch_tuple(out_shape), launch_tuple(out_strides)
        a_shape, a_strides = launch_tuple(a_shape), launch_tuple(a_strides)
        b_shape, b_strides = launch_tuple(b_shape), launch_tuple(b_strides)
        flat = (out_shape == a_shape == b_shape and _contiguous(out_shape, out_strides)
                and _contiguous(a_shape, a_strides) and _contiguous(b_shape, b_strides))
        zip_kernel[blocks_for(math.prod(out_shape)), THREADS](out, out_shape, out_strides, a, a_shape, a_strides,
                                                              b, b_shape, b_strides, flat)

    zip_launch.kernel = zip_kernel
    return zip_launch


def block_reducer(combine: Callable) -> Callable:
    """A device function ``block_reduce(value, partial)``: every thread of a block passes its value and
    gets back ``combine`` of all of them. ``partial`` is a shared array of one slot per thread.

    The block size must be a power of two. The values are combined in shared memory, halving the
    number of active threads at each step (a tree, ``log2(threads)`` steps, a barrier after each).
    On a GPU the last 32 values are combined inside one warp with register shuffles
    (``cuda.shfl_down_sync``), which need no shared memory and no barrier; the simulator has no
    shuffles and finishes the tree in shared memory.
    """
    combine = _device_function(combine)

    @cuda.jit(device=True)
    def block_reduce(value, partial):
        tid = cuda.threadIdx.x
        partial[tid] = value
        cuda.syncthreads()
        width = cuda.blockDim.x // 2
        while width >= (WARP if USE_SHUFFLE else 1):
            if tid < width:
                partial[tid] = combine(partial[tid], partial[tid + width])
            cuda.syncthreads()
            width //= 2
        if USE_SHUFFLE:
            if tid < WARP:
                value = partial[tid]
                offset = WARP // 2
                while offset > 0:
                    value = combine(value, cuda.shfl_down_sync(FULL_MASK, value, offset))
                    offset //= 2
                if tid == 0:
                    partial[0] = value
            cuda.syncthreads()
        result = partial[0]
        cuda.syncthreads()  # every thread has read the result before ``partial`` is reused
        return result

    return block_reduce


def tensor_reduce(fn: Callable) -> Callable:
    """A launcher ``reduce(out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start)``.

    ``out_shape`` is ``a_shape`` with ``a_shape[reduce_dim]`` replaced by 1; each output is ``fn``
    folded over its slice of ``a``, starting from ``start`` (``fn`` must be associative: the GPU
    combines partial results in a tree, not left to right).

    Performance contract: one block per output (grid-stride over outputs); each thread folds a
    strided share of the slice in a register (consecutive threads read consecutive elements
    when the reduced dimension is contiguous), then the block combines the partial results
    (``block_reducer``: shared memory, warp shuffles on a GPU); one global write per output. A
    long dimension with few outputs is split into chunks reduced by separate blocks, then the
    chunks' results are reduced again, so that all of the GPU works on a full sum.

    >>> import numpy as np
    >>> from numba import cuda
    >>> out = cuda.device_array(2)
    >>> tensor_reduce(lambda acc, x: acc + x)(out, [2, 1], [1, 1], cuda.to_device(np.arange(6.0)), [2, 3], [3, 1],
    ...                                       1, 0.0)
    >>> out.copy_to_host()
    array([ 3., 12.])
    """
    block_reduce = block_reducer(fn)
    scalar = _device_function(fn)
    kernels: dict[np.dtype, Callable] = {}

    def kernel_for(dtype: np.dtype) -> Callable:
        if dtype not in kernels:
            item = numpy_support.from_dtype(dtype)

            @cuda.jit
            def reduce_kernel(out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start, chunk):
                partial = cuda.shared.array(THREADS, item)
                length, step = a_shape[reduce_dim], a_strides[reduce_dim]
                for ordinal in range(cuda.blockIdx.x, shape_size(out_shape), cuda.gridDim.x):
                    out_position, a_position, first = reduce_positions(ordinal, out_shape, out_strides, a_strides,
                                                                       reduce_dim, chunk)
                    accumulator = start
                    for j in range(cuda.threadIdx.x, min(chunk, length - first), cuda.blockDim.x):
                        accumulator = scalar(accumulator, a[a_position + j * step])
                    total = block_reduce(accumulator, partial)
                    if cuda.threadIdx.x == 0:
                        out[out_position] = total

            kernels[dtype] = reduce_kernel
        return kernels[dtype]

    def reduce_launch(out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim, start) -> None:
        out_shape, out_strides = launch_tuple(out_shape), launch_tuple(out_strides)
        a_shape, a_strides = launch_tuple(a_shape), launch_tuple(a_strides)
        length, outputs = a_shape[reduce_dim], math.prod(out_shape)
        kernel = kernel_for(out.dtype)
        start = out.dtype.type(start)
        if length <= SPLIT_LENGTH or outputs >= MAX_BLOCKS:  # enough outputs to keep every block busy
            kernel[blocks_for(outputs, 1), THREADS](out, out_shape, out_strides, a, a_shape, a_strides, reduce_dim,
                                                    start, max(length, 1))
            return
        parts = -(-length // SPLIT_LENGTH)  # first pass: each block reduces a chunk into ``partials``
        partial_shape = out_shape[:reduce_dim] + (parts,) + out_shape[reduce_dim + 1:]
        partials = cuda.device_array(math.prod(partial_shape), out.dtype)
        partial_strides = contiguous_strides(partial_shape)
        kernel[blocks_for(outputs * parts, 1), THREADS](partials, partial_shape, partial_strides, a, a_shape,
                                                        a_strides, reduce_dim, start, SPLIT_LENGTH)
        reduce_launch(out, out_shape, out_strides, partials, partial_shape, partial_strides, reduce_dim, start)

    reduce_launch.kernel_for = kernel_for
    return reduce_launch
