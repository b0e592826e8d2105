"""Convolution and pooling on NCHW tensors: ``conv2d``, ``max_pool2d``, ``avg_pool2d`` and the adaptive pools.

The arithmetic lives in ``dslearn.kernels.cpu.conv`` (direct Numba kernels or im2col + BLAS) and
``dslearn.kernels.cpu.pool``, or their CUDA twins for tensors on the GPU (``kernels_for``); the
pooling window tables are computed on the host for every device. This module checks arguments
the way PyTorch does and wires the kernels into autograd. Every backward here is itself a
``Function`` whose own backward is again one of these ops, so gradients of gradients work:

* conv2d is linear in its input and in its weight. Its input gradient is a transposed
  convolution (``Conv2dInputGrad``), its weight gradient a correlation of the input with the
  output gradient (``Conv2dWeightGrad``); the backward of each of the three is built from the
  other two.
* max pooling routes each output's gradient to the pixel it came from (``ScatterToWindows``);
  the adjoint of that scatter is a gather (``GatherFromWindows``), and vice versa.
* average pooling's backward spreads gradients over windows; its adjoint is average pooling.

May import: numpy, dslearn.tensor, dslearn.autograd.function, dslearn.ops.arguments, dslearn.kernels.

>>> import dslearn as ds
>>> x = ds.ones(8, 1, 28, 28)
>>> y = conv2d(x, ds.ones(6, 1, 5, 5))
>>> y.shape, max_pool2d(y, 2).shape
((8, 6, 24, 24), (8, 6, 12, 12))
>>> conv2d(x, ds.ones(6, 3, 5, 5))
Traceback (most recent call last):
...
ValueError: conv2d: input of shape (8, 1, 28, 28) has 1 channels; weight of shape (6, 3, 5, 5) with groups=1 expects 3
"""

from __future__ import annotations

import numbers

import numpy as np

from dslearn.autograd.function import Function
from dslearn.backends import kernels_for
from dslearn.kernels.cpu import pool as pool_windows  # window tables: computed on the host for every device
from dslearn.ops.arguments import check_floating, check_same_device, describe, to_tensor
from dslearn.tensor import Tensor


def _geometry(attrs: dict) -> dict:
    """The attributes every conv Function shares: stride, padding, dilation, groups."""
    return {key: attrs[key] for key in ("stride", "padding", "dilation", "groups")}


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, weight, bias=None, *, stride, padding, dilation, groups):
        return kernels_for(x, "conv").conv2d_forward(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.inputs[:2]
        needs, geometry = ctx.needs_input_grad, _geometry(ctx.attrs)
        grad_x = Conv2dInputGrad.apply(grad, weight, input_shape=x.shape, **geometry) if needs[0] else None
        grad_w = Conv2dWeightGrad.apply(x, grad, kernel_size=weight.shape[2:], **geometry) if needs[1] else None
        if len(needs) == 2:
            return grad_x, grad_w
        return grad_x, grad_w, grad.sum((0, 2, 3)) if needs[2] else None


class Conv2dInputGrad(Function):
    """conv2d's input gradient (a transposed convolution); linear in ``grad`` and in ``weight``."""

    @staticmethod
    def forward(ctx, grad, weight, *, input_shape, stride, padding, dilation, groups):
        return kernels_for(grad, "conv").conv2d_input_grad(grad, weight, input_shape, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_of_x):
        grad, weight = ctx.inputs
        needs, geometry = ctx.needs_input_grad, _geometry(ctx.attrs)
        return (Conv2d.apply(grad_of_x, weight, **geometry) if needs[0] else None,
                Conv2dWeightGrad.apply(grad_of_x, grad, kernel_size=weight.shape[2:], **geometry) if needs[1] else None)


class Conv2dWeightGrad(Function):
    """conv2d's weight gradient (input correlated with ``grad``); linear in ``x`` and in ``grad``."""

    @staticmethod
    def forward(ctx, x, grad, *, kernel_size, stride, padding, dilation, groups):
        return kernels_for(x, "conv").conv2d_weight_grad(x, grad, kernel_size, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_of_weight):
        x, grad = ctx.inputs
        needs, geometry = ctx.needs_input_grad, _geometry(ctx.attrs)
        return (Conv2dInputGrad.apply(grad, grad_of_weight, input_shape=x.shape, **geometry) if needs[0] else None,
                Conv2d.apply(x, grad_of_weight, **geometry) if needs[1] else None)


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, *, rows, cols, dilation):
        out, ctx.indices = kernels_for(x, "pool").max_pool(x, rows, cols, dilation)
        return out

    @staticmethod
    def backward(ctx, grad):
        input_hw = ctx.inputs[0].shape[-2:]
        return ScatterToWindows.apply(grad, Tensor._make(ctx.indices), input_hw=input_hw)


