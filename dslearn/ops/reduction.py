"""Reductions: sum, mean, var/std, max/min, argmax/argmin, logsumexp, norm, all/any.

``dim`` may be None (reduce everything), an int or a tuple of ints; ``keepdim`` keeps the
reduced dimensions with size 1. Backward rules expand the gradient back over the reduced
dimensions.

May import: numpy, dslearn.tensor, dslearn.autograd.function, dslearn.ops.arguments,
dslearn.ops.elementwise, dslearn.ops.shape.

>>> import dslearn as ds
>>> x = ds.tensor([[1.0, 5.0], [3.0, 2.0]])
>>> x.sum(0), x.mean(1, keepdim=True).shape, x.max(dim=1).indices
(tensor([4., 7.]), (2, 1), tensor([1, 0]))
"""

from __future__ import annotations

import builtins
from collections import namedtuple

import numpy as np

from dslearn import dtypes
from dslearn.autograd.function import Function
from dslearn.ops.arguments import describe, normalize_dim, normalize_dims, to_tensor
from dslearn.ops.elementwise import where
from dslearn.tensor import Tensor

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


def _kept_shape(shape: tuple[int, ...], dims: tuple[int, ...] | None) -> tuple[int, ...]:
    """``shape`` with the reduced dims set to 1 (what keepdim=True produces)."""
    if dims is None:
        return (1,) * len(shape)
    return tuple(1 if i in dims else s for i, s in enumerate(shape))


def _expand_back(grad: Tensor, ctx) -> Tensor:
    """The gradient of a reduction, reshaped to keepdim form and broadcast to the input shape."""
    return grad.reshape(_kept_shape(ctx.in_shape, ctx.attrs["dims"])).expand(ctx.in_shape)


def _count(shape: tuple[int, ...], dims: tuple[int, ...] | None) -> int:
    """How many elements each output of a reduction over ``dims`` summarises."""
    return int(np.prod(shape if dims is None else [shape[d] for d in dims]))


def _accumulator(x: np.ndarray):
    """Sum half precision in float32, as PyTorch does, to keep the result accurate."""
    return np.float32 if x.dtype in _HALF_DTYPES else None


