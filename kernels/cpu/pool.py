"""2-D max and average pooling on the CPU, forward and backward, as Numba kernels.

Every pooling flavour (plain, padded, dilated, ``ceil_mode``, adaptive) reduces to the same
picture: output row ``oh`` looks at ``count`` input rows starting at ``start[oh]``, ``step``
apart, and likewise for columns. ``pool_windows`` and ``adaptive_windows`` compute these
tables (padding is already clipped away: a window lists only the pixels that exist), and the
kernels loop over them. Average pooling divides each window's sum by a per-output divisor,
which is where ``count_include_pad`` and ``divisor_override`` come in.

Kernels see the input as (planes, H, W), one plane per (image, channel), and run the planes
in parallel once there are enough pixels to pay for waking the threads (below that, on the
calling thread): planes never share pixels, so backward scatters need no atomics. The most
common window, 2x2 at stride 2, has a path of its own without tables or branches. Max pooling
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


# Below this many pixels a kernel runs on the calling thread: waking the sleeping worker threads
# (OMP_WAIT_POLICY=PASSIVE) costs 30 to 100 microseconds here, about what a 2x2 max pool of a
# million float32 pixels takes on one core.
PARALLEL_MIN_ELEMENTS = 1 << 20


@njit(cache=True)
def _max_pool_plane(plane, row_start, row_count, col_start, col_count, dilation_h, dilation_w, out, indices):
    """Max pooling of one plane through the window tables (any kernel, stride, padding, dilation)."""
    width = plane.shape[1]
    for oh in range(out.shape[0]):
        r0, rows = row_start[oh], row_count[oh]
        for ow in range(out.shape[1]):
            c0, cols = col_start[ow], col_count[ow]
            best, where = plane.dtype.type(-np.inf), r0 * width + c0
            for a in range(rows):
                r = r0 + a * dilation_h
                for b in range(cols):
                    v = plane[r, c0 + b * dilation_w]
                    if v > best or v != v:
                        best, where = v, r * width + c0 + b * dilation_w
            out[oh, ow] = best
            indices[oh, ow] = where


@njit(cache=True)
def _max_pool_2x2_plane(plane, out, indices):
    """Max pooling of one plane with 2x2 windows at stride 2: the same choices, no tables, no branches.

    A window's four pixels are compared in the generic kernel's order (row by row, the first
    maximum wins, a later NaN replaces anything), written as selects.
    """
    width = plane.shape[1]
    for oh in range(out.shape[0]):
        top, bottom, values, where = plane[2 * oh], plane[2 * oh + 1], out[oh], indices[oh]
        for ow in range(out.shape[1]):
            c = 2 * ow
            a0, a1, b0, b1 = top[c], top[c + 1], bottom[c], bottom[c + 1]
            take = a1 > a0 or a1 != a1
            best, at = (a1, 1) if take else (a0, 0)
            take = b0 > best or b0 != b0
            best, at = (b0, width) if take else (best, at)
            take = b1 > best or b1 != b1
            best, at = (b1, width + 1) if take else (best, at)
            values[ow] = best
            where[ow] = 2 * oh * width + c + at


@njit(cache=True)
def _is_2x2(start, count, dilation):
    """True when window ``o`` covers exactly pixels ``2o`` and ``2o + 1``."""
    if dilation != 1:
        return False
    for o in range(start.shape[0]):
        if start[o] != 2 * o or count[o] != 2:
            return False
    return True


@njit(parallel=True, cache=True)
def max_pool_kernel(x, row_start, row_count, col_start, col_count, dilation_h, dilation_w, out, indices):
    """``out[p, oh, ow]`` = largest pixel of its window, ``indices`` its flat position in the plane.

    NaN wins (as in PyTorch): a window holding NaN yields NaN. Performance contract: planes in
    parallel from ``PARALLEL_MIN_ELEMENTS`` pixels on; 2x2 windows at stride 2 take a
    branch-free path (one pass over the input, near memory speed); otherwise the window tables
    are tiny and stay in L1; no allocation.
    """
    if _is_2x2(row_start, row_count, dilation_h) and _is_2x2(col_start, col_count, dilation_w):
        if x.size < PARALLEL_MIN_ELEMENTS:
            for p in range(x.shape[0]):
                _max_pool_2x2_plane(x[p], out[p], indices[p])
        else:
            for p in prange(x.shape[0]):
                _max_pool_2x2_plane(x[p], out[p], indices[p])
    elif x.size < PARALLEL_MIN_ELEMENTS:
        for p in range(x.shape[0]):
            _max_pool_plane(x[p], row_start, row_count, col_start, col_count, dilation_h, dilation_w, out[p],
                            indices[p])
    else:
        for p in prange(x.shape[0]):
            _max_pool_plane(x[p], row_start, row_count, col_start, col_count, dilation_h, dilation_w, out[p],
                            indices[p])


@njit(cache=True)
def _scatter_plane(grad, indices, plane):
    plane[:] = 0
    for k in range(grad.shape[0]):
        plane[indices[k]] += grad[k]


@njit(parallel=True, cache=True)
def scatter_kernel(grad, indices, out):
    """``out[p]`` = zeros, then ``out[p, indices[p, k]] += grad[p, k]``: max pooling's backward.

    Performance contract: planes in parallel from ``PARALLEL_MIN_ELEMENTS`` pixels of ``out``
    on (no write conflicts); one pass over ``grad``.
    """
    if out.size < PARALLEL_MIN_ELEMENTS:
        for p in range(out.shape[0]):
            _scatter_plane(grad[p], indices[p], out[p])
    else:
        for p in prange(out.shape[0]):
            _scatter_plane(grad[p], indices[p], out[p])


@njit(parallel=True, cache=True)
def gather_kernel(src, indices, out):
    """``out[p, k] = src[p, indices[p, k]]``: the adjoint of ``scatter_kernel``. Planes in parallel when large."""
    if src.size < PARALLEL_MIN_ELEMENTS:
        for p in range(out.shape[0]):
            for k in range(out.shape[1]):
                out[p, k] = src[p, indices[p, k]]
    else:
        for p in prange(out.shape[0]):
            for k in range(out.shape[1]):
                out[p, k] = src[p, indices[p, k]]


@njit(cache=True)
def _avg_pool_plane(plane, row_start, row_count, col_start, col_count, divisor, out):
    for oh in range(out.shape[0]):
        r0, rows = row_start[oh], row_count[oh]
        for ow in range(out.shape[1]):
            c0, cols = col_start[ow], col_count[ow]
            total = plane.dtype.type(0)
            for r in range(r0, r0 + rows):
                for c in range(c0, c0 + cols):
                    total += plane[r, c]
            out[oh, ow] = total / divisor[oh, ow]


@njit(parallel=True, cache=True)
def avg_pool_kernel(x, row_start, row_count, col_start, col_count, divisor, out):
    """``out[p, oh, ow]`` = sum of its window divided by ``divisor[oh, ow]``.

    Performance contract: planes in parallel from ``PARALLEL_MIN_ELEMENTS`` pixels on; the sum
    is kept in a register.
    """
    if x.size < PARALLEL_MIN_ELEMENTS:
        for p in range(x.shape[0]):
            _avg_pool_plane(x[p], row_start, row_count, col_start, col_count, divisor, out[p])
    else:
        for p in prange(x.shape[0]):
            _avg_pool_plane(x[p], row_start, row_count, col_start, col_count, divisor, out[p])


@njit(cache=True)
def _avg_pool_backward_plane(grad, row_start, row_count, col_start, col_count, divisor, plane):
    plane[:] = 0
    for oh in range(grad.shape[0]):
        r0, rows = row_start[oh], row_count[oh]
        for ow in range(grad.shape[1]):
            c0, cols = col_start[ow], col_count[ow]
            share = grad[oh, ow] / divisor[oh, ow]
            for r in range(r0, r0 + rows):
                for c in range(c0, c0 + cols):
                    plane[r, c] += share


@njit(parallel=True, cache=True)
def avg_pool_backward_kernel(grad, row_start, row_count, col_start, col_count, divisor, out):
    """Spread ``grad[p, oh, ow] / divisor[oh, ow]`` over its window in ``out[p]``: average pooling's adjoint.

    Performance contract: planes in parallel from ``PARALLEL_MIN_ELEMENTS`` pixels of ``out``
    on (no write conflicts); no allocation.
    """
    if out.size < PARALLEL_MIN_ELEMENTS:
        for p in range(out.shape[0]):
            _avg_pool_backward_plane(grad[p], row_start, row_count, col_start, col_count, divisor, out[p])
    else:
        for p in prange(out.shape[0]):
            _avg_pool_backward_plane(grad[p], row_start, row_count, col_start, col_count, divisor, out[p])


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
