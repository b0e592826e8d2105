"""Softmax and log-softmax along one dimension, on fused kernels.

Forward and backward each run one Numba kernel (``dslearn.kernels.cpu.softmax``, or its CUDA twin
for tensors on the GPU: ``kernels_for``) instead of a chain of NumPy passes. The backward rules
are the classic ones, with y the op's output:

* softmax:     dx = y * (g - sum(g * y))
* log_softmax: dx = g - exp(y) * sum(g)

Double backward: when the graph of the backward itself is recorded (``create_graph=True``),
the same formulas run as Tensor ops, which are differentiable again; otherwise the kernel runs.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.ops.arguments, dslearn.kernels, dslearn.backends.

>>> import dslearn as ds
>>> x = ds.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
>>> y = softmax(x, dim=1); y
tensor([[0.09  , 0.2447, 0.6652]], grad_fn=<SoftmaxBackward>)
>>> y[0, 2].backward(); x.grad
tensor([[-0.0599, -0.1628,  0.2227]])
"""

from __future__ import annotations

from dslearn import dtypes
from dslearn.autograd.function import Function
from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.backends import kernels_for
from dslearn.ops.arguments import cast_if_needed, check_floating, normalize_dim, to_tensor
from dslearn.tensor import Tensor


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        return kernels_for(x, "softmax").softmax(x, dim)

    @staticmethod
    def backward(ctx, grad):
        y, dim = ctx.output, ctx.attrs["dim"]
        if is_grad_enabled():  # create_graph=True: Tensor ops, so that this gradient has a gradient
            return y * (grad - (grad * y).sum(dim, keepdim=True))
        return Tensor._make(kernels_for(y._data, "softmax").softmax_backward(y._data, grad._data, dim))


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        return kernels_for(x, "softmax").log_softmax(x, dim)

    @staticmethod
    def backward(ctx, grad):
        y, dim = ctx.output, ctx.attrs["dim"]
        if is_grad_enabled():
            return grad - y.exp() * grad.sum(dim, keepdim=True)
        return Tensor._make(kernels_for(y._data, "softmax").log_softmax_backward(y._data, grad._data, dim))


def _prepare(x, dim, dtype, name: str) -> tuple[Tensor, int]:
    x = to_tensor(x, name)
    if dtype is not None:
        x = cast_if_needed(x, dtypes.get_dtype(dtype))
    check_floating(name, x)
    return x, normalize_dim(dim, x.ndim, name)


def softmax(input, dim: int, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``: each slice becomes a probability distribution.

    Numerically stable (the largest value is subtracted first). ``dtype`` casts the input first.

    >>> import dslearn as ds
    >>> softmax(ds.tensor([1000.0, 1000.0]), dim=0)
    tensor([0.5, 0.5])
    """
    x, dim = _prepare(input, dim, dtype, "softmax")
    return Softmax.apply(x, dim=dim)


def log_softmax(input, dim: int, dtype=None) -> Tensor:
    """``x - logsumexp(x)`` along ``dim``: log-probabilities, accurate where softmax underflows.

    >>> import dslearn as ds
    >>> log_softmax(ds.tensor([0.0, -200.0]), dim=0)
    tensor([   0., -200.])
    """
    x, dim = _prepare(input, dim, dtype, "log_softmax")
    return LogSoftmax.apply(x, dim=dim)
