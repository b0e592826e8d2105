"""Fake quantization: round to the integer grid and back in floating point, with a straight-through gradient.

``fake_quantize(x) = (clamp(round(x / scale) + zero_point, quant_min, quant_max) - zero_point) * scale``

The forward pass sees exactly the values an integer model will compute with; the backward pass
pretends ``round`` is the identity (the straight-through estimator, STE), so gradients flow
through unchanged where the value was inside the range and are zero where it was clamped.

When ``scale`` (or a float ``zero_point``) is a tensor that requires grad, they get gradients
too, as in LSQ (Esser et al., 2020) and PyTorch's ``_fake_quantize_learnable_*``: per element,
``d out / d scale`` is ``(out - x) / scale`` inside the range and ``quant_min - zero_point`` or
``quant_max - zero_point`` where clamped; ``d out / d zero_point`` is 0 inside and ``-scale``
outside. Both are summed over each channel and multiplied by ``grad_factor``.

``pact`` is PACT (Choi et al., 2018): clip to a learned level ``alpha``, then fake-quantize
with ``scale = alpha / levels``; ``alpha`` gets its gradient from the clipping.

Signatures and semantics follow ``torch.fake_quantize_per_tensor_affine`` and
``torch.fake_quantize_per_channel_affine``; the arithmetic is ``kernels.cpu.quantized``.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.ops, dslearn.kernels, dslearn.quantization.config.

>>> import dslearn as ds
>>> x = ds.tensor([0.26, -1.0, 3.0], requires_grad=True)
>>> y = fake_quantize_per_tensor_affine(x, 0.5, 0, -2, 2)
>>> y.sum().backward(); y, x.grad
(tensor([ 0.5, -1. ,  1. ], grad_fn=<FakeQuantizeAffineBackward>), tensor([1., 1., 0.]))
"""

from __future__ import annotations

import numbers

import numpy as np

from dslearn.autograd.function import Function
from dslearn.kernels.cpu import quantized as kernels
from dslearn.ops.arguments import check_floating, describe, normalize_dim, to_tensor
from dslearn.ops.elementwise import maximum, minimum, relu
from dslearn.quantization.config import integer_range
from dslearn.tensor import Tensor


class FakeQuantizeAffine(Function):
    @staticmethod
    def forward(ctx, x, scale, zero_point, *, quant_min, quant_max, axis, grad_factor):
        ctx.zero_point = np.rint(zero_point)
        out, ctx.mask = kernels.fake_quantize(x, scale, ctx.zero_point, quant_min, quant_max, axis)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, scale, _ = ctx.inputs
        need_x, need_scale, need_zero = ctx.needs_input_grad
        grad_x = grad * Tensor._make(ctx.mask) if need_x else None
        if not (need_scale or need_zero):
            return grad_x, None, None
        attrs = ctx.attrs
        d_scale, d_zero = _qparam_derivatives(x._data, ctx.output._data, scale._data, ctx.zero_point, ctx.mask,
                                              attrs["quant_min"], attrs["quant_max"], attrs["axis"])
        axes = tuple(d for d in range(x.ndim) if d != attrs["axis"])
        factor = attrs["grad_factor"]
        grad_scale = (grad * Tensor._make(d_scale)).sum(axes).reshape(scale.shape) * factor if need_scale else None
        grad_zero = (grad * Tensor._make(d_zero)).sum(axes).reshape(scale.shape) * factor if need_zero else None
        return grad_x, grad_scale, grad_zero


def _qparam_derivatives(x, out, scale, zero_point, inside, quant_min, quant_max, axis):
    """Per element: d out / d scale and d out / d zero_point (LSQ's formulas), in ``x``'s dtype."""
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis] = -1
    scale = np.asarray(scale, dtype=np.float32).reshape(shape)
    zero_point = np.asarray(zero_point).reshape(shape)
    inverse = (np.float32(1) / scale).astype(x.dtype)
    below = np.rint(x * inverse) + zero_point < quant_min
    clamped_to = np.where(below, quant_min, quant_max) - zero_point
    d_scale = np.where(inside, (out - x) * inverse, clamped_to)
    d_zero = np.where(inside, 0.0, -scale)
    return d_scale.astype(x.dtype), d_zero.astype(x.dtype)


# -- public functions -------------------------------------------------------------------------------


