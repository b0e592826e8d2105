"""Matrix products: ``matmul`` (batched, broadcasting, NumPy's 1-D rules) and ``linear``.

Both use NumPy's BLAS-backed ``matmul``, the fastest CPU path; the hand-written teaching
kernels live in ``dslearn.kernels.cpu.matmul``. Half-precision inputs are multiplied in
float32 and rounded back, as tensor cores accumulate.

May import: numpy, dslearn.tensor, dslearn.autograd.function, dslearn.ops.arguments,
dslearn.ops.elementwise.

>>> import dslearn as ds
>>> ds.ones(64, 784) @ ds.ones(256, 10)
Traceback (most recent call last):
...
ValueError: matmul: shapes (64, 784) and (256, 10) are not aligned (784 != 256)
"""

from __future__ import annotations

import numpy as np

from dslearn import dtypes
from dslearn.autograd.function import Function
from dslearn.ops.arguments import binary_operands, check_same_device, describe, to_tensor
from dslearn.ops.elementwise import unbroadcast
from dslearn.tensor import Tensor

_HALF = (dtypes.float16.np, dtypes.bfloat16.np)


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype in _HALF:
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype)
    return np.matmul(a, b)


class Matmul(Function):
    @staticmethod
    def forward(ctx, a, b):
        return _mm(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad @ b.mT, a.shape) if need_a else None,
                unbroadcast(a.mT @ grad, b.shape) if need_b else None)


class Linear(Function):
    """``x @ weight.T + bias`` in one op: the layer every MLP is made of."""

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        out = _mm(x.reshape(-1, x.shape[-1]), weight.T)
        if bias is not None:
            out += bias
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.inputs[:2]
        needs = ctx.needs_input_grad
        grad2d = grad.reshape(-1, grad.shape[-1])
        grad_x = (grad2d @ weight).reshape(x.shape) if needs[0] else None
        grad_w = grad2d.mT @ x.reshape(-1, x.shape[-1]) if needs[1] else None
        if len(needs) == 2:
            return grad_x, grad_w
        return grad_x, grad_w, grad2d.sum(0) if needs[2] else None


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules: 1-D operands are vectors, leading dims broadcast.

    >>> import dslearn as ds
    >>> (ds.ones(5, 2, 3) @ ds.ones(3, 4)).shape, (ds.ones(3) @ ds.ones(3, 4)).shape
    ((5, 2, 4), (4,))
    """
    a, b = binary_operands(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:
        return matmul(a.unsqueeze(0), b).squeeze(-2)
    if b.ndim == 1:
        return matmul(a, b.unsqueeze(-1)).squeeze(-1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a.shape[-1]} != {b.shape[-2]})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast together") from None
    return Matmul.apply(a, b)


def linear(x, weight, bias=None) -> Tensor:
    """``x @ weight.T + bias``: x is (..., in_features), weight (out_features, in_features).

    >>> import dslearn as ds
    >>> ds.linear(ds.ones(64, 784), ds.ones(256, 784), ds.zeros(256)).shape
    (64, 256)
    """
    x, weight = to_tensor(x, "linear"), to_tensor(weight, "linear")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got {describe(weight)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape {weight.shape} "
                         f"({x.shape[-1] if x.ndim else None} != {weight.shape[1]})")
    inputs = [x, weight]
    if bias is not None:
        bias = to_tensor(bias, "linear")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {describe(bias)}")
        inputs.append(bias)
    check_same_device("linear", *inputs)
    if len({t._data.dtype for t in inputs}) > 1:
        raise TypeError("linear: input, weight and bias must share a dtype, got "
                        + ", ".join(t.dtype.name for t in inputs))
    return Linear.apply(*inputs)
