"""2-D max and average pooling on the GPU, forward and backward: twins of ``dslearn.kernels.cpu.pool``.

Same functions and signatures, ``CudaArray`` in and out: ``max_pool``, ``scatter_to_windows``,
``gather_from_windows``, ``avg_pool`` and ``avg_pool_backward``. The window tables (``rows`` and
``cols``: where each output's window starts and how many pixels it covers) are the CPU module's
(``pool_windows``, ``adaptive_windows``), computed on the host and copied over; so every
pooling flavour (padding, dilation, ``ceil_mode``, adaptive) is the same kernel here too.

One thread per output value for the forward kernels and for the gather. The two backward
kernels *scatter*: each output's gradient goes to the pixel(s) of its window, and windows may
overlap, so two threads can add into the same pixel: they use ``cuda.atomic.add``, which
makes the additions safe (in an order that varies from run to run, so float sums may differ
in the last bits between runs).

Performance contract: one thread per output (per input pixel for the zeroing pass), grid-stride
loops, coalesced along the last axis; backward adds are atomic.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from dslearn.kernels.cpu.pool import pool_windows
>>> from dslearn.kernels.cuda.array import CudaArray
>>> rows = pool_windows(4, 2, 2, 0, 1, 2)
>>> x = CudaArray.from_numpy(np.arange(16, dtype=np.float32).reshape(1, 4, 4))
>>> [a.to_numpy().tolist() for a in max_pool(x, rows, rows, (1, 1))]
[[[[5.0, 7.0], [13.0, 15.0]]], [[[5, 7], [13, 15]]]]
"""

from __future__ import annotations

import math

import numpy as np
from dslearn.kernels.cuda import numpy_api
from dslearn.kernels.cuda.array import CudaArray
from dslearn.kernels.cuda.runtime import THREADS, blocks_for
from numba import cuda

Windows = tuple[np.ndarray, np.ndarray]  # (start, count), one entry per output position