class ScatterToWindows(Function):
    """Max pooling's backward: add each gradient onto the pixel ``indices`` names (flat, per plane)."""

    @staticmethod
    def forward(ctx, grad, indices, *, input_hw):
        return kernels_for(grad, "pool").scatter_to_windows(grad, indices, input_hw)

    @staticmethod
    def backward(ctx, grad_of_input):
        return GatherFromWindows.apply(grad_of_input, ctx.inputs[1]), None


class GatherFromWindows(Function):
    """Pick each plane's pixel at ``indices``: the adjoint of ``ScatterToWindows``."""

    @staticmethod
    def forward(ctx, x, indices):
        return kernels_for(x, "pool").gather_from_windows(x, indices)

    @staticmethod
    def backward(ctx, grad):
        x, indices = ctx.inputs
        return ScatterToWindows.apply(grad, indices, input_hw=x.shape[-2:]), None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, *, rows, cols, divisor):
        return kernels_for(x, "pool").avg_pool(x, rows, cols, divisor)

    @staticmethod
    def backward(ctx, grad):
        return AvgPool2dBackward.apply(grad, input_hw=ctx.inputs[0].shape[-2:], **ctx.attrs)


class AvgPool2dBackward(Function):
    """Average pooling's backward: spread each gradient, divided, over its window. Its adjoint is AvgPool2d."""

    @staticmethod
    def forward(ctx, grad, *, rows, cols, divisor, input_hw):
        return kernels_for(grad, "pool").avg_pool_backward(grad, rows, cols, divisor, input_hw)

    @staticmethod
    def backward(ctx, grad_of_input):
        attrs = ctx.attrs
        return AvgPool2d.apply(grad_of_input, rows=attrs["rows"], cols=attrs["cols"], divisor=attrs["divisor"])


# -- argument checking --------------------------------------------------------------------------


def _is_int(value) -> bool:
    """True for Python and NumPy integers, not for bools (checked cheaply for the common ``int``)."""
    return type(value) is int or (isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool))


