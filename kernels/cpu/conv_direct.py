"""Direct 2-D convolution with stride 1, in Numba: straight from zero-padded planes, no column matrix.

The picture (the same as the stride-1 layout of ``conv.py``): lay a zero-padded input plane
out row-major, ``G`` pixels wide. Output position ``(oh, ow)`` becomes flat index
``p = oh * G + ow`` and kernel tap ``(i, j)`` reads flat index ``p + i * dh * G + j * dw``: every
tap is one *offset* into the plane, and a convolution is, per input channel, a sum of shifted
copies of that plane. The ``G - OW`` positions at the end of each output row are junk (they
straddle two input rows): the forward computes and drops them, the backward gives them zero
gradient. Each operation is then a multiply-add along contiguous runs, which the compiler
turns into SIMD code:

* ``forward``:     ``out[o, p] += w[o, c, t] * plane_c[p + offset[t]]``;
* ``input_grad``:  ``plane_c[p + offset[t]] += w[o, c, t] * grad[o, p]`` (the adjoint: a scatter);
* ``weight_grad``: ``dw[o, c, t] += sum_p grad[o, p] * plane_c[p + offset[t]]``.

Register blocking is what makes this beat im2col + BLAS on few channels: each pass over ``p``
handles two output channels and four taps (forward, weight gradient) or two input channels
and four output channels (input gradient), so six loads feed eight multiply-adds where a
plain loop spends three memory operations on one. ``conv.direct_pays_off`` says where BLAS
wins again.

Each thread works on its own chunk of the batch with its own scratch: padded planes (the
zero border written once, the interior copied in per image, so the padded input never exists
in full) and the accumulators of the images in hand. Small images are taken a few at a time
and laid end to end (see ``BLOCK_LENGTH``), so that the passes are long. Float32 and float64
only; ``conv.py`` converts and chooses between this and im2col.

May import: numpy, numba, dslearn.kernels.cpu.softmax (FASTMATH).

>>> import numpy as np
>>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
>>> forward(x, np.ones((1, 1, 2, 2), np.float32), np.zeros(1, np.float32), ((0, 0), (0, 0)), (1, 1), 1)
array([[[[10., 14., 18.],
         [26., 30., 34.],
         [42., 46., 50.]]]], dtype=float32)
"""

from __future__ import annotations

import numba
import numpy as np
from dslearn.kernels.cpu.softmax import FASTMATH
from numba import njit, prange

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]

# Below this many multiply-adds (about 150 microseconds on one core) a call runs on the calling
# thread: waking the sleeping worker threads (OMP_WAIT_POLICY=PASSIVE) costs 30 to 100
# microseconds here, and the second thread would save less than that.
PARALLEL_MIN_MACS = 1 << 22

# Small images are laid end to end until a pass over a block of them is about this long (measured:
# 512 to 1024 halves the passes over 7x7 images and costs little on 14x14 ones).
BLOCK_LENGTH = 512


# -- copying into the grid -------------------------------------------------------------------------


@njit(cache=True)
def _load_plane(channel, geometry, plane):
    """Copy an (H, W) channel into the interior of one flat padded ``plane``; the caller zeroes the border once."""
    pad_top, pad_left, grid_width = geometry[0], geometry[1], geometry[3]
    for r in range(channel.shape[0]):
        start = (r + pad_top) * grid_width + pad_left
        for c in range(channel.shape[1]):
            plane[start + c] = channel[r, c]


@njit(cache=True)
def _load_grad_rows(grad, grid_width, grad_rows, offset):
    """Copy one image's (O, OH, OW) gradient onto the grid, into ``grad_rows[:, offset:]``; junk is left alone."""
    for o in range(grad.shape[0]):
        for oh in range(grad.shape[1]):
            start = offset + oh * grid_width
            for ow in range(grad.shape[2]):
                grad_rows[o, start + ow] = grad[o, oh, ow]


# -- one pass per input channel --------------------------------------------------------------------