@cuda.jit
def max_pool_kernel(x, row_start, row_count, col_start, col_count, dilation_h, dilation_w, out, indices):
    """``out[p, oh, ow]`` = largest pixel of its window, ``indices`` its flat position in the plane.

    The CPU kernel's choices: row by row, the first maximum wins, a later NaN replaces anything.
    """
    planes, out_h, out_w = out.shape
    width = x.shape[2]
    for ordinal in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow, oh, p = ordinal % out_w, (ordinal // out_w) % out_h, ordinal // (out_w * out_h)
        r0, c0 = row_start[oh], col_start[ow]
        best, where = -math.inf, r0 * width + c0
        for a in range(row_count[oh]):
            r = r0 + a * dilation_h
            for b in range(col_count[ow]):
                v = x[p, r, c0 + b * dilation_w]
                if v > best or v != v:
                    best, where = v, r * width + c0 + b * dilation_w
        out[p, oh, ow] = best
        indices[p, oh, ow] = where


@cuda.jit
def zero_kernel(out):
    """``out[:] = 0`` for a flat array."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = 0


@cuda.jit
def scatter_kernel(grad, indices, out):
    """``out[p, indices[p, k]] += grad[p, k]`` (``out`` zeroed first): max pooling's backward; atomic adds."""
    for ordinal in range(cuda.grid(1), grad.size, cuda.gridsize(1)):
        p, k = ordinal // grad.shape[1], ordinal % grad.shape[1]
        cuda.atomic.add(out, (p, indices[p, k]), grad[p, k])


@cuda.jit
def gather_kernel(src, indices, out):
    """``out[p, k] = src[p, indices[p, k]]``: the adjoint of ``scatter_kernel``."""
    for ordinal in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        p, k = ordinal // out.shape[1], ordinal % out.shape[1]
        out[p, k] = src[p, indices[p, k]]


@cuda.jit
def avg_pool_kernel(x, row_start, row_count, col_start, col_count, divisor, out):
    """``out[p, oh, ow]`` = sum of its window divided by ``divisor[oh, ow]``; the sum stays in a register."""
    planes, out_h, out_w = out.shape
    for ordinal in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        ow, oh, p = ordinal % out_w, (ordinal // out_w) % out_h, ordinal // (out_w * out_h)
        total = divisor[oh, ow] * 0  # a zero in the arrays' dtype
        for r in range(row_start[oh], row_start[oh] + row_count[oh]):
            for c in range(col_start[ow], col_start[ow] + col_count[ow]):
                total += x[p, r, c]
        out[p, oh, ow] = total / divisor[oh, ow]


@cuda.jit
def avg_pool_backward_kernel(grad, row_start, row_count, col_start, col_count, divisor, out):
    """Add ``grad[p, oh, ow] / divisor[oh, ow]`` to every pixel of its window (``out`` zeroed first); atomic."""
    planes, out_h, out_w = grad.shape
    for ordinal in range(cuda.grid(1), grad.size, cuda.gridsize(1)):
        ow, oh, p = ordinal % out_w, (ordinal // out_w) % out_h, ordinal // (out_w * out_h)
        share = grad[p, oh, ow] / divisor[oh, ow]
        for r in range(row_start[oh], row_start[oh] + row_count[oh]):
            for c in range(col_start[ow], col_start[ow] + col_count[ow]):
                cuda.atomic.add(out, (p, r, c), share)


# -- wrappers: NCHW CudaArrays of any float dtype in, the same dtype out -----------------------------------


def _planes(x: CudaArray):
    """``x`` as a C-contiguous (N * C, H, W) float32/float64 device array."""
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return x.astype(dtype, copy=False).reshape(-1, *x.shape[-2:]).device_array()


def _tables(rows: Windows, cols: Windows) -> list:
    return [numpy_api.on_device(np.ascontiguousarray(t, dtype=np.int64)).device_array() for t in (*rows, *cols)]


def _zeros(shape: tuple[int, ...], dtype) -> CudaArray:
    out = CudaArray.empty(shape, dtype)
    if out.size:
        zero_kernel[blocks_for(out.size), THREADS](out.storage)
    return out


def max_pool(x: CudaArray, rows: Windows, cols: Windows, dilation: tuple[int, int]) -> tuple[CudaArray, CudaArray]:
    """Max pooling of the last two axes: values (in ``x``'s dtype) and int64 flat indices."""
    planes = _planes(x)
    out_shape = (planes.shape[0], len(rows[0]), len(cols[0]))
    out, indices = CudaArray.empty(out_shape, planes.dtype), CudaArray.empty(out_shape, np.int64)
    if out.size:
        max_pool_kernel[blocks_for(out.size), THREADS](planes, *_tables(rows, cols), *dilation, out.device_array(),
                                                       indices.device_array())
    shape = x.shape[:-2] + out_shape[1:]
    return out.reshape(shape).astype(x.dtype, copy=False), indices.reshape(shape)


def scatter_to_windows(grad: CudaArray, indices: CudaArray, input_hw: tuple[int, int]) -> CudaArray:
    """Max pooling's backward: each gradient goes to the pixel its output was taken from."""
    planes = _planes(grad).reshape(-1, indices.shape[-2] * indices.shape[-1])
    out = _zeros((planes.shape[0], input_hw[0] * input_hw[1]), planes.dtype)
    if planes.size:
        scatter_kernel[blocks_for(planes.size), THREADS](planes, indices.reshape(planes.shape).device_array(),
                                                         out.device_array())
    return out.reshape(grad.shape[:-2] + tuple(input_hw)).astype(grad.dtype, copy=False)


def gather_from_windows(src: CudaArray, indices: CudaArray) -> CudaArray:
    """The adjoint of ``scatter_to_windows``: pick ``src``'s pixel at each index."""
    planes = _planes(src).reshape(-1, src.shape[-2] * src.shape[-1])
    flat_indices = indices.reshape(planes.shape[0], -1)
    out = CudaArray.empty(flat_indices.shape, planes.dtype)
    if out.size:
        gather_kernel[blocks_for(out.size), THREADS](planes, flat_indices.device_array(), out.device_array())
    return out.reshape(indices.shape).astype(src.dtype, copy=False)


def avg_pool(x: CudaArray, rows: Windows, cols: Windows, divisor: np.ndarray) -> CudaArray:
    """Average pooling of the last two axes: window sums divided by ``divisor`` (OH, OW)."""
    planes = _planes(x)
    out = CudaArray.empty((planes.shape[0], len(rows[0]), len(cols[0])), planes.dtype)
    if out.size:
        avg_pool_kernel[blocks_for(out.size), THREADS](planes, *_tables(rows, cols),
                                                       numpy_api.on_device(divisor, planes.dtype).device_array(),
                                                       out.device_array())
    return out.reshape(x.shape[:-2] + out.shape[1:]).astype(x.dtype, copy=False)


def avg_pool_backward(grad: CudaArray, rows: Windows, cols: Windows, divisor: np.ndarray,
                      input_hw: tuple[int, int]) -> CudaArray:
    """Average pooling's backward: each output's gradient, divided, spread over its window."""
    planes = _planes(grad)
    out = _zeros((planes.shape[0], *input_hw), planes.dtype)
    if planes.size:
        avg_pool_backward_kernel[blocks_for(planes.size), THREADS](
            planes, *_tables(rows, cols), numpy_api.on_device(divisor, planes.dtype).device_array(),
            out.device_array())
    return out.reshape(grad.shape[:-2] + tuple(input_hw)).astype(grad.dtype, copy=False)
