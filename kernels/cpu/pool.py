"""2-D max and average pooling on the CPU, forward and backward, as Numba kernels.

Every pooling flavour (plain, padded, dilated, ``ceil_mode``, adaptive) reduces to the same
picture: output row ``oh`` looks at ``count`` input rows starting at ``start[oh]``, ``step``
apart, and likewise for columns. ``pool_windows`` and ``adaptive_windows`` compute these
tables (padding is already clipped away: a window lists only the pixels that exist), and the
kernels loop over them. Average pooling divides each window's sum by a per-output divisor,
which is where ``count_include_pad`` and ``divisor_override`` come in.

Kernels see the input as (planes, H, W), one plane per (image, channel), and run the planes
in parallel: planes never share pixels, so backward scatters need no atomics. Max pooling
records, for each output, the flat index ``h * W + w`` of the winner within its plane (the
``indices`` PyTorch returns); the backward pass scatters through them and the gather kernel
is that scatter's adjoint. float16/bfloat16 are computed in float32 and cast back.

May import: numpy, numba.

>>> import numpy as np
>>> rows = pool_windows(4, 2, 2, 0, 1, 2)
>>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
>>> max_pool(x, rows, rows, (1, 1))
(array([[[ 5.,  7.],
        [13., 15.]]], dtype=float32), array([[[ 5,  7],
        [13, 15]]]))
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

Windows = tuple[np.ndarray, np.ndarray]  # (start, count), one entry per output position


@njit(parallel=True, cache=True)
def max_pool_kernel(x, row_start, row_count, col_start, col_count, dilation_h, dilation_w, out, indices):
    """``out[p, oh, ow]`` = largest pixel of its window, ``indices`` its flat position in the plane.

    NaN wins (as in PyTorch): a window holding NaN yields NaN. Performance contract: parallel
    over planes; the window tables are tiny and stay in L1; no allocation.
    """
    width = x.shape[2]
    for p in prange(x.shape[0]):
        plane = x[p]
        for oh in range(out.shape[1]):
            r0, rows = row_start[oh], row_count[oh]
            for ow in range(out.shape[2]):
                c0, cols = col_start[ow], col_count[ow]
                best, where = plane.dtype.type(-np.inf), r0 * width + c0
                for a in range(rows):
                    r = r0 + a * dilation_h
                    for b in range(cols):
                        v = plane[r, c0 + b * dilation_w]
                        if v > best or v != v:
                            best, where = v, r * width + c0 + b * dilation_w
                out[p, oh, ow] = best
                indices[p, oh, ow] = where


@njit(parallel=True, cache=True)
def scatter_kernel(grad, indices, out):
    """``out[p]`` = zeros, then ``out[p, indices[p, k]] += grad[p, k]``: max pooling's backward.

    Performance contract: parallel over planes (no write conflicts); one pass over ``grad``.
    """
    for p in prange(out.shape[0]):
        plane = out[p]
        plane[:] = 0
        for k in range(grad.shape[1]):
            plane[indices[p, k]] += grad[p, k]


@njit(parallel=True, cache=True)
def gather_kernel(src, indices, out):
    """``out[p, k] = src[p, indices[p, k]]``: the adjoint of ``scatter_kernel``. Parallel over planes."""
    for p in prange(out.shape[0]):
        for k in range(out.shape[1]):
            out[p, k] = src[p, indices[p, k]]


@njit(parallel=True, cache=True)
def avg_pool_kernel(x, row_start, row_count, col_start, col_count, divisor, out):
    """``out[p, oh, ow]`` = sum of its window divided by ``divisor[oh, ow]``.

    Performance contract: parallel over planes; the sum is kept in a register.
    """
    for p in prange(x.shape[0]):
        plane = x[p]
        for oh in range(out.shape[1]):
            r0, rows = row_start[oh], row_count[oh]
            for ow in range(out.shape[2]):
                c0, cols = col_start[ow], col_count[ow]
                total = plane.dtype.type(0)
                for r in range(r0, r0 + rows):
                    for c in range(c0, c0 + cols):
                        total += plane[r, c]
                out[p, oh, ow] = total / divisor[oh, ow]


@njit(parallel=True, cache=True)
def avg_pool_backward_kernel(grad, row_start, row_count, col_start, col_count, divisor, out):
    """Spread ``grad[p, oh, ow] / divisor[oh, ow]`` over its window in ``out[p]``: average pooling's adjoint.

    Performance contract: parallel over planes (no write conflicts); no allocation.
    """
    for p in prange(out.shape[0]):
        plane = out[p]
        plane[:] = 0
        for oh in range(grad.shape[1]):
            r0, rows = row_start[oh], row_count[oh]
            for ow in range(grad.shape[2]):
                c0, cols = col_start[ow], col_count[ow]
                share = grad[p, oh, ow] / divisor[oh, ow]
                for r in range(r0, r0 + rows):
                    for c in range(c0, c0 + cols):
                        plane[r, c] += share


# -- window tables --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def pool_windows(size: int, kernel: int, stride: int, padding: int, dilation: int, out_size: int) -> Windows:
    """Window ``o`` covers taps ``o * stride - padding + t * dilation``, t < kernel; keep those inside.

    Cached (a network asks for the same few tables every step): treat the arrays as read-only.
    """
    first = np.arange(out_size, dtype=np.int64) * stride - padding
    skipped = np.maximum(-first + dilation - 1, 0) // dilation  # taps that fall in the leading padding
    last = np.minimum(kernel, np.maximum(size - first + dilation - 1, 0) // dilation)  # one past the last tap
    return first + skipped * dilation, np.maximum(last - skipped, 0)


@functools.lru_cache(maxsize=256)
def adaptive_windows(size: int, out_size: int) -> Windows:
    """PyTorch's adaptive bins: window ``o`` is ``[floor(o * size / out), ceil((o + 1) * size / out))``.

    Cached like ``pool_windows``: treat the arrays as read-only.
    """
    o = np.arange(out_size, dtype=np.int64)
    start = o * size // out_size
    return start, ((o + 1) * size + out_size - 1) // out_size - start


def avg_pool_divisor(input_hw: tuple[int, int], kernel_size: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int], out_hw: tuple[int, int], count_include_pad: bool) -> np.ndarray:
    """PyTorch's divisor of each average-pooling window, (OH, OW).

    With ``count_include_pad`` it is the window's area clipped to the padded input (a window
    that ``ceil_mode`` lets run past the padding counts only up to it); without, the number
    of real pixels in the window.
    """
    sizes = []
    for size, kernel, step, pad, out_size in zip(input_hw, kernel_size, stride, padding, out_hw):
        if count_include_pad:
            first = np.arange(out_size, dtype=np.int64) * step - pad
            sizes.append(np.minimum(first + kernel, size + pad) - first)
        else:
            sizes.append(pool_windows(size, kernel, step, pad, 1, out_size)[1])
    return np.outer(sizes[0], sizes[1]).astype(np.float64)


# -- wrappers: NCHW arrays of any float dtype in, the same dtype out -----------------------------------


def _planes(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous (N * C, H, W) float32/float64 array."""
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return np.ascontiguousarray(x, dtype=dtype).reshape(-1, *x.shape[-2:])