@njit(fastmath=FASTMATH, cache=True)
def _correlate_plane(plane, weights, offsets, length, acc):
    """``acc[o, p] += sum_t weights[o, t] * plane[p + offsets[t]]`` for every row ``o`` of ``acc``, ``p < length``.

    Two rows and four taps per pass over ``p``; leftover taps one at a time, a leftover row alone.
    """
    rows, taps = acc.shape[0], offsets.shape[0]
    whole = taps - taps % 4
    for o in range(0, rows - 1, 2):
        r, s, u, v = acc[o], acc[o + 1], weights[o], weights[o + 1]
        for t in range(0, whole, 4):
            a0, a1 = plane[offsets[t]:], plane[offsets[t + 1]:]
            a2, a3 = plane[offsets[t + 2]:], plane[offsets[t + 3]:]
            u0, u1, u2, u3 = u[t], u[t + 1], u[t + 2], u[t + 3]
            v0, v1, v2, v3 = v[t], v[t + 1], v[t + 2], v[t + 3]
            for p in range(length):
                x0, x1, x2, x3 = a0[p], a1[p], a2[p], a3[p]
                r[p] += u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3
                s[p] += v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3
        for t in range(whole, taps):
            a0, u0, v0 = plane[offsets[t]:], u[t], v[t]
            for p in range(length):
                r[p] += u0 * a0[p]
                s[p] += v0 * a0[p]
    if rows % 2:
        r, u = acc[rows - 1], weights[rows - 1]
        for t in range(0, whole, 4):
            a0, a1 = plane[offsets[t]:], plane[offsets[t + 1]:]
            a2, a3 = plane[offsets[t + 2]:], plane[offsets[t + 3]:]
            u0, u1, u2, u3 = u[t], u[t + 1], u[t + 2], u[t + 3]
            for p in range(length):
                r[p] += u0 * a0[p] + u1 * a1[p] + u2 * a2[p] + u3 * a3[p]
        for t in range(whole, taps):
            a0, u0 = plane[offsets[t]:], u[t]
            for p in range(length):
                r[p] += u0 * a0[p]


@njit(cache=True)
def _add_four(row, t, a, b, c, d):
    """``row[t:t + 4] += (a, b, c, d)``."""
    row[t] += a
    row[t + 1] += b
    row[t + 2] += c
    row[t + 3] += d


@njit(fastmath=FASTMATH, cache=True)
def _weight_grad_plane(plane, grad_rows, offsets, length, dw):
    """``dw[o, t] += sum_{p < length} grad_rows[o, p] * plane[p + offsets[t]]``: two rows and four taps per pass."""
    rows, taps = grad_rows.shape[0], offsets.shape[0]
    zero = plane.dtype.type(0)
    for o in range(0, rows - 1, 2):
        g, h = grad_rows[o], grad_rows[o + 1]
        for t in range(0, taps - 3, 4):
            a0, a1 = plane[offsets[t]:], plane[offsets[t + 1]:]
            a2, a3 = plane[offsets[t + 2]:], plane[offsets[t + 3]:]
            g0 = g1 = g2 = g3 = h0 = h1 = h2 = h3 = zero
            for p in range(length):
                x0, x1, x2, x3, gp, hp = a0[p], a1[p], a2[p], a3[p], g[p], h[p]
                g0, g1, g2, g3 = g0 + gp * x0, g1 + gp * x1, g2 + gp * x2, g3 + gp * x3
                h0, h1, h2, h3 = h0 + hp * x0, h1 + hp * x1, h2 + hp * x2, h3 + hp * x3
            _add_four(dw[o], t, g0, g1, g2, g3)
            _add_four(dw[o + 1], t, h0, h1, h2, h3)
        for t in range(taps - taps % 4, taps):
            a0 = plane[offsets[t]:]
            g0 = h0 = zero
            for p in range(length):
                g0 += g[p] * a0[p]
                h0 += h[p] * a0[p]
            dw[o, t] += g0
            dw[o + 1, t] += h0
    if rows % 2:
        g = grad_rows[rows - 1]
        for t in range(taps):
            a0 = plane[offsets[t]:]
            g0 = zero
            for p in range(length):
                g0 += g[p] * a0[p]
            dw[rows - 1, t] += g0


