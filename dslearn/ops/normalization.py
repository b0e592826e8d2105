"""Normalisation layers' functional forms: layer norm, batch norm and group norm.

Each normalises x to zero mean and unit variance over some group of elements, then applies a
per-feature affine map: y = (x - mean) / sqrt(var + eps) * weight + bias. Forward and backward
run the fused kernels of ``dslearn.kernels.cpu.norm`` (or their CUDA twins: ``kernels_for``); the
ops reshape the input so that the kernel sees rows (layer norm), (N, C, S) channels (batch norm)
or (N, G, K, S) groups.

Double backward: when ``create_graph=True``, each backward runs as Tensor ops instead of the
kernel (``_backward_as_graph``), so its result can be differentiated again. Batch norm in
evaluation mode is an affine map per channel whose backward is always written in Tensor ops.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.ops.arguments, dslearn.kernels, dslearn.backends.

>>> import dslearn as ds
>>> x = ds.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 8.0]])
>>> layer_norm(x, 3)
tensor([[-1.2247,  0.    ,  1.2247],
        [-0.7071, -0.7071,  1.4142]])
"""

from __future__ import annotations

import math

import numpy as np

from dslearn.autograd.function import Function
from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.backends import full, kernels_for
from dslearn.ops.arguments import cast_if_needed, check_floating, describe, to_tensor
from dslearn.tensor import Tensor


def _backward_as_graph(x, grad, weight, stat_dims, param_dims, eps):
    """(dx, dweight, dbias) of a normalisation over ``stat_dims``, in differentiable Tensor ops.

    ``x``, ``grad`` and ``weight`` are shaped so that they broadcast; dweight and dbias sum
    over ``param_dims``.
    """
    mean = x.mean(stat_dims, keepdim=True)
    centered = x - mean
    rstd = ((centered * centered).mean(stat_dims, keepdim=True) + eps).rsqrt()
    x_hat = centered * rstd
    gw = grad * weight
    dx = rstd * (gw - gw.mean(stat_dims, keepdim=True) - x_hat * (gw * x_hat).mean(stat_dims, keepdim=True))
    return dx, (grad * x_hat).sum(param_dims), grad.sum(param_dims)


def _gradients(ctx, dx, dweight, dbias) -> tuple:
    """Shape the kernel's gradients like the inputs (x, weight, bias), None where none is needed."""
    x, weight, bias = ctx.inputs
    need_x, need_weight, need_bias = ctx.needs_input_grad
    return (_like(dx, x) if need_x else None, _like(dweight, weight) if need_weight else None,
            _like(dbias, bias) if need_bias else None)


def _like(values, t: Tensor) -> Tensor:
    if isinstance(values, Tensor):
        return values.reshape(t.shape)
    return Tensor._make(values.reshape(t.shape).astype(t._data.dtype, copy=False))


# -- layer norm -------------------------------------------------------------------------------------


class LayerNorm(Function):
    """Normalise over the last ``normalized_ndim`` dims; weight and bias have those dims' shape."""

    @staticmethod
    def forward(ctx, x, weight, bias, normalized_ndim, eps):
        width = math.prod(x.shape[x.ndim - normalized_ndim:])
        out, ctx.mean, ctx.rstd = kernels_for(x, "norm").layer_norm_forward(x.reshape(-1, width), weight.reshape(-1),
                                                             bias.reshape(-1), eps)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight, _ = ctx.inputs
        width = weight.numel()
        if is_grad_enabled():
            return _gradients(ctx, *_backward_as_graph(x.reshape(-1, width), grad.reshape(-1, width),
                                                       weight.reshape(1, width), (1,), (0,), ctx.attrs["eps"]))
        kernels = kernels_for(x._data, "norm")
        return _gradients(ctx, *kernels.layer_norm_backward(grad._data.reshape(-1, width), x._data.reshape(-1, width),
                                                            ctx.mean, ctx.rstd, weight._data.reshape(-1)))