def max_pool(x: np.ndarray, rows: Windows, cols: Windows, dilation: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling of the last two axes: values (in ``x``'s dtype) and int64 flat indices."""
    planes = _planes(x)
    out_shape = (planes.shape[0], len(rows[0]), len(cols[0]))
    out, indices = np.empty(out_shape, planes.dtype), np.empty(out_shape, np.int64)
    max_pool_kernel(planes, *rows, *cols, *dilation, out, indices)
    shape = x.shape[:-2] + out_shape[1:]
    return out.reshape(shape).astype(x.dtype, copy=False), indices.reshape(shape)


def scatter_to_windows(grad: np.ndarray, indices: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """Max pooling's backward: each gradient goes to the pixel its output was taken from."""
    planes = _planes(grad).reshape(-1, indices.shape[-2] * indices.shape[-1])
    out = np.empty((planes.shape[0], input_hw[0] * input_hw[1]), planes.dtype)
    scatter_kernel(planes, np.ascontiguousarray(indices).reshape(planes.shape), out)
    return out.reshape(grad.shape[:-2] + tuple(input_hw)).astype(grad.dtype, copy=False)


def gather_from_windows(src: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The adjoint of ``scatter_to_windows``: pick ``src``'s pixel at each index."""
    planes = _planes(src).reshape(-1, src.shape[-2] * src.shape[-1])
    flat_indices = np.ascontiguousarray(indices).reshape(planes.shape[0], -1)
    out = np.empty(flat_indices.shape, planes.dtype)
    gather_kernel(planes, flat_indices, out)
    return out.reshape(indices.shape).astype(src.dtype, copy=False)


def avg_pool(x: np.ndarray, rows: Windows, cols: Windows, divisor: np.ndarray) -> np.ndarray:
    """Average pooling of the last two axes: window sums divided by ``divisor`` (OH, OW)."""
    planes = _planes(x)
    out = np.empty((planes.shape[0], len(rows[0]), len(cols[0])), planes.dtype)
    avg_pool_kernel(planes, *rows, *cols, divisor.astype(planes.dtype), out)
    return out.reshape(x.shape[:-2] + out.shape[1:]).astype(x.dtype, copy=False)


def avg_pool_backward(grad: np.ndarray, rows: Windows, cols: Windows, divisor: np.ndarray,
                      input_hw: tuple[int, int]) -> np.ndarray:
    """Average pooling's backward: each output's gradient, divided, spread over its window."""
    planes = _planes(grad)
    out = np.empty((planes.shape[0], *input_hw), planes.dtype)
    avg_pool_backward_kernel(planes, *rows, *cols, divisor.astype(planes.dtype), out)
    return out.reshape(grad.shape[:-2] + tuple(input_hw)).astype(grad.dtype, copy=False)
