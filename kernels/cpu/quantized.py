"""Quantization kernels: fake quantization, quantization, int4 packing, integer linear and convolution.

The affine map (see ``kernels.reference.quantized``)::

    q = clamp(round(x / scale) + zero_point, quant_min, quant_max),    x ~ (q - zero_point) * scale

Integer layers never need ``q`` itself, only the *centred* integer ``q - zero_point`` (the
real value in units of ``scale``), which is ``clamp(round(x / scale), quant_min - zero_point,
quant_max - zero_point)``. The integer kernels therefore take centred int16 operands (an 8-bit
value minus an 8-bit zero point needs 9 bits), multiply them, sum the products in **int32**
and rescale each sum once to float32::

    out[n, o] = (sum_k xc[n, k] * wc[o, k]) * (x_scale * w_scale[o]) + bias[o]

Padding a centred image with 0 pads the real image with 0. Products are at most 255 * 255, so
an int32 sum is exact for up to 33,000 terms per output (``MAX_TERMS``; the wrappers check).

Per-channel data is seen as a 3-D array ``(outer, channels, inner)``: channel ``c`` of the
quantized axis is ``x[:, c, :]``. Performance contract: fake quantization and quantization make
one pass over ``x`` in blocks of ``BLOCK`` elements, in parallel once there are
``PARALLEL_MIN_ELEMENTS`` of them (a small batch runs on the calling thread, which costs less
than waking the others); the integer kernels run in parallel over output rows or (image,
channel) planes, accumulate in registers or a per-plane int32 buffer, and allocate nothing in
their inner loops. float16/bfloat16 inputs are computed in float32.

May import: numpy, numba.

>>> import numpy as np
>>> out, mask = fake_quantize(np.array([0.26, -1.0, 3.0], dtype=np.float32), np.float32(0.5), 0, -2, 2)
>>> out, mask
(array([ 0.5, -1. ,  1. ], dtype=float32), array([ True,  True, False]))
>>> unpack_int4(pack_int4(np.array([[1, -2, 3]], dtype=np.int8)), 3)
array([[ 1, -2,  3]], dtype=int8)
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 4096  # elements of one row handled by one task in the elementwise kernels
PARALLEL_MIN_ELEMENTS = 32768
MAX_TERMS = (2**31 - 1) // (255 * 255)  # products summed per output before int32 could overflow


# -- elementwise: fake quantization and quantization ------------------------------------------------


@njit(cache=True)
def _task_span(task, channels, inner, blocks):
    """Task number -> (outer index, channel, start, stop) of the block of ``inner`` elements it owns."""
    row = task // blocks
    start = (task % blocks) * BLOCK
    return row // channels, row % channels, start, min(inner, start + BLOCK)


@njit(cache=True)
def _fake_quantize_span(x, out, mask, scale, inverse, zero_point, quant_min, quant_max):
    for j in range(x.shape[0]):
        q = np.rint(x[j] * inverse) + zero_point
        mask[j] = quant_min <= q <= quant_max
        q = min(max(q, quant_min), quant_max)
        out[j] = (q - zero_point) * scale


@njit(parallel=True, cache=True)
def fake_quantize_kernel(x, scale, inverse, zero_point, quant_min, quant_max, out, mask):
    """Fake-quantize ``x`` of shape (outer, channels, inner) into ``out``; ``mask`` marks the unclamped values.

    ``scale``, ``inverse`` (``1 / scale``) and ``zero_point`` have one entry per channel, in
    ``x``'s dtype; ``quant_min`` and ``quant_max`` too.
    """
    channels, inner = x.shape[1], x.shape[2]
    blocks = (inner + BLOCK - 1) // BLOCK
    tasks = x.shape[0] * channels * blocks
    if x.size < PARALLEL_MIN_ELEMENTS:
        for task in range(tasks):
            o, c, start, stop = _task_span(task, channels, inner, blocks)
            _fake_quantize_span(x[o, c, start:stop], out[o, c, start:stop], mask[o, c, start:stop], scale[c],
                                inverse[c], zero_point[c], quant_min, quant_max)
    else:
        for task in prange(tasks):
            o, c, start, stop = _task_span(task, channels, inner, blocks)
            _fake_quantize_span(x[o, c, start:stop], out[o, c, start:stop], mask[o, c, start:stop], scale[c],
                                inverse[c], zero_point[c], quant_min, quant_max)


@njit(cache=True)
def _quantize_span(x, out, inverse, low, high):
    for j in range(x.shape[0]):
        out[j] = min(max(np.rint(x[j] * inverse), low), high)


@njit(parallel=True, cache=True)
def quantize_centred_kernel(x, inverse, low, high, out):
    """``out = clamp(round(x * inverse), low, high)`` (int16) for ``x`` of shape (outer, channels, inner).

    ``inverse``, ``low`` (``quant_min - zero_point``) and ``high`` (``quant_max - zero_point``)
    have one entry per channel, in ``x``'s dtype.
    """
    channels, inner = x.shape[1], x.shape[2]
    blocks = (inner + BLOCK - 1) // BLOCK
    tasks = x.shape[0] * channels * blocks
    if x.size < PARALLEL_MIN_ELEMENTS:
        for task in range(tasks):
            o, c, start, stop = _task_span(task, channels, inner, blocks)
            _quantize_span(x[o, c, start:stop], out[o, c, start:stop], inverse[c], low[c], high[c])
    else:
        for task in prange(tasks):
            o, c, start, stop = _task_span(task, channels, inner, blocks)
            _quantize_span(x[o, c, start:stop], out[o, c, start:stop], inverse[c], low[c], high[c])


# -- int4 packing ------------------------------------------------------------------------------------


@njit(cache=True)
def pack_int4_kernel(q, packed):
    """Pack int8 rows ``q`` (values in [-8, 7]) two per byte: element 2i low nibble, 2i + 1 high nibble."""
    rows, length = q.shape
    for r in range(rows):
        for i in range(packed.shape[1]):
            low = q[r, 2 * i] & 0xF
            high = q[r, 2 * i + 1] & 0xF if 2 * i + 1 < length else 0
            packed[r, i] = low | (high << 4)


@njit(cache=True)
def unpack_int4_kernel(packed, out):
    """Unpack the signed nibbles of ``packed`` rows into int8 ``out`` (as many per row as ``out`` has)."""
    rows, length = out.shape
    for r in range(rows):
        for j in range(length):
            byte = packed[r, j // 2]
            nibble = (byte >> 4) if j % 2 else (byte & 0xF)
            out[r, j] = nibble - 16 if nibble >= 8 else nibble


# -- integer linear and convolution ------------------------------------------------------------------
# Numba types ``int32 * int32`` as int64; truncating every partial sum back to int32 (``I32(...)``)
# keeps the arithmetic 32-bit, and LLVM then turns the dot products into multiply-add-pairs
# instructions (``vpmaddwd``) that sum int16 products into int32 lanes.

I32 = np.int32


@njit(cache=True)
def _linear_row(x_row, wc, out_scale, bias, out_row):
    for o in range(wc.shape[0]):
        w_row = wc[o]
        total = I32(0)
        for k in range(x_row.shape[0]):
            total = I32(total + I32(x_row[k]) * I32(w_row[k]))
        out_row[o] = np.float32(total) * out_scale[o] + bias[o]


@njit(parallel=True, cache=True)
def linear_kernel(xc, wc, out_scale, bias, out):
    """``out[n, o] = (sum_k xc[n, k] * wc[o, k]) * out_scale[o] + bias[o]``; int16 in, int32 sums, float32 out.

    Rows of ``xc`` in parallel (once there are enough products); each output is one dot
    product of two contiguous int16 rows, summed in int32 vector lanes.
    """
    if xc.shape[0] * xc.shape[1] * wc.shape[0] < 64 * PARALLEL_MIN_ELEMENTS:
        for n in range(xc.shape[0]):
            _linear_row(xc[n], wc, out_scale, bias, out[n])
    else:
        for n in prange(xc.shape[0]):
            _linear_row(xc[n], wc, out_scale, bias, out[n])


@njit(cache=True)
def _conv_plane(image, w, width, dilation_h, dilation_w, acc):
    """Sum every tap's weight times the image shifted by the tap into the flat int32 grid ``acc``.

    ``image`` is (C, rows * width), each channel flattened row by row. Grid position ``p``
    stands for output (p // width, p % width) at stride 1; tap (i, j) reads the image at
    ``p + i * dilation_h * width + j * dilation_w``, so each tap is one long contiguous pass.
    (Positions past the last output column read into the next row: they are computed and
    ignored, which costs less than breaking the pass at every row.)
    """
    acc[:] = 0
    for c in range(w.shape[0]):
        for i in range(w.shape[1]):
            for j in range(w.shape[2]):
                weight = I32(w[c, i, j])
                offset = i * dilation_h * width + j * dilation_w
                shifted = image[c, offset:offset + acc.shape[0]]
                for p in range(acc.shape[0]):
                    acc[p] = I32(acc[p] + weight * I32(shifted[p]))


@njit(cache=True)
def _conv_task(task, xc, wc, width, stride_h, stride_w, dilation_h, dilation_w, groups, out_scale, bias, out):
    """Output plane ``task`` = (image, output channel): its int32 grid, then every stride-th position rescaled."""
    out_channels, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    n, o = task // out_channels, task % out_channels
    group_in = wc.shape[1]
    first = (o // (out_channels // groups)) * group_in
    acc = np.empty(((out_h - 1) * stride_h + 1) * width, np.int32)
    _conv_plane(xc[n, first:first + group_in], wc[o], width, dilation_h, dilation_w, acc)
    for oh in range(out_h):
        for ow in range(out_w):
            out[n, o, oh, ow] = np.float32(acc[oh * stride_h * width + ow * stride_w]) * out_scale[o] + bias[o]


@njit(parallel=True, cache=True)
def conv2d_kernel(xc, wc, width, stride_h, stride_w, dilation_h, dilation_w, groups, out_scale, bias, out):
    """Integer convolution of padded centred images ``xc`` (N, C, rows * width) with ``wc`` (O, C/groups, KH, KW).

    ``out`` (N, O, OH, OW) float32 gets ``sum * out_scale[o] + bias[o]``, read from the stride-1
    grid every ``stride`` positions. (image, output channel) planes in parallel; one int32
    grid per task. ``xc`` needs one spare row of zeros at the bottom (see ``_conv_plane``).
    """
    tasks = out.shape[0] * out.shape[1]
    if xc.size * out.shape[1] < 4 * PARALLEL_MIN_ELEMENTS:
        for task in range(tasks):
            _conv_task(task, xc, wc, width, stride_h, stride_w, dilation_h, dilation_w, groups, out_scale, bias, out)
    else:
        for task in prange(tasks):
            _conv_task(task, xc, wc, width, stride_h, stride_w, dilation_h, dilation_w, groups, out_scale, bias, out)


# -- wrappers: arrays of any layout and dtype in, results out -----------------------------------------


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; every other float type is computed in float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _channels_view(x: np.ndarray, axis: int | None) -> np.ndarray:
    """``x`` as a C-contiguous (outer, channels, inner) array in its compute dtype (channels = 1 per tensor)."""
    x = np.ascontiguousarray(x, dtype=compute_dtype(x.dtype))
    if axis is None:
        return x.reshape(1, 1, -1)
    return x.reshape(int(np.prod(x.shape[:axis])), x.shape[axis], -1)


def _per_channel(values, channels: int, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(values, dtype=dtype).reshape(-1), (channels,)))


def fake_quantize(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int,
                  axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fake-quantized ``x`` (same shape and dtype) and the bool mask of values inside ``[quant_min, quant_max]``.

    ``scale`` and ``zero_point`` are scalars (``axis=None``) or one value per index of ``axis``.
    """
    view = _channels_view(x, axis)
    dtype, channels = view.dtype, view.shape[1]
    scale32 = _per_channel(scale, channels, np.float32)
    out, mask = np.empty_like(view), np.empty(view.shape, np.bool_)
    fake_quantize_kernel(view, scale32.astype(dtype), (np.float32(1) / scale32).astype(dtype),
                         _per_channel(zero_point, channels, dtype), dtype.type(quant_min), dtype.type(quant_max),
                         out, mask)
    return out.reshape(x.shape).astype(x.dtype, copy=False), mask.reshape(x.shape)


def quantize_centred(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int,
                     axis: int | None = None) -> np.ndarray:
    """``clamp(round(x / scale), quant_min - zero_point, quant_max - zero_point)`` as int16: ``q - zero_point``."""
    view = _channels_view(x, axis)
    dtype, channels = view.dtype, view.shape[1]
    scale32 = _per_channel(scale, channels, np.float32)
    zero = _per_channel(zero_point, channels, dtype)
    out = np.empty(view.shape, np.int16)
    quantize_centred_kernel(view, (np.float32(1) / scale32).astype(dtype), quant_min - zero, quant_max - zero, out)
    return out.reshape(x.shape)


def quantize(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int, dtype,
             axis: int | None = None) -> np.ndarray:
    """The stored integers ``clamp(round(x / scale) + zero_point, quant_min, quant_max)`` as ``dtype``."""
    centred = quantize_centred(x, scale, zero_point, quant_min, quant_max, axis).astype(np.int32)
    zero = np.asarray(zero_point, dtype=np.int32)
    if axis is not None:
        zero = zero.reshape([-1 if d == axis else 1 for d in range(x.ndim)])
    return (centred + zero).astype(dtype)


def pack_int4(q: np.ndarray) -> np.ndarray:
    """int8 values in [-8, 7] packed two per byte along the last axis (uint8, last axis halved, rounded up)."""
    rows = np.ascontiguousarray(q, dtype=np.int8).reshape(-1, q.shape[-1])
    packed = np.empty((rows.shape[0], (rows.shape[1] + 1) // 2), np.uint8)
    pack_int4_kernel(rows, packed)
    return packed.reshape(*q.shape[:-1], packed.shape[1])


def unpack_int4(packed: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` signed nibbles of each row of ``packed``, as int8 (the inverse of ``pack_int4``)."""
    rows = np.ascontiguousarray(packed, dtype=np.uint8).reshape(-1, packed.shape[-1])
    out = np.empty((rows.shape[0], length), np.int8)
    unpack_int4_kernel(rows, out)
    return out.reshape(*packed.shape[:-1], length)


def _check_terms(terms: int, op: str) -> None:
    if terms > MAX_TERMS:
        raise ValueError(f"{op}: {terms} products per output could overflow an int32 sum (at most {MAX_TERMS})")


def quantized_linear(xc: np.ndarray, wc: np.ndarray, out_scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``(xc @ wc.T) * out_scale + bias`` for centred int16 ``xc`` (N, K) and ``wc`` (O, K); float32 (N, O)."""
    _check_terms(xc.shape[1], "quantized_linear")
    out = np.empty((xc.shape[0], wc.shape[0]), np.float32)
    linear_kernel(np.ascontiguousarray(xc, dtype=np.int16), np.ascontiguousarray(wc, dtype=np.int16),
                  _per_channel(out_scale, wc.shape[0], np.float32), _per_channel(bias, wc.shape[0], np.float32), out)
    return out


def quantized_conv2d(xc: np.ndarray, wc: np.ndarray, out_scale: np.ndarray, bias: np.ndarray,
                     stride: tuple[int, int], padding: tuple[int, int, int, int], dilation: tuple[int, int],
                     groups: int) -> np.ndarray:
    """Convolution of centred int16 images ``xc`` (N, C, H, W) with centred int16 weights; float32 (N, O, OH, OW).

    ``padding`` is ``(top, bottom, left, right)``; padded pixels are 0, i.e. the real value 0.
    """
    _check_terms(wc.shape[1] * wc.shape[2] * wc.shape[3], "quantized_conv2d")
    top, bottom, left, right = padding
    padded = np.pad(xc.astype(np.int16, copy=False), ((0, 0), (0, 0), (top, bottom + 1), (left, right)))
    images, channels, rows, width = padded.shape
    kh, kw = wc.shape[2:]
    out_h = (rows - 1 - dilation[0] * (kh - 1) - 1) // stride[0] + 1  # rows - 1: the spare row is not image
    out_w = (width - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.empty((images, wc.shape[0], out_h, out_w), np.float32)
    conv2d_kernel(padded.reshape(images, channels, rows * width), np.ascontiguousarray(wc, dtype=np.int16), width,
                  stride[0], stride[1], dilation[0], dilation[1], groups,
                  _per_channel(out_scale, wc.shape[0], np.float32), _per_channel(bias, wc.shape[0], np.float32), out)
    return out