def _affine(value, shape: tuple[int, ...], fill: float, x: Tensor, op: str, name: str) -> Tensor:
    """``weight``/``bias`` as a tensor of ``shape`` in x's dtype (constant ``fill`` when None)."""
    if value is None:
        return Tensor._make(full(shape, fill, x._data.dtype, x.device))
    value = to_tensor(value, op)
    if value.shape != shape:
        raise ValueError(f"{op}: {name} must have shape {shape}, got {describe(value)}")
    return cast_if_needed(value, x.dtype)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last dims, given by ``normalized_shape``, then scale and shift.

    >>> import dslearn as ds
    >>> layer_norm(ds.tensor([[0.0, 4.0]]), (2,), weight=ds.tensor([1.0, 2.0]), bias=ds.tensor([0.0, 1.0]))
    tensor([[-1.,  3.]])
    """
    x = to_tensor(input, "layer_norm")
    check_floating("layer_norm", x)
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not shape or len(shape) > x.ndim or x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} must match the last dims of the input, "
                         f"got {describe(x)}")
    weight = _affine(weight, shape, 1.0, x, "layer_norm", "weight")
    bias = _affine(bias, shape, 0.0, x, "layer_norm", "bias")
    return LayerNorm.apply(x, weight, bias, normalized_ndim=len(shape), eps=float(eps))


# -- batch norm -------------------------------------------------------------------------------------


def _as_channels(x: np.ndarray) -> np.ndarray:
    """An (N, C, ...) array as (N, C, S), S the product of the trailing dims."""
    return x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))


class BatchNormTraining(Function):
    """Batch norm with the batch's own statistics (``mean``, ``rstd`` per channel, given)."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, rstd, eps):
        return kernels_for(x, "norm").channel_affine(_as_channels(x), weight * rstd, mean, bias).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight, _ = ctx.inputs
        x3, grad3 = x.reshape(x.shape[0], x.shape[1], -1), grad.reshape(x.shape[0], x.shape[1], -1)
        if is_grad_enabled():
            return _gradients(ctx, *_backward_as_graph(x3, grad3, weight.reshape(1, -1, 1), (0, 2), (0, 2),
                                                       ctx.attrs["eps"]))
        kernels = kernels_for(x._data, "norm")
        return _gradients(ctx, *kernels.batch_norm_backward(grad3._data, x3._data, ctx.attrs["mean"],
                                                            ctx.attrs["rstd"], weight._data))


