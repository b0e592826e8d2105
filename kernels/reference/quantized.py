"""NumPy references for the quantization kernels (``kernels.cpu.quantized``): slow, obvious, exact.

The affine map between a real number ``x`` and an integer ``q``, with a ``scale`` and a
``zero_point`` (the integer that stands for the real 0)::

    q = clamp(round(x / scale) + zero_point, quant_min, quant_max)
    x ~ (q - zero_point) * scale

``round`` rounds half to even (as ``np.rint``, C's ``nearbyint`` and PyTorch). ``x / scale`` is
computed as ``x * (1 / scale)`` with the reciprocal in float32, exactly as PyTorch does, so that
ties round the same way. The integer layers take *centred* integers ``q - zero_point``; their
products are summed in int64 here, and the kernels' int32 sums must agree exactly.

May import: numpy.

>>> import numpy as np
>>> fake_quantize(np.array([0.26, -1.0, 3.0], dtype=np.float32), np.float32(0.5), 0, -2, 2)
(array([ 0.5, -1. ,  1. ], dtype=float32), array([ True,  True, False]))
>>> pack_int4(np.array([[1, -2, 3]], dtype=np.int8))  # low nibble first: 0xE1, then 0x03
array([[225,   3]], dtype=uint8)
"""

from __future__ import annotations

import numpy as np


def _along(values, axis: int | None, ndim: int) -> np.ndarray:
    """Per-channel values shaped to broadcast along ``axis`` of an ``ndim``-d array (as is for per-tensor)."""
    values = np.asarray(values)
    if axis is None:
        return values
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def fake_quantize(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int,
                  axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quantize and dequantize ``x``; also return the mask of values that were inside the range (not clamped)."""
    scale = _along(np.asarray(scale, dtype=np.float32), axis, x.ndim)
    inverse = (np.float32(1) / scale).astype(x.dtype)
    zero_point = _along(zero_point, axis, x.ndim).astype(np.float64)
    unclamped = np.rint(x * inverse).astype(np.float64) + zero_point
    mask = (unclamped >= quant_min) & (unclamped <= quant_max)
    q = np.clip(unclamped, quant_min, quant_max)
    return ((q - zero_point) * scale.astype(np.float64)).astype(x.dtype), mask


def quantize_centred(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int,
                     axis: int | None = None) -> np.ndarray:
    """``q - zero_point`` as int16: the integer that multiplies ``scale`` to give the dequantized value."""
    scale = _along(np.asarray(scale, dtype=np.float32), axis, x.ndim)
    inverse = (np.float32(1) / scale).astype(x.dtype)
    zero_point = _along(zero_point, axis, x.ndim).astype(np.float64)
    q = np.clip(np.rint(x * inverse).astype(np.float64) + zero_point, quant_min, quant_max)
    return (q - zero_point).astype(np.int16)


def quantize(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int, dtype,
             axis: int | None = None) -> np.ndarray:
    """The stored integers ``clamp(round(x / scale) + zero_point, quant_min, quant_max)`` as ``dtype``."""
    centred = quantize_centred(x, scale, zero_point, quant_min, quant_max, axis)
    return (centred + _along(zero_point, axis, x.ndim)).astype(dtype)


def dequantize(q: np.ndarray, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """``(q - zero_point) * scale`` in float32."""
    centred = q.astype(np.float64) - _along(zero_point, axis, q.ndim)
    return (centred * _along(np.asarray(scale, dtype=np.float64), axis, q.ndim)).astype(np.float32)


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Signed 4-bit integers (int8 in [-8, 7]), two per byte along the last axis.

    Element ``2i`` goes to the low nibble of byte ``i``, element ``2i + 1`` to its high nibble
    (ONNX's order); each nibble holds the two's complement of its value. An odd row gets a 0 pad.
    """
    rows = q.reshape(-1, q.shape[-1]).astype(np.int64)
    if rows.shape[1] % 2:
        rows = np.concatenate([rows, np.zeros((rows.shape[0], 1), np.int64)], axis=1)
    nibbles = rows & 0xF
    packed = nibbles[:, 0::2] | (nibbles[:, 1::2] << 4)
    return packed.astype(np.uint8).reshape(*q.shape[:-1], -1)


def unpack_int4(packed: np.ndarray, length: int) -> np.ndarray:
    """The inverse of ``pack_int4``: the first ``length`` signed nibbles of each row, as int8."""
    nibbles = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(*packed.shape[:-1], -1).astype(np.int16)
    signed = np.where(nibbles >= 8, nibbles - 16, nibbles)
    return signed[..., :length].astype(np.int8)


def quantized_linear(xc: np.ndarray, wc: np.ndarray, out_scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``(xc @ wc.T) * out_scale + bias`` for centred integers ``xc`` (N, K) and ``wc`` (O, K): float32 (N, O)."""
    sums = xc.astype(np.int64) @ wc.astype(np.int64).T
    return (sums * out_scale.astype(np.float64) + bias.astype(np.float64)).astype(np.float32)


def quantized_conv2d(xc: np.ndarray, wc: np.ndarray, out_scale: np.ndarray, bias: np.ndarray,
                     stride: tuple[int, int], padding: tuple[int, int, int, int], dilation: tuple[int, int],
                     groups: int) -> np.ndarray:
    """Cross-correlation of centred integer images ``(N, C, H, W)`` with centred weights ``(O, C / groups, KH, KW)``.

    ``padding`` is ``(top, bottom, left, right)``; padded pixels are 0 (the real value 0).
    """
    top, bottom, left, right = padding
    padded = np.pad(xc.astype(np.int64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_channels, group_channels, kh, kw = wc.shape
    reach_h, reach_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    windows = np.lib.stride_tricks.sliding_window_view(padded, (reach_h, reach_w), axis=(2, 3))
    windows = windows[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]]  # (N, C, OH, OW, KH, KW)
    per_group = out_channels // groups
    outputs = []
    for g in range(groups):
        x_group = windows[:, g * group_channels:(g + 1) * group_channels]
        w_group = wc[g * per_group:(g + 1) * per_group].astype(np.int64)
        outputs.append(np.einsum("ncijkl,ockl->noij", x_group, w_group))
    sums = np.concatenate(outputs, axis=1)
    scaled = sums * out_scale.astype(np.float64)[:, None, None] + bias.astype(np.float64)[:, None, None]
    return scaled.astype(np.float32)