@njit(fastmath=FASTMATH, cache=True)
def _scatter_plane(grad_rows, weights, offsets, length, acc):
    """``acc[c, p + offsets[t]] += sum_o weights[o, c, t] * grad_rows[o, p]``, ``p < length``: the adjoint.

    Two rows of ``acc`` and four gradient rows per pass over ``p``, all taps of those four rows
    before the next four (they stay in L1). Four taps per pass, as in the forward, would not
    vectorise: neighbouring taps write overlapping runs of ``acc``.
    """
    rows, channels, taps = grad_rows.shape[0], acc.shape[0], offsets.shape[0]
    whole = rows - rows % 4
    for c in range(0, channels - 1, 2):
        for o in range(0, whole, 4):
            g0, g1, g2, g3 = grad_rows[o], grad_rows[o + 1], grad_rows[o + 2], grad_rows[o + 3]
            for t in range(taps):
                r, s = acc[c, offsets[t]:], acc[c + 1, offsets[t]:]
                u0, u1, u2, u3 = weights[o, c, t], weights[o + 1, c, t], weights[o + 2, c, t], weights[o + 3, c, t]
                v0, v1 = weights[o, c + 1, t], weights[o + 1, c + 1, t]
                v2, v3 = weights[o + 2, c + 1, t], weights[o + 3, c + 1, t]
                for p in range(length):
                    x0, x1, x2, x3 = g0[p], g1[p], g2[p], g3[p]
                    r[p] += u0 * x0 + u1 * x1 + u2 * x2 + u3 * x3
                    s[p] += v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3
        for o in range(whole, rows):
            g0 = grad_rows[o]
            for t in range(taps):
                r, s, u0, v0 = acc[c, offsets[t]:], acc[c + 1, offsets[t]:], weights[o, c, t], weights[o, c + 1, t]
                for p in range(length):
                    r[p] += u0 * g0[p]
                    s[p] += v0 * g0[p]
    if channels % 2:
        c = channels - 1
        for o in range(0, whole, 4):
            g0, g1, g2, g3 = grad_rows[o], grad_rows[o + 1], grad_rows[o + 2], grad_rows[o + 3]
            for t in range(taps):
                r = acc[c, offsets[t]:]
                u0, u1, u2, u3 = weights[o, c, t], weights[o + 1, c, t], weights[o + 2, c, t], weights[o + 3, c, t]
                for p in range(length):
                    r[p] += u0 * g0[p] + u1 * g1[p] + u2 * g2[p] + u3 * g3[p]
        for o in range(whole, rows):
            g0 = grad_rows[o]
            for t in range(taps):
                r, u0 = acc[c, offsets[t]:], weights[o, c, t]
                for p in range(length):
                    r[p] += u0 * g0[p]


# -- a range of images, ``block`` at a time ----------------------------------------------------------
#
# ``geometry`` is (pad_top, pad_left, grid_rows, grid_width, block). A block of small images is
# laid end to end, each padded plane right after the previous one, and every pass runs over
# the whole block: fewer, longer passes (and, for the weight gradient, one final horizontal add
# per block rather than per image). Taps that read from one image into the next only touch
# positions that are dropped (forward) or whose gradient is zero (backward).