class BatchNormEvaluation(Function):
    """Batch norm with fixed (running) statistics: an affine map per channel."""

    @staticmethod
    def forward(ctx, x, weight, bias, mean, rstd):
        return kernels_for(x, "norm").channel_affine(_as_channels(x), weight * rstd, mean, bias).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight, _ = ctx.inputs
        channel_shape = (1, -1) + (1,) * (x.ndim - 2)
        rstd = Tensor._make(ctx.attrs["rstd"].astype(x._data.dtype).reshape(channel_shape))
        mean = Tensor._make(ctx.attrs["mean"].astype(x._data.dtype).reshape(channel_shape))
        others = (0,) + tuple(range(2, x.ndim))
        return _gradients(ctx, grad * weight.reshape(channel_shape) * rstd,
                          (grad * (x - mean) * rstd).sum(others), grad.sum(others))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) of an (N, C), (N, C, L) or (N, C, H, W) input.

    In training, the batch's statistics are used, and ``running_mean``/``running_var`` (when
    given) are updated in place: ``r = (1 - momentum) r + momentum * batch``, with the unbiased
    batch variance (as PyTorch). In evaluation, the running statistics are used.

    >>> import dslearn as ds
    >>> x = ds.tensor([[1.0], [3.0]])
    >>> mean, var = ds.zeros(1), ds.ones(1)
    >>> batch_norm(x, mean, var, training=True), mean, var
    (tensor([[-1.],
            [ 1.]]), tensor([0.2]), tensor([1.1]))
    """
    x = to_tensor(input, "batch_norm")
    check_floating("batch_norm", x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, ...), got {describe(x)}")
    channels = x.shape[1]
    weight = _affine(weight, (channels,), 1.0, x, "batch_norm", "weight")
    bias = _affine(bias, (channels,), 0.0, x, "batch_norm", "bias")
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        if stat is not None and not isinstance(stat, Tensor):
            raise TypeError(f"batch_norm: {name} must be a Tensor (it is updated in place), got {type(stat).__name__}")
        if stat is not None and stat.shape != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},), got {describe(stat)}")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed in evaluation mode "
                             "(training=False)")
        mean = running_mean._data.astype(np.float64)
        rstd = 1 / np.sqrt(running_var._data.astype(np.float64) + eps)
        return BatchNormEvaluation.apply(x, weight, bias, mean=mean, rstd=rstd)
    count = x.numel() // channels if channels else 0
    if count <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got {describe(x)}")
    mean, var = kernels_for(x._data, "norm").batch_norm_statistics(_as_channels(x._data))
    _update_running(running_mean, mean, momentum)
    _update_running(running_var, var * (count / (count - 1)), momentum)
    rstd = (1 / np.sqrt(var + eps)).astype(mean.dtype)
    return BatchNormTraining.apply(x, weight, bias, mean=mean, rstd=rstd, eps=float(eps))


def _update_running(stat: Tensor | None, batch_value: np.ndarray, momentum: float) -> None:
    """``stat = (1 - momentum) stat + momentum * batch_value``, in place (a buffer, not a graph op)."""
    if stat is None:
        return
    stat._data[...] = (1 - momentum) * stat._data + momentum * batch_value.astype(stat._data.dtype)
    stat._version += 1


# -- group norm -------------------------------------------------------------------------------------


class GroupNorm(Function):
    """Normalise each group of channels of each sample; weight and bias per channel."""

    @staticmethod
    def forward(ctx, x, weight, bias, num_groups, eps):
        x4 = x.reshape(x.shape[0], num_groups, x.shape[1] // num_groups, -1)
        out, ctx.mean, ctx.rstd = kernels_for(x, "norm").group_norm_forward(x4, weight, bias, eps)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        x, weight, _ = ctx.inputs
        groups = ctx.attrs["num_groups"]
        grouped = (x.shape[0], groups, x.shape[1] // groups, -1)
        if is_grad_enabled():
            return _gradients(ctx, *_backward_as_graph(x.reshape(grouped), grad.reshape(grouped),
                                                       weight.reshape(1, groups, -1, 1), (2, 3), (0, 3),
                                                       ctx.attrs["eps"]))
        kernels = kernels_for(x._data, "norm")
        return _gradients(ctx, *kernels.group_norm_backward(grad._data.reshape(grouped), x._data.reshape(grouped),
                                                            ctx.mean, ctx.rstd, weight._data))


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Split the C channels of an (N, C, ...) input into ``num_groups`` groups; normalise each.

    >>> import dslearn as ds
    >>> group_norm(ds.tensor([[1.0, 3.0, 10.0, 30.0]]), 2, eps=0.0)
    tensor([[-1.,  1., -1.,  1.]])
    """
    x = to_tensor(input, "group_norm")
    check_floating("group_norm", x)
    if x.ndim < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, ...), got {describe(x)}")
    channels = x.shape[1]
    if not isinstance(num_groups, (int, np.integer)) or num_groups <= 0 or channels % num_groups:
        raise ValueError(f"group_norm: the number of channels ({channels}) must be divisible by num_groups, "
                         f"got num_groups={num_groups} for input of {describe(x)}")
    weight = _affine(weight, (channels,), 1.0, x, "group_norm", "weight")
    bias = _affine(bias, (channels,), 0.0, x, "group_norm", "bias")
    return GroupNorm.apply(x, weight, bias, num_groups=int(num_groups), eps=float(eps))