def _pair(value, name: str, op: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum``, as a pair."""
    pair = (value, value) if _is_int(value) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not (_is_int(pair[0]) and _is_int(pair[1])):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be at least {minimum}, got {tuple(pair)}")
    return int(pair[0]), int(pair[1])


def _image_input(x, op: str, extra: tuple[Tensor, ...] = ()) -> Tensor:
    """A floating point tensor of shape (C, H, W) or (N, C, H, W) with non-empty C, H and W."""
    x = to_tensor(x, op)
    check_floating(op, x)
    check_same_device(op, x, *extra)
    if x.ndim not in (3, 4) or 0 in x.shape[1:]:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input with non-empty C, H and W, "
                         f"got {describe(x)}")
    return x


def _conv_padding(padding, kernel_hw, dilation, stride, op: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """PyTorch's padding argument as ``((top, bottom), (left, right))``."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding != "same":
            raise ValueError(f"{op}: padding must be 'valid', 'same', an int or a pair of ints, got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
        totals = [d * (k - 1) for d, k in zip(dilation, kernel_hw)]
        return tuple((total // 2, total - total // 2) for total in totals)  # the extra pixel goes last, as in PyTorch
    return tuple((p, p) for p in _pair(padding, "padding", op, minimum=0))


def _check_dtypes(op: str, *tensors: Tensor) -> None:
    if len({t._data.dtype for t in tensors}) > 1:
        raise TypeError(f"{op}: input, weight and bias must share a dtype, got "
                        + ", ".join(describe(t) for t in tensors))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of an (N, C, H, W) or (C, H, W) input with (O, C / groups, KH, KW) weights.

    ``stride``, ``padding`` and ``dilation`` are ints or pairs; ``padding`` may also be
    ``'valid'`` (none) or ``'same'`` (output as large as the input; stride 1 only).

    >>> import dslearn as ds
    >>> x = ds.arange(16.0).reshape(1, 1, 4, 4)
    >>> ds.ops.conv.conv2d(x, ds.ones(1, 1, 2, 2), stride=2)
    tensor([[[[10., 18.],
              [42., 50.]]]])
    >>> ds.ops.conv.conv2d(x, ds.ones(2, 1, 3, 3), ds.zeros(2), padding="same").shape
    (1, 2, 4, 4)
    """
    weight = to_tensor(weight, "conv2d")
    tensors = [weight] if bias is None else [weight, to_tensor(bias, "conv2d")]
    x = _image_input(input, "conv2d", tuple(tensors))
    tensors.insert(0, x)
    _check_dtypes("conv2d", *tensors)
    if x.ndim == 3:
        return conv2d(x.unsqueeze(0), weight, bias, stride, padding, dilation, groups).squeeze(0)
    if weight.ndim != 4:
        raise ValueError("conv2d: weight must be 4-D (out_channels, in_channels / groups, KH, KW), "
                         f"got {describe(weight)}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    if x.shape[1] != weight.shape[1] * groups:
        raise ValueError(f"conv2d: input of shape {x.shape} has {x.shape[1]} channels; weight of shape "
                         f"{weight.shape} with groups={groups} expects {weight.shape[1] * groups}")
    if weight.shape[0] % groups:
        raise ValueError(f"conv2d: out_channels {weight.shape[0]} (weight shape {weight.shape}) is not divisible "
                         f"by groups={groups}")
    if bias is not None and tensors[2].shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), got {describe(tensors[2])}")
    stride = _pair(stride, "stride", "conv2d", minimum=1)
    dilation = _pair(dilation, "dilation", "conv2d", minimum=1)
    padding = _conv_padding(padding, weight.shape[2:], dilation, stride, "conv2d")
    padded_hw = tuple(x.shape[2 + d] + sum(padding[d]) for d in (0, 1))
    reach = tuple(dilation[d] * (weight.shape[2 + d] - 1) + 1 for d in (0, 1))
    if reach[0] > padded_hw[0] or reach[1] > padded_hw[1]:
        raise ValueError(f"conv2d: kernel of size {weight.shape[2:]} (spanning {reach} with dilation {dilation}) is "
                         f"larger than the padded input {padded_hw} (input shape {x.shape}, padding {padding})")
    return Conv2d.apply(*tensors, stride=stride, padding=padding, dilation=dilation, groups=int(groups))


def _pool_geometry(x: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool, op: str):
    """Check pooling arguments; return them normalised to pairs, the output size and the window tables."""
    kernel = _pair(kernel_size, "kernel_size", op, minimum=1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else stride
    stride = _pair(stride, "stride", op, minimum=1)
    padding = _pair(padding, "padding", op, minimum=0)
    dilation = _pair(dilation, "dilation", op, minimum=1)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} should be at most half of kernel_size {kernel}")
    out_hw = []
    for size, k, s, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        out_hw.append(out - 1 if ceil_mode and (out - 1) * s >= size + p else out)  # start inside input or padding
    if min(out_hw) < 1:
        raise ValueError(f"{op}: output size {tuple(out_hw)} is too small for input {describe(x)} with kernel_size "
                         f"{kernel}, stride {stride}, padding {padding} and dilation {dilation}")
    tables = [pool_windows.pool_windows(x.shape[-2 + d], kernel[d], stride[d], padding[d], dilation[d], out_hw[d])
              for d in (0, 1)]
    if min(tables[0][1].min(), tables[1][1].min()) == 0:  # only dilation lets a window fall between pixels
        raise ValueError(f"{op}: with kernel_size {kernel}, padding {padding} and dilation {dilation}, some windows "
                         f"cover only padding of input {describe(x)} (PyTorch returns -inf there); use less padding")
    return (kernel, stride, padding, dilation), tuple(out_hw), tables


def _max_pool(x: Tensor, rows, cols, dilation, return_indices: bool):
    if not return_indices:
        return MaxPool2d.apply(x, rows=rows, cols=cols, dilation=dilation)
    indices = Tensor._make(kernels_for(x._data, "pool").max_pool(x._data, rows, cols, dilation)[1])
    return GatherFromWindows.apply(x, indices), indices


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Largest value of each (dilated) window; with ``return_indices``, also its flat index in the plane.

    ``stride`` defaults to ``kernel_size``; ``padding`` (at most half the kernel) pads with -inf.

    >>> import dslearn as ds
    >>> x = ds.arange(16.0).reshape(1, 1, 4, 4)
    >>> ds.ops.conv.max_pool2d(x, 2, return_indices=True)
    (tensor([[[[ 5.,  7.],
              [13., 15.]]]]), tensor([[[[ 5,  7],
              [13, 15]]]]))
    """
    x = _image_input(input, "max_pool2d")
    (_, _, _, dilation), _, (rows, cols) = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                                                            "max_pool2d")
    return _max_pool(x, rows, cols, dilation, return_indices)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Mean of each window. ``count_include_pad`` counts zero padding in the divisor; ``divisor_override`` replaces it.

    >>> import dslearn as ds
    >>> ds.ops.conv.avg_pool2d(ds.arange(16.0).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 2.5,  4.5],
              [10.5, 12.5]]]])
    """
    x = _image_input(input, "avg_pool2d")
    (kernel, stride, padding, _), out_hw, (rows, cols) = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode,
                                                                         "avg_pool2d")
    if divisor_override is not None:
        if not _is_int(divisor_override) or divisor_override == 0:
            raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int, got {divisor_override!r}")
        divisor = np.full(out_hw, float(divisor_override))
    else:
        divisor = pool_windows.avg_pool_divisor(x.shape[-2:], kernel, stride, padding, out_hw, count_include_pad)
    return AvgPool2d.apply(x, rows=rows, cols=cols, divisor=divisor)


def _adaptive_geometry(x: Tensor, output_size, op: str):
    """Output size (``None`` entries keep the input's) and the adaptive window tables."""
    single = output_size is None or _is_int(output_size)
    sizes = (output_size, output_size) if single else output_size
    if not isinstance(sizes, (tuple, list)) or len(sizes) != 2:
        raise TypeError(f"{op}: output_size must be an int, None or a pair of them, got {output_size!r}")
    out_hw = tuple(int(x.shape[-2 + d]) if s is None else _pair(s, "output_size", op, minimum=0)[0]
                   for d, s in enumerate(sizes))
    tables = [pool_windows.adaptive_windows(x.shape[-2 + d], out_hw[d]) for d in (0, 1)]
    return out_hw, tables


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Average over ``output_size`` bins that tile the input as evenly as possible.

    >>> import dslearn as ds
    >>> ds.ops.conv.adaptive_avg_pool2d(ds.arange(16.0).reshape(1, 1, 4, 4), (1, None))
    tensor([[[[6., 7., 8., 9.]]]])
    """
    x = _image_input(input, "adaptive_avg_pool2d")
    _, (rows, cols) = _adaptive_geometry(x, output_size, "adaptive_avg_pool2d")
    return AvgPool2d.apply(x, rows=rows, cols=cols, divisor=np.outer(rows[1], cols[1]).astype(np.float64))


def adaptive_max_pool2d(input, output_size, return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Maximum over ``output_size`` bins that tile the input as evenly as possible.

    >>> import dslearn as ds
    >>> ds.ops.conv.adaptive_max_pool2d(ds.arange(16.0).reshape(1, 1, 4, 4), 1)
    tensor([[[[15.]]]])
    """
    x = _image_input(input, "adaptive_max_pool2d")
    _, (rows, cols) = _adaptive_geometry(x, output_size, "adaptive_max_pool2d")
    return _max_pool(x, rows, cols, (1, 1), return_indices)