_HALF_DTYPES = (dtypes.float16.np, dtypes.bfloat16.np)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape = x.shape
        if x.dtype.kind in "biu":
            return x.sum(axis=dims, keepdims=keepdim, dtype=np.int64)
        return x.sum(axis=dims, keepdims=keepdim, dtype=_accumulator(x)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape = x.shape
        ctx.count = _count(x.shape, dims)
        total = x.sum(axis=dims, keepdims=keepdim, dtype=_accumulator(x))
        return (total / ctx.count if ctx.count else total * np.nan).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return _expand_back(grad, ctx) / builtins.max(ctx.count, 1)


class Var(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, correction):
        ctx.in_shape = x.shape
        ctx.count = _count(x.shape, dims)
        with np.errstate(divide="ignore", invalid="ignore"):  # too few elements: nan, silently, as PyTorch
            out = np.var(x, axis=dims, keepdims=keepdim, ddof=correction, dtype=_accumulator(x))
        return out.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        return _variance_backward(ctx, grad)


class Std(Function):
    """Standard deviation; where it is 0 the gradient is 0 (as PyTorch), not NaN."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, correction):
        return np.sqrt(Var.forward(ctx, x, dims, keepdim, correction))

    @staticmethod
    def backward(ctx, grad):
        std = ctx.output
        return _variance_backward(ctx, where(std == 0, 0.0, grad / (2 * where(std == 0, 1.0, std))))


def _variance_backward(ctx, grad_var: Tensor) -> Tensor:
    """d var / dx = 2 (x - mean) / (n - correction), times the incoming gradient of the variance."""
    (x,) = ctx.inputs
    centred = x - mean(x, ctx.attrs["dims"], keepdim=True)
    return _expand_back(grad_var, ctx) * centred * (2.0 / builtins.max(ctx.count - ctx.attrs["correction"], 0))


class Amax(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape = x.shape
        return np.amax(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        return _extreme_backward(ctx, grad)


class Amin(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape = x.shape
        return np.amin(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        return _extreme_backward(ctx, grad)


def _extreme_backward(ctx, grad: Tensor) -> Tensor:
    """Gradient of max/min: shared evenly among the elements that attain it (as PyTorch)."""
    (x,) = ctx.inputs
    dims = ctx.attrs["dims"]
    kept = _kept_shape(ctx.in_shape, dims)
    hit = (x == ctx.output.reshape(kept)).to(x.dtype)
    return hit * (_expand_back(grad, ctx) / hit.sum(dims, keepdim=True).expand(ctx.in_shape))


class Argmax(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        return np.argmax(x, axis=dim, keepdims=keepdim).astype(np.int64)


class Argmin(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x, dim, keepdim):
        return np.argmin(x, axis=dim, keepdims=keepdim).astype(np.int64)


class Logsumexp(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape = x.shape
        peak = np.amax(x, axis=dims, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0)
        out = np.log(np.sum(np.exp(x - peak), axis=dims, keepdims=True)) + peak
        return out if keepdim else out.reshape([s for i, s in enumerate(x.shape) if i not in dims])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.inputs
        kept = _kept_shape(ctx.in_shape, ctx.attrs["dims"])
        return _expand_back(grad, ctx) * (x - ctx.output.reshape(kept)).exp()


class Norm2(Function):
    """The Euclidean norm; its gradient at 0 is 0 (as PyTorch), not NaN."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.in_shape = x.shape
        squares = np.square(x, dtype=_accumulator(x))
        return np.sqrt(np.sum(squares, axis=dims, keepdims=keepdim)).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.inputs
        norm = ctx.output.reshape(_kept_shape(ctx.in_shape, ctx.attrs["dims"]))
        safe = where(norm == 0, 1.0, norm)
        return _expand_back(grad, ctx) * x / safe


class NormP(Function):
    """The vector p-norm for any p > 0; its gradient at 0 is 0 (as PyTorch).

    Computed as ``m * sum(|x / m|^p)^(1/p)`` with ``m = max |x|``, so that ``|x|^p`` neither
    underflows for tiny inputs nor overflows for large ones.
    """

    @staticmethod
    def forward(ctx, x, dims, keepdim, p):
        ctx.in_shape = x.shape
        magnitude = np.abs(x.astype(_accumulator(x) or x.dtype))
        largest = np.max(magnitude, axis=dims, keepdims=True, initial=0.0)
        safe_largest = np.where(largest == 0, 1.0, largest)
        scaled = np.sum((magnitude / safe_largest) ** p, axis=dims, keepdims=True) ** (1.0 / p)
        result = largest * scaled
        if not keepdim:
            result = result.reshape(()) if dims is None else np.squeeze(result, axis=dims)
        return result.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.inputs
        p = ctx.attrs["p"]
        norm = ctx.output.reshape(_kept_shape(ctx.in_shape, ctx.attrs["dims"]))
        ratio = x.abs() / where(norm == 0, 1.0, norm)  # in [0, 1]: no underflow from |x|^(p-1) / norm^(p-1)
        return where(norm == 0, 0.0, _expand_back(grad, ctx)) * x.sign() * ratio ** (p - 1)


class All(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        return np.all(x, axis=dims, keepdims=keepdim)


class Any(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        return np.any(x, axis=dims, keepdims=keepdim)


# -- public functions --------------------------------------------------------------------------


def _reduce(fn, x, dim, keepdim, name: str, floating: bool = False, **attrs) -> Tensor:
    x = to_tensor(x, name)
    if floating and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor, got {describe(x)}; convert it with .float()")
    return fn.apply(x, dims=normalize_dims(dim, x.ndim, name), keepdim=bool(keepdim), **attrs)


def sum(x, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """Sum over ``dim`` (all dimensions when None). Integer inputs sum to int64.

    >>> import dslearn as ds
    >>> ds.ones(2, 3).sum(), ds.ones(2, 3).sum((0, 1), keepdim=True).shape
    (tensor(6.), (1, 1))
    """
    if dtype is not None:
        x = to_tensor(x, "sum").to(dtype)
    return _reduce(Sum, x, dim, keepdim, "sum")


def mean(x, dim=None, keepdim: bool = False) -> Tensor:
    """Arithmetic mean over ``dim``."""
    return _reduce(Mean, x, dim, keepdim, "mean", floating=True)


def _correction(unbiased, correction) -> int:
    if unbiased is not None and correction is not None:
        raise ValueError("var/std: pass either unbiased or correction, not both")
    if correction is not None:
        return int(correction)
    return 1 if unbiased is None or unbiased else 0


def var(x, dim=None, keepdim: bool = False, *, unbiased=None, correction=None) -> Tensor:
    """Variance with Bessel's correction by default (``correction=1``), as PyTorch."""
    return _reduce(Var, x, dim, keepdim, "var", floating=True, correction=_correction(unbiased, correction))


def std(x, dim=None, keepdim: bool = False, *, unbiased=None, correction=None) -> Tensor:
    """Standard deviation, ``sqrt(var(...))``."""
    return _reduce(Std, x, dim, keepdim, "std", floating=True, correction=_correction(unbiased, correction))


def _check_not_empty(x: Tensor, dims, name: str) -> None:
    if x.numel() == 0:
        raise RuntimeError(f"{name}: cannot reduce an empty tensor ({describe(x)}) with no identity")


def amax(x, dim=None, keepdim: bool = False) -> Tensor:
    """Largest value over ``dim``; ties share the gradient."""
    x = to_tensor(x, "amax")
    _check_not_empty(x, dim, "amax")
    return _reduce(Amax, x, dim, keepdim, "amax")


def amin(x, dim=None, keepdim: bool = False) -> Tensor:
    """Smallest value over ``dim``; ties share the gradient."""
    x = to_tensor(x, "amin")
    _check_not_empty(x, dim, "amin")
    return _reduce(Amin, x, dim, keepdim, "amin")


def _extreme(x, dim, keepdim, name: str, whole, arg):
    x = to_tensor(x, name)
    if dim is None:
        return whole(x)
    indices = arg(x, dim, keepdim=True)
    values = x.gather(normalize_dim(dim, x.ndim, name), indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return ValuesIndices(values, indices)


def max(x, dim=None, keepdim: bool = False):
    """With no ``dim``, the largest value; with ``dim``, a ``(values, indices)`` pair.

    >>> import dslearn as ds
    >>> values, indices = ds.tensor([[1.0, 9.0], [7.0, 3.0]]).max(dim=0)
    >>> values, indices
    (tensor([7., 9.]), tensor([1, 0]))
    """
    return _extreme(x, dim, keepdim, "max", amax, argmax)


def min(x, dim=None, keepdim: bool = False):
    """With no ``dim``, the smallest value; with ``dim``, a ``(values, indices)`` pair."""
    return _extreme(x, dim, keepdim, "min", amin, argmin)


def _arg(fn, x, dim, keepdim, name):
    x = to_tensor(x, name)
    _check_not_empty(x, dim, name)
    if dim is None:
        out = fn.apply(x, dim=None, keepdim=False)
        return out.reshape((1,) * x.ndim) if keepdim else out
    return fn.apply(x, dim=normalize_dim(dim, x.ndim, name), keepdim=bool(keepdim))


def argmax(x, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the largest value (of the flattened tensor when ``dim`` is None)."""
    return _arg(Argmax, x, dim, keepdim, "argmax")


def argmin(x, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the smallest value (of the flattened tensor when ``dim`` is None)."""
    return _arg(Argmin, x, dim, keepdim, "argmin")


def logsumexp(x, dim, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``dim``, computed without overflow.

    >>> import dslearn as ds
    >>> ds.tensor([1000.0, 1000.0], dtype=ds.float64).logsumexp(0)
    tensor(1000.6931, dtype=dslearn.float64)
    """
    x = to_tensor(x, "logsumexp")
    if dim is None or dim == ():
        dim = tuple(range(x.ndim))
    return _reduce(Logsumexp, x, dim, keepdim, "logsumexp", floating=True)


def norm(x, p=2, dim=None, keepdim: bool = False) -> Tensor:
    """Vector p-norm over ``dim``: p = 2 ('fro'), 1, inf, -inf or any positive number.

    >>> import dslearn as ds
    >>> ds.tensor([3.0, 4.0]).norm(), ds.tensor([3.0, -4.0]).norm(1)
    (tensor(5.), tensor(7.))
    """
    x = to_tensor(x, "norm")
    if not x.is_floating_point():
        raise TypeError(f"norm: expected a floating point tensor, got {describe(x)}")
    if p in (2, "fro"):
        return _reduce(Norm2, x, dim, keepdim, "norm")
    if p == 1:
        return x.abs().sum(dim, keepdim)
    if p == float("inf"):
        return x.abs().amax(dim, keepdim)
    if p == float("-inf"):
        return x.abs().amin(dim, keepdim)
    if isinstance(p, (int, float)) and p > 0:
        return _reduce(NormP, x, dim, keepdim, "norm", p=float(p))
    raise ValueError(f"norm: unsupported p={p!r}; use 2, 'fro', 1, inf, -inf or a positive number")


def all(x, dim=None, keepdim: bool = False) -> Tensor:
    """True where every element over ``dim`` is true."""
    return _reduce(All, x, dim, keepdim, "all")


def any(x, dim=None, keepdim: bool = False) -> Tensor:
    """True where some element over ``dim`` is true."""
    return _reduce(Any, x, dim, keepdim, "any")