def _check_range(op: str, quant_min, quant_max) -> None:
    for name, value in (("quant_min", quant_min), ("quant_max", quant_max)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    if quant_min >= quant_max:
        raise ValueError(f"{op}: quant_min ({quant_min}) must be less than quant_max ({quant_max})")


def _qparam_tensor(value, op: str, dtype) -> Tensor:
    """A Python number or a tensor as a tensor; numbers take ``dtype``."""
    if isinstance(value, Tensor):
        return value
    return to_tensor(np.asarray(value, dtype=dtype), op)


def _check_qparams(op: str, scale: Tensor, zero_point: Tensor, quant_min: int, quant_max: int,
                   channels: int | None) -> None:
    expected = "one value" if channels is None else f"{channels} values (one per channel)"
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        count_ok = t.numel() == 1 if channels is None else t.shape == (channels,)
        if not count_ok:
            raise ValueError(f"{op}: {name} must hold {expected}, got {describe(t)}")
    scales = np.asarray(scale._data, dtype=np.float64)
    if not np.all(np.isfinite(scales) & (scales > 0)):
        raise ValueError(f"{op}: scale must be positive and finite, got {scales.ravel()[:8].tolist()}")
    zero_points = np.rint(np.asarray(zero_point._data, dtype=np.float64))
    if np.any((zero_points < quant_min) | (zero_points > quant_max)):
        raise ValueError(f"{op}: zero_point must lie in [quant_min, quant_max] = [{quant_min}, {quant_max}], got "
                         f"{zero_points.ravel()[:8].tolist()}")


def fake_quantize_per_tensor_affine(input: Tensor, scale, zero_point, quant_min: int, quant_max: int, *,
                                    grad_factor: float = 1.0) -> Tensor:
    """Fake-quantize ``input`` with one ``scale`` and ``zero_point``, with a straight-through gradient.

    ``scale`` and ``zero_point`` are numbers or one-element tensors; tensors that require grad
    are learned (LSQ), their gradients multiplied by ``grad_factor``.

    >>> import dslearn as ds
    >>> fake_quantize_per_tensor_affine(ds.tensor([0.1, 0.7, 9.0]), 0.25, 0, 0, 15)
    tensor([0.  , 0.75, 3.75])
    """
    op = "fake_quantize_per_tensor_affine"
    input = to_tensor(input, op)
    check_floating(op, input)
    _check_range(op, quant_min, quant_max)
    scale, zero_point = _qparam_tensor(scale, op, np.float32), _qparam_tensor(zero_point, op, np.int32)
    _check_qparams(op, scale, zero_point, quant_min, quant_max, None)
    return FakeQuantizeAffine.apply(input, scale, zero_point, quant_min=int(quant_min), quant_max=int(quant_max),
                                    axis=None, grad_factor=float(grad_factor))


def fake_quantize_per_channel_affine(input: Tensor, scale, zero_point, axis: int, quant_min: int, quant_max: int, *,
                                     grad_factor: float = 1.0) -> Tensor:
    """Fake-quantize ``input`` with one ``scale`` and ``zero_point`` per index of ``axis``.

    >>> import dslearn as ds
    >>> w = ds.tensor([[0.3, -0.3], [0.3, -0.3]])
    >>> fake_quantize_per_channel_affine(w, ds.tensor([0.2, 0.1]), ds.tensor([0, 0]), 0, -7, 7)
    tensor([[ 0.4, -0.4],
            [ 0.3, -0.3]])
    """
    op = "fake_quantize_per_channel_affine"
    input = to_tensor(input, op)
    check_floating(op, input)
    _check_range(op, quant_min, quant_max)
    axis = normalize_dim(axis, input.ndim, op)
    scale, zero_point = _qparam_tensor(scale, op, np.float32), _qparam_tensor(zero_point, op, np.int32)
    _check_qparams(op, scale, zero_point, quant_min, quant_max, input.shape[axis] if input.ndim else 1)
    return FakeQuantizeAffine.apply(input, scale, zero_point, quant_min=int(quant_min), quant_max=int(quant_max),
                                    axis=axis, grad_factor=float(grad_factor))


def pact(input: Tensor, alpha: Tensor, bits: int, *, signed: bool = False) -> Tensor:
    """PACT: clip ``input`` to ``[0, alpha]`` (``[-alpha, alpha]`` if ``signed``), then fake-quantize to ``bits``.

    The result is stored as unsigned integers: zero point 0, or the middle integer when
    ``signed``. ``alpha`` (a positive 0-d tensor) gets the gradient of the clipping: the sum
    of the output gradients where ``input >= alpha`` (minus those where ``input <= -alpha``).

    >>> import dslearn as ds
    >>> alpha = ds.tensor(2.0, requires_grad=True)
    >>> y = pact(ds.tensor([-1.0, 0.5, 3.0]), alpha, bits=2)
    >>> y.sum().backward(); y.detach(), alpha.grad
    (tensor([0.    , 0.6667, 2.    ]), tensor(1.))
    """
    op = "pact"
    input, alpha = to_tensor(input, op), to_tensor(alpha, op)
    check_floating(op, input)
    if alpha.numel() != 1 or not float(alpha.detach().reshape(-1)[0].item()) > 0:
        raise ValueError(f"{op}: alpha must be one positive value, got {describe(alpha)}")
    quant_min, quant_max = integer_range(bits, signed=False, symmetric=True)
    alpha = alpha.reshape(())
    clipped = minimum(maximum(input, -alpha) if signed else relu(input), alpha)
    if signed:
        scale, zero_point = alpha.detach() / ((quant_max - quant_min) // 2), (quant_max + 1) // 2
    else:
        scale, zero_point = alpha.detach() / quant_max, 0
    return fake_quantize_per_tensor_affine(clipped, scale, zero_point, quant_min, quant_max)
