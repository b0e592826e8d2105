"""NumPy references for the normalisation kernels (``kernels.cpu.norm``): same signatures, float64 inside.

Every norm is one function, ``_normalize``, over different axes; every backward is the same
formula, dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat)) with gw = grad * weight.

May import: numpy.

>>> import numpy as np
>>> out, mean, rstd = layer_norm_forward(np.array([[1.0, 3.0]]), None, None, 0.0)
>>> out
array([[-1.,  1.]])
"""

from __future__ import annotations

import numpy as np


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float):
    """(x_hat, mean, rstd) with statistics over ``axes`` (kept as size-1 dims)."""
    mean = x.mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    return (x - mean) * rstd, mean, rstd


def _normalize_backward(grad, x_hat, rstd, weight, axes):
    gw = grad * weight
    return rstd * (gw - gw.mean(axis=axes, keepdims=True) - x_hat * (gw * x_hat).mean(axis=axes, keepdims=True))


def _or(values, default: float, shape) -> np.ndarray:
    return np.full(shape, default) if values is None else values.astype(np.float64).reshape(shape)


def layer_norm_forward(x, weight, bias, eps):
    x64 = x.astype(np.float64)
    x_hat, mean, rstd = _normalize(x64, (1,), eps)
    out = x_hat * _or(weight, 1.0, x.shape[1]) + _or(bias, 0.0, x.shape[1])
    return out.astype(x.dtype), mean[:, 0], rstd[:, 0]


def layer_norm_backward(grad, x, mean, rstd, weight):
    x64, g64 = x.astype(np.float64), grad.astype(np.float64)
    x_hat = (x64 - mean[:, None]) * rstd[:, None]
    dx = _normalize_backward(g64, x_hat, rstd[:, None], _or(weight, 1.0, x.shape[1]), (1,))
    return dx.astype(x.dtype), (g64 * x_hat).sum(0), g64.sum(0)


def batch_norm_statistics(x):
    x64 = x.astype(np.float64)
    return x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))


def channel_affine(x, scale, center, shift):
    out = scale[:, None] * (x.astype(np.float64) - center[:, None]) + shift[:, None]
    return out.astype(x.dtype)


def batch_norm_backward(grad, x, mean, rstd, weight):
    x64, g64 = x.astype(np.float64), grad.astype(np.float64)
    x_hat = (x64 - mean[:, None]) * rstd[:, None]
    dx = _normalize_backward(g64, x_hat, rstd[:, None], _or(weight, 1.0, (x.shape[1], 1)), (0, 2))
    return dx.astype(x.dtype), (g64 * x_hat).sum(axis=(0, 2)), g64.sum(axis=(0, 2))


def group_norm_forward(x, weight, bias, eps):
    groups, per_group = x.shape[1], x.shape[2]
    x_hat, mean, rstd = _normalize(x.astype(np.float64), (2, 3), eps)
    out = x_hat * _or(weight, 1.0, (groups, per_group, 1)) + _or(bias, 0.0, (groups, per_group, 1))
    return out.astype(x.dtype), mean[:, :, 0, 0], rstd[:, :, 0, 0]


def group_norm_backward(grad, x, mean, rstd, weight):
    groups, per_group = x.shape[1], x.shape[2]
    x64, g64 = x.astype(np.float64), grad.astype(np.float64)
    x_hat = (x64 - mean[:, :, None, None]) * rstd[:, :, None, None]
    dx = _normalize_backward(g64, x_hat, rstd[:, :, None, None], _or(weight, 1.0, (groups, per_group, 1)), (2, 3))
    return dx.astype(x.dtype), (g64 * x_hat).sum(axis=(0, 3)).reshape(-1), g64.sum(axis=(0, 3)).reshape(-1)
