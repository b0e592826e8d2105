"""2-D convolution on the CPU: direct Numba kernels or im2col + BLAS, whichever is faster for the shapes.

``conv2d_forward``, ``conv2d_input_grad`` and ``conv2d_weight_grad`` (at the bottom) send
stride-1 convolutions with few channels, such as those of MNIST networks, to the direct kernels
of ``conv_direct`` (rule and measurements in ``direct_pays_off``), and everything else to
the ``gemm_*`` functions here, which any shape can use:

im2col ("unfold") copies every receptive field of the input into the columns of one matrix,
so that a convolution becomes a single matrix product, the operation BLAS does best:

* the column matrix has shape ``(C * KH * KW, N * OH * G)``: row ``(c, i, j)`` holds, for
  every image ``n`` and output position ``(oh, ow)``, the input pixel that kernel tap
  ``(i, j)`` of channel ``c`` sees there (zero where the tap falls in the padding);
* forward:      ``out = W @ cols``           with W of shape ``(O, C * KH * KW)``;
* input grad:   ``cols_grad = W.T @ grad``, then col2im ("fold") adds each column back;
* weight grad:  ``W_grad = grad @ cols.T``.

``G`` is the width of the output grid. In general ``G = OW`` and each row of the matrix is
gathered from short runs of the input. With stride 1 there is a faster layout: over a grid as
wide as the zero-padded input (``G = W + left + right``), tap ``(i, j)`` of all output
positions, read in row-major order, is *one contiguous run* of the padded plane, so im2col is
a series of plain copies and col2im of plain additions. The ``G - OW`` extra positions of
each output row are junk: forward crops them, backward feeds them zero gradient.

The column matrix is KH * KW times larger than the input, so a big batch is processed in
chunks of images whose columns fit in ``CHUNK_BYTES`` (an MNIST batch of 64 fits in one).
16 MB stays below glibc's largest mmap threshold (32 MB): a bigger block would be mapped
afresh, and page-faulted in, on every call (measured 30-40% slower on 64 x 32 x 28 x 28).
Much smaller chunks were measured slower too: the products lose more efficiency than the
cache gains. The weight gradient rebuilds the columns rather than keeping forward's alive.

The product gives rows ordered ``(o, n, oh, g)``; one copy swaps them to NCHW. With
``groups`` > 1 the rows of the columns and of ``W`` split into ``groups`` blocks and the
products become one batched ``matmul`` over the groups. ``padding`` is given per side, as
``((top, bottom), (left, right))``, which also covers PyTorch's asymmetric ``padding='same'``.
float32 and float64 are computed as they are; float16 and bfloat16 in float32, cast back.

May import: numpy, numba, dslearn.kernels.cpu.conv_direct.

>>> import numpy as np
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> conv2d_forward(x, np.ones((1, 1, 2, 2), np.float32), None, (2, 2), ((0, 0), (0, 0)), (1, 1), 1)
array([[[[10., 18.],
         [42., 50.]]]], dtype=float32)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from dslearn.kernels.cpu import conv_direct
from numba import njit, prange

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]

CHUNK_BYTES = 16 << 20  # the most scratch memory one chunk of images' column matrix may take


@njit(cache=True)
def valid_range(size, offset, stride, count):
    """The outputs ``o`` in ``[lo, hi)`` whose input index ``o * stride + offset`` lies in ``[0, size)``."""
    lo = 0 if offset >= 0 else (stride - 1 - offset) // stride
    hi = (size - 1 - offset) // stride + 1 if offset < size else 0
    lo = min(lo, count)
    return lo, max(lo, min(hi, count))


@njit(parallel=True, cache=True)
def im2col_kernel(x, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, cols):
    """``cols[c, i, j, n, oh, ow] = x[n, c, oh*sh - pt + i*dh, ow*sw - pl + j*dw]``, 0 outside.

    Performance contract: parallel over the (c, i, j, n) rows; each element of ``cols`` is
    written once, in order; the valid output range of each tap is computed once, so the copy
    loop has no bounds test (and vectorises when the stride is 1).
    """
    images, channels, height, width = x.shape
    kernel_h, kernel_w, out_h, out_w = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
    for task in prange(channels * kernel_h * kernel_w * images):
        n = task % images
        j = task // images % kernel_w
        i = task // (images * kernel_w) % kernel_h
        c = task // (images * kernel_w * kernel_h)
        row_offset, col_offset = i * dilation_h - pad_top, j * dilation_w - pad_left
        row_lo, row_hi = valid_range(height, row_offset, stride_h, out_h)
        col_lo, col_hi = valid_range(width, col_offset, stride_w, out_w)
        dst = cols[c, i, j, n]
        dst[:row_lo] = 0
        dst[row_hi:] = 0
        for oh in range(row_lo, row_hi):
            src = x[n, c, oh * stride_h + row_offset]
            line = dst[oh]
            line[:col_lo] = 0
            line[col_hi:] = 0
            for ow in range(col_lo, col_hi):
                line[ow] = src[ow * stride_w + col_offset]


@njit(parallel=True, cache=True)
def col2im_kernel(cols, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, out):
    """The adjoint of im2col: ``out[n, c]`` is the sum of every column entry that was copied from it.

    Performance contract: parallel over the (n, c) planes of ``out``, so no two threads ever
    add to the same pixel; each plane stays in cache while its KH * KW taps are added in.
    """
    images, channels, height, width = out.shape
    kernel_h, kernel_w, out_h, out_w = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
    for task in prange(images * channels):
        n, c = task // channels, task % channels
        plane = out[n, c]
        plane[:] = 0
        for i in range(kernel_h):
            row_offset = i * dilation_h - pad_top
            row_lo, row_hi = valid_range(height, row_offset, stride_h, out_h)
            for j in range(kernel_w):
                col_offset = j * dilation_w - pad_left
                col_lo, col_hi = valid_range(width, col_offset, stride_w, out_w)
                src = cols[c, i, j, n]
                for oh in range(row_lo, row_hi):
                    line, dst = src[oh], plane[oh * stride_h + row_offset]
                    for ow in range(col_lo, col_hi):
                        dst[ow * stride_w + col_offset] += line[ow]


@njit(parallel=True, cache=True)
def im2col_stride1_kernel(planes, dilation_h, dilation_w, grid_width, cols):
    """``cols[c, i, j, n, :] = planes[n, c, start:start + len]``, ``start = i*dh*G + j*dw``.

    ``planes`` are the zero-padded input planes, flattened row-major (G = padded width).
    Performance contract: parallel over the (c, i, j, n) rows; each row is one contiguous
    copy (memcpy speed, vectorised).
    """
    images, channels = planes.shape[0], planes.shape[1]
    kernel_h, kernel_w, length = cols.shape[1], cols.shape[2], cols.shape[4]
    for task in prange(channels * kernel_h * kernel_w * images):
        n = task % images
        j = task // images % kernel_w
        i = task // (images * kernel_w) % kernel_h
        c = task // (images * kernel_w * kernel_h)
        start = i * dilation_h * grid_width + j * dilation_w
        cols[c, i, j, n, :] = planes[n, c, start:start + length]


@njit(parallel=True, cache=True)
def col2im_stride1_kernel(cols, dilation_h, dilation_w, grid_width, planes):
    """The adjoint of ``im2col_stride1_kernel``: ``planes[n, c]`` = sum of its taps' runs.

    Performance contract: parallel over the (n, c) planes, so no two threads add to the same
    pixel; each tap is one contiguous, vectorised add into a plane that stays in cache.
    """
    images, channels = planes.shape[0], planes.shape[1]
    kernel_h, kernel_w, length = cols.shape[1], cols.shape[2], cols.shape[4]
    for task in prange(images * channels):
        n, c = task // channels, task % channels
        plane = planes[n, c]
        plane[:] = 0
        for i in range(kernel_h):
            for j in range(kernel_w):
                start = i * dilation_h * grid_width + j * dilation_w
                plane[start:start + length] += cols[c, i, j, n]


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; float32 and narrower floats are computed in float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def output_size(size: int, kernel: int, stride: int, padding: Pair, dilation: int) -> int:
    """How many positions a dilated kernel takes along one padded axis."""
    return (size + padding[0] + padding[1] - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair) -> np.ndarray:
    """The ``(C * KH * KW, N * OH * OW)`` column matrix of a contiguous float32/float64 NCHW input."""
    images, channels, height, width = x.shape
    out_h = output_size(height, kernel_size[0], stride[0], padding[0], dilation[0])
    out_w = output_size(width, kernel_size[1], stride[1], padding[1], dilation[1])
    cols = np.empty((channels, *kernel_size, images, out_h, out_w), x.dtype)
    im2col_kernel(x, *stride, padding[0][0], padding[1][0], *dilation, cols)
    return cols.reshape(channels * kernel_size[0] * kernel_size[1], images * out_h * out_w)


def col2im(cols: np.ndarray, input_shape: tuple[int, ...], kernel_size: Pair, out_size: Pair, stride: Pair,
           padding: Padding, dilation: Pair) -> np.ndarray:
    """Sum a ``(C * KH * KW, N * OH * OW)`` column matrix back into an NCHW array of ``input_shape``."""
    images, channels = input_shape[:2]
    out = np.empty(input_shape, cols.dtype)
    col2im_kernel(cols.reshape(channels, *kernel_size, images, *out_size), *stride, padding[0][0], padding[1][0],
                  *dilation, out)
    return out


class Columns(NamedTuple):
    """An im2col matrix, ``(C * KH * KW, N * OH * grid_width)``, and the width of its output grid."""

    matrix: np.ndarray
    grid_width: int


def _as_compute(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=compute_dtype(a.dtype))


def _padded_rows(input_hw: Pair, kernel_size: Pair, padding: Padding, dilation: Pair) -> tuple[int, int]:
    """Rows and width of a stride-1 padded plane, with spare rows for the last tap's run past its end."""
    width = input_hw[1] + sum(padding[1])
    overrun = (kernel_size[1] - 1) * dilation[1]
    return input_hw[0] + sum(padding[0]) + -(-overrun // width), width


def unfold(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding, dilation: Pair) -> Columns:
    """The columns of an NCHW input, in the stride-1 layout when the stride is 1."""
    x = _as_compute(x)
    if stride != (1, 1):
        return Columns(im2col(x, kernel_size, stride, padding, dilation),
                       output_size(x.shape[3], kernel_size[1], stride[1], padding[1], dilation[1]))
    images, channels, height, width = x.shape
    rows, grid_width = _padded_rows(x.shape[2:], kernel_size, padding, dilation)
    planes = np.zeros((images, channels, rows, grid_width), x.dtype)
    planes[:, :, padding[0][0]:padding[0][0] + height, padding[1][0]:padding[1][0] + width] = x
    out_h = output_size(height, kernel_size[0], 1, padding[0], dilation[0])
    cols = np.empty((channels, *kernel_size, images, out_h * grid_width), x.dtype)
    im2col_stride1_kernel(planes.reshape(images, channels, -1), *dilation, grid_width, cols)
    return Columns(cols.reshape(channels * kernel_size[0] * kernel_size[1], -1), grid_width)


def fold(columns: Columns, input_shape: tuple[int, ...], kernel_size: Pair, stride: Pair, padding: Padding,
         dilation: Pair) -> np.ndarray:
    """The adjoint of ``unfold``: add the columns back into an NCHW array of ``input_shape``."""
    images, channels, height, width = input_shape
    out_h = columns.matrix.shape[1] // max(images * columns.grid_width, 1)
    if stride != (1, 1):
        return col2im(columns.matrix, input_shape, kernel_size, (out_h, columns.grid_width), stride, padding,
                      dilation)
    rows, grid_width = _padded_rows(input_shape[2:], kernel_size, padding, dilation)
    planes = np.empty((images, channels, rows * grid_width), columns.matrix.dtype)
    col2im_stride1_kernel(columns.matrix.reshape(channels, *kernel_size, images, -1), *dilation, grid_width, planes)
    cropped = planes.reshape(images, channels, rows, grid_width)[:, :, padding[0][0]:, padding[1][0]:]
    return cropped[:, :, :height, :width]  # a view into the padded planes


def _grid_width(input_width: int, kernel_w: int, stride: Pair, padding: Padding, dilation: Pair) -> int:
    if stride == (1, 1):
        return input_width + sum(padding[1])
    return output_size(input_width, kernel_w, stride[1], padding[1], dilation[1])


def image_chunks(images: int, column_bytes_per_image: int) -> list[slice]:
    """Split a batch so that each chunk's column matrix takes at most ``CHUNK_BYTES`` (one image at least)."""
    step = max(1, CHUNK_BYTES // max(column_bytes_per_image, 1))
    return [slice(start, min(start + step, images)) for start in range(0, images, step)]


def _grad_rows(grad: np.ndarray, grid_width: int) -> np.ndarray:
    """An (N, O, OH, OW) gradient as the (O, N * OH * grid_width) matrix of the products; junk columns are 0."""
    images, out_channels, out_h, out_w = grad.shape
    rows = np.empty((out_channels, images, out_h, grid_width), compute_dtype(grad.dtype))
    rows[..., :out_w] = grad.swapaxes(0, 1)
    rows[..., out_w:] = 0
    return rows.reshape(out_channels, -1)


def _columns_per_image(channels: int, kernel_size: Pair, out_h: int, grid_width: int, dtype: np.dtype) -> int:
    return channels * kernel_size[0] * kernel_size[1] * out_h * grid_width * dtype.itemsize


def gemm_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, padding: Padding,
                 dilation: Pair, groups: int) -> np.ndarray:
    """``conv2d_forward`` by im2col + BLAS, whatever ``direct_pays_off`` says."""
    dtype, x, w = x.dtype, _as_compute(x), _as_compute(weight)
    (images, channels), out_channels, kernel_size = x.shape[:2], w.shape[0], w.shape[2:]
    out_h, out_w = (output_size(x.shape[2 + d], kernel_size[d], stride[d], padding[d], dilation[d]) for d in (0, 1))
    grid_width = _grid_width(x.shape[3], kernel_size[1], stride, padding, dilation)
    w = w.reshape(groups, out_channels // groups, -1)
    shift = np.zeros((1, out_channels, 1, 1), w.dtype) if bias is None else bias.astype(w.dtype).reshape(1, -1, 1, 1)
    out = np.empty((images, out_channels, out_h, out_w), w.dtype)
    for chunk in image_chunks(images, _columns_per_image(channels, kernel_size, out_h, grid_width, w.dtype)):
        columns = unfold(x[chunk], kernel_size, stride, padding, dilation)
        products = np.matmul(w, columns.matrix.reshape(groups, -1, columns.matrix.shape[1]))
        grid = products.reshape(out_channels, -1, out_h, grid_width)[..., :out_w]
        np.add(grid.swapaxes(0, 1), shift, out=out[chunk])  # the one copy from the product's order to NCHW
    return out.astype(dtype, copy=False)


def gemm_input_grad(grad: np.ndarray, weight: np.ndarray, input_shape: tuple[int, ...], stride: Pair,
                    padding: Padding, dilation: Pair, groups: int) -> np.ndarray:
    """``conv2d_input_grad`` by BLAS + col2im, whatever ``direct_pays_off`` says."""
    (images, channels), out_channels, kernel_size = input_shape[:2], weight.shape[0], weight.shape[2:]
    w = _as_compute(weight).reshape(groups, out_channels // groups, -1).transpose(0, 2, 1)
    grid_width = _grid_width(input_shape[3], kernel_size[1], stride, padding, dilation)
    dx = np.empty(input_shape, w.dtype)
    for chunk in image_chunks(images, _columns_per_image(channels, kernel_size, grad.shape[2], grid_width, w.dtype)):
        grad_rows = _grad_rows(grad[chunk], grid_width)
        cols = np.matmul(w, grad_rows.reshape(groups, out_channels // groups, -1))
        dx[chunk] = fold(Columns(cols.reshape(-1, cols.shape[2]), grid_width), dx[chunk].shape, kernel_size, stride,
                         padding, dilation)
    return dx.astype(grad.dtype, copy=False)


def gemm_weight_grad(x: np.ndarray, grad: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding,
                     dilation: Pair, groups: int) -> np.ndarray:
    """``conv2d_weight_grad`` by im2col + BLAS, whatever ``direct_pays_off`` says."""
    dtype, x = x.dtype, _as_compute(x)
    (images, channels), out_channels = x.shape[:2], grad.shape[1]
    grid_width = _grid_width(x.shape[3], kernel_size[1], stride, padding, dilation)
    dw = np.zeros((groups, out_channels // groups, channels // groups * kernel_size[0] * kernel_size[1]), x.dtype)
    for chunk in image_chunks(images, _columns_per_image(channels, kernel_size, grad.shape[2], grid_width, x.dtype)):
        columns = unfold(x[chunk], kernel_size, stride, padding, dilation)
        grad_rows = _grad_rows(grad[chunk], grid_width).reshape(groups, out_channels // groups, -1)
        # (cols @ grad.T).T rather than grad @ cols.T: the same numbers, 20-35% faster in OpenBLAS for these shapes
        cols = columns.matrix.reshape(groups, -1, columns.matrix.shape[1])
        dw += np.matmul(cols, grad_rows.transpose(0, 2, 1)).transpose(0, 2, 1)
    return dw.reshape(out_channels, channels // groups, *kernel_size).astype(dtype, copy=False)


# -- the three operations: direct kernels where they pay off, im2col + BLAS elsewhere -----------------


def direct_pays_off(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: Pair, groups: int) -> bool:
    """Whether the direct kernels beat im2col + BLAS for this conv2d (they handle stride 1 only).

    im2col + BLAS wins when its products are big enough for BLAS to run near peak (many output
    channels per group *and* a long reduction ``C / groups * KH * KW``) while the images are
    small (short passes for the direct kernels). Measured on this 2-core Sapphire Rapids:

    * one thread each for BLAS and Numba, batch 32, 'same' padding, on the grid C in {1, 3, 8,
      16, 32, 64}, O in {4, 8, 16, 32, 64}, 3x3 and 5x5 kernels, 7x7, 14x14 and 28x28 inputs,
      forward, input gradient and weight gradient: always im2col takes 1.60x the time of the
      faster path, summed over the grid (8.7x at worst: 64 -> 4 channels, 5x5, 14x14); always
      direct 1.06x (2.5x at worst: 64 -> 64, 3x3, 7x7); this rule 1.04x (1.8x at worst:
      64 -> 64, 3x3, 14x14, weight gradient);
    * two threads, batch 64, 32 -> 64 channels, 3x3, 14x14, where one thread favours im2col
      by 1.5x: forward 4.4 ms (im2col) and 4.9 ms (direct), input gradient 5.0 and 4.0 ms,
      weight gradient 4.6 and 4.0 ms. The direct kernels split the batch evenly between the
      threads, while BLAS on short, wide products and im2col's memory traffic scale less well;
      on a loaded machine im2col + BLAS degrades far more (OpenBLAS threads yield and spin).

    >>> lenet, small_wide = ((64, 1, 28, 28), (6, 1, 5, 5)), ((64, 64, 7, 7), (64, 64, 3, 3))
    >>> direct_pays_off(*lenet, (1, 1), 1), direct_pays_off(*small_wide, (1, 1), 1)
    (True, False)
    """
    group_outputs, reduction = weight_shape[0] // groups, weight_shape[1] * weight_shape[2] * weight_shape[3]
    large_image = input_shape[2] * input_shape[3] >= 14 * 14
    return stride == (1, 1) and (group_outputs <= 16 or reduction <= 27 or large_image)


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: Pair, padding: Padding,
                   dilation: Pair, groups: int) -> np.ndarray:
    """Cross-correlate an NCHW ``x`` with ``weight`` (O, C / groups, KH, KW) and add ``bias`` (O,)."""
    if not direct_pays_off(x.shape, weight.shape, stride, groups):
        return gemm_forward(x, weight, bias, stride, padding, dilation, groups)
    x_c = _as_compute(x)
    w = np.ascontiguousarray(weight, dtype=x_c.dtype)
    shift = np.zeros(w.shape[0], w.dtype) if bias is None else np.ascontiguousarray(bias, dtype=w.dtype)
    return conv_direct.forward(x_c, w, shift, padding, dilation, groups).astype(x.dtype, copy=False)


def conv2d_input_grad(grad: np.ndarray, weight: np.ndarray, input_shape: tuple[int, ...], stride: Pair,
                      padding: Padding, dilation: Pair, groups: int) -> np.ndarray:
    """Gradient of ``conv2d_forward`` with respect to ``x`` (a transposed convolution of ``grad``)."""
    if not direct_pays_off(input_shape, weight.shape, stride, groups):
        return gemm_input_grad(grad, weight, input_shape, stride, padding, dilation, groups)
    grad_c = _as_compute(grad)
    w = np.ascontiguousarray(weight, dtype=grad_c.dtype)
    return conv_direct.input_grad(grad_c, w, input_shape[2:], padding, dilation, groups).astype(grad.dtype, copy=False)


def conv2d_weight_grad(x: np.ndarray, grad: np.ndarray, kernel_size: Pair, stride: Pair, padding: Padding,
                       dilation: Pair, groups: int) -> np.ndarray:
    """Gradient of ``conv2d_forward`` with respect to ``weight``, shape (O, C / groups, KH, KW)."""
    weight_shape = (grad.shape[1], x.shape[1] // groups, *kernel_size)
    if not direct_pays_off(x.shape, weight_shape, stride, groups):
        return gemm_weight_grad(x, grad, kernel_size, stride, padding, dilation, groups)
    x_c = _as_compute(x)
    grad_c = np.ascontiguousarray(grad, dtype=x_c.dtype)
    return conv_direct.weight_grad(x_c, grad_c, kernel_size, padding, dilation, groups).astype(x.dtype, copy=False)