@njit(cache=True)
def _correlate_images(first, last, x, weights, offsets, geometry, bias, out):
    """Forward for images ``first`` to ``last``; ``weights`` is (C, O / groups, taps)."""
    pad_top, pad_left, grid_rows, grid_width, block = geometry
    channels, group_outputs = weights.shape[0], weights.shape[1]
    outputs, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    group_inputs = channels * group_outputs // outputs
    size, length = grid_rows * grid_width, (out_h - 1) * grid_width + out_w
    planes = np.zeros((channels, block * size), x.dtype)
    acc = np.empty((outputs, block * size), x.dtype)
    for start in range(first, last, block):
        count = min(block, last - start)
        for b in range(count):
            for c in range(channels):
                _load_plane(x[start + b, c], geometry, planes[c, b * size:(b + 1) * size])
        acc[:] = 0
        for c in range(channels):
            outs = slice(c // group_inputs * group_outputs, (c // group_inputs + 1) * group_outputs)
            _correlate_plane(planes[c], weights[c], offsets, (count - 1) * size + length, acc[outs])
        for b in range(count):
            for o in range(outputs):
                for oh in range(out_h):
                    row = acc[o, b * size + oh * grid_width:]
                    for ow in range(out_w):
                        out[start + b, o, oh, ow] = row[ow] + bias[o]


@njit(cache=True)
def _scatter_images(first, last, grad, weights, offsets, geometry, dx):
    """Input gradient of images ``first`` to ``last``; ``weights`` is (O, C / groups, taps)."""
    pad_top, pad_left, grid_rows, grid_width, block = geometry
    outputs, group_inputs = weights.shape[0], weights.shape[1]
    channels, height, width = dx.shape[1], dx.shape[2], dx.shape[3]
    group_outputs = outputs * group_inputs // channels
    size, length = grid_rows * grid_width, (grad.shape[2] - 1) * grid_width + grad.shape[3]
    grad_rows = np.zeros((outputs, block * size), grad.dtype)  # junk and the gaps between images stay 0
    acc = np.empty((channels, block * size), grad.dtype)
    for start in range(first, last, block):
        count = min(block, last - start)
        for b in range(count):
            _load_grad_rows(grad[start + b], grid_width, grad_rows, b * size)
        acc[:] = 0
        for group in range(channels // group_inputs):
            outs = slice(group * group_outputs, (group + 1) * group_outputs)
            ins = slice(group * group_inputs, (group + 1) * group_inputs)
            _scatter_plane(grad_rows[outs], weights[outs], offsets, (count - 1) * size + length, acc[ins])
        for b in range(count):
            for c in range(channels):
                for h in range(height):
                    row = acc[c, b * size + (h + pad_top) * grid_width + pad_left:]
                    for w in range(width):
                        dx[start + b, c, h, w] = row[w]


@njit(cache=True)
def _weight_grad_images(first, last, x, grad, offsets, geometry, dw):
    """Weight gradient summed over images ``first`` to ``last`` into ``dw`` (C, O / groups, taps)."""
    pad_top, pad_left, grid_rows, grid_width, block = geometry
    channels, group_outputs = dw.shape[0], dw.shape[1]
    group_inputs = channels * group_outputs // grad.shape[1]
    size, length = grid_rows * grid_width, (grad.shape[2] - 1) * grid_width + grad.shape[3]
    planes = np.zeros((channels, block * size), x.dtype)
    grad_rows = np.zeros((grad.shape[1], block * size), x.dtype)  # junk and the gaps between images stay 0
    for start in range(first, last, block):
        count = min(block, last - start)
        for b in range(count):
            _load_grad_rows(grad[start + b], grid_width, grad_rows, b * size)
            for c in range(channels):
                _load_plane(x[start + b, c], geometry, planes[c, b * size:(b + 1) * size])
        for c in range(channels):
            outs = slice(c // group_inputs * group_outputs, (c // group_inputs + 1) * group_outputs)
            _weight_grad_plane(planes[c], grad_rows[outs], offsets, (count - 1) * size + length, dw[c])


# -- kernels: the batch split into one chunk of images per thread ----------------------------------


@njit(parallel=True, cache=True)
def correlate_kernel(x, weights, offsets, geometry, bias, out, chunks):
    """``out[n, o] = bias[o] + sum over o's input channels c and taps t of weights[c, o', t] * plane[p + offsets[t]]``.

    ``o'`` is ``o``'s index within its group. Performance contract: ``chunks`` chunks of images
    in parallel (1: no thread is woken); one pass over a block of padded planes for every two
    output channels and four taps; no allocation inside the image loop.
    """
    images = x.shape[0]
    if chunks == 1:
        _correlate_images(0, images, x, weights, offsets, geometry, bias, out)
    else:
        for k in prange(chunks):
            _correlate_images(k * images // chunks, (k + 1) * images // chunks, x, weights, offsets, geometry, bias,
                              out)


@njit(parallel=True, cache=True)
def scatter_kernel(grad, weights, offsets, geometry, dx, chunks):
    """``dx`` = the input gradient of ``correlate_kernel`` for ``grad``, with ``weights`` (O, C / groups, taps).

    Performance contract: chunks of images in parallel; one pass over a block of gradient rows
    for every two input channels, four output channels and one tap; padded planes cropped
    into ``dx`` at the end.
    """
    images = grad.shape[0]
    if chunks == 1:
        _scatter_images(0, images, grad, weights, offsets, geometry, dx)
    else:
        for k in prange(chunks):
            _scatter_images(k * images // chunks, (k + 1) * images // chunks, grad, weights, offsets, geometry, dx)


@njit(parallel=True, cache=True)
def weight_grad_kernel(x, grad, offsets, geometry, partial_dw):
    """``partial_dw[k]`` = the weight gradient, (C, O / groups, taps), of the k-th chunk of images.

    Performance contract: chunks in parallel, each into its own accumulator (no sharing, the
    caller sums the few chunks); one pass over a block of planes for every two output channels
    and four taps, eight running sums in registers.
    """
    images, chunks = x.shape[0], partial_dw.shape[0]
    partial_dw[:] = 0
    if chunks == 1:
        _weight_grad_images(0, images, x, grad, offsets, geometry, partial_dw[0])
    else:
        for k in prange(chunks):
            _weight_grad_images(k * images // chunks, (k + 1) * images // chunks, x, grad, offsets, geometry,
                                partial_dw[k])


# -- wrappers: contiguous float32/float64 arrays in, out ------------------------------------------


def _chunks(images: int, macs: int) -> int:
    """How many chunks of images to run in parallel: 1 below ``PARALLEL_MIN_MACS``, else one per thread."""
    return 1 if macs < PARALLEL_MIN_MACS else max(1, min(images, numba.get_num_threads()))


def _offsets(kernel_size: Pair, dilation: Pair, grid_width: int) -> np.ndarray:
    """Flat offset of each kernel tap ``(i, j)``, row-major, into a plane ``grid_width`` wide."""
    rows, cols = np.arange(kernel_size[0]) * dilation[0], np.arange(kernel_size[1]) * dilation[1]
    return (rows[:, None] * grid_width + cols[None, :]).ravel().astype(np.int64)


def _geometry(input_hw: Pair, padding: Padding) -> tuple[int, int, int, int, int]:
    """(pad_top, pad_left, grid_rows, grid_width, block): the padded plane and how many images go in a block."""
    grid_rows, grid_width = input_hw[0] + sum(padding[0]), input_hw[1] + sum(padding[1])
    block = max(1, BLOCK_LENGTH // (grid_rows * grid_width))
    return padding[0][0], padding[1][0], grid_rows, grid_width, block


def forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, padding: Padding, dilation: Pair,
              groups: int) -> np.ndarray:
    """Stride-1 conv2d of a contiguous NCHW ``x`` with ``weight`` (O, C / groups, KH, KW) plus ``bias`` (O,)."""
    (images, channels, height, width), (outputs, group_inputs, kernel_h, kernel_w) = x.shape, weight.shape
    by_input = weight.reshape(groups, outputs // groups, group_inputs, kernel_h * kernel_w).transpose(0, 2, 1, 3)
    taps_weights = np.ascontiguousarray(by_input).reshape(channels, outputs // groups, -1)
    geometry = _geometry((height, width), padding)
    grid_rows, grid_width = geometry[2:4]
    out_h, out_w = grid_rows - dilation[0] * (kernel_h - 1), grid_width - dilation[1] * (kernel_w - 1)
    out = np.empty((images, outputs, out_h, out_w), x.dtype)
    macs = images * taps_weights.size * out_h * grid_width
    correlate_kernel(x, taps_weights, _offsets((kernel_h, kernel_w), dilation, grid_width), geometry, bias, out,
                     _chunks(images, macs))
    return out


def input_grad(grad: np.ndarray, weight: np.ndarray, input_hw: Pair, padding: Padding, dilation: Pair,
               groups: int) -> np.ndarray:
    """Gradient of ``forward`` with respect to its (N, C, H, W) input, ``input_hw`` = (H, W)."""
    images, outputs, out_h, _ = grad.shape
    group_inputs, kernel_size = weight.shape[1], weight.shape[2:]
    geometry = _geometry(input_hw, padding)
    dx = np.empty((images, group_inputs * groups, *input_hw), grad.dtype)
    macs = images * weight.size * out_h * geometry[3]
    scatter_kernel(grad, weight.reshape(outputs, group_inputs, -1), _offsets(kernel_size, dilation, geometry[3]),
                   geometry, dx, _chunks(images, macs))
    return dx


def weight_grad(x: np.ndarray, grad: np.ndarray, kernel_size: Pair, padding: Padding, dilation: Pair,
                groups: int) -> np.ndarray:
    """Gradient of ``forward`` with respect to its weight, shape (O, C / groups, KH, KW)."""
    images, channels, height, width = x.shape
    outputs, taps = grad.shape[1], kernel_size[0] * kernel_size[1]
    geometry = _geometry((height, width), padding)
    macs = images * channels * outputs // groups * taps * grad.shape[2] * geometry[3]
    partial = np.empty((_chunks(images, macs), channels, outputs // groups, taps), x.dtype)
    weight_grad_kernel(x, grad, _offsets(kernel_size, dilation, geometry[3]), geometry, partial)
    dw = partial.sum(axis=0).reshape(groups, channels // groups, outputs // groups, taps).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(dw).reshape(outputs, channels // groups, *kernel_size)
