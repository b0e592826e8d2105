"""Elementwise ops: arithmetic with broadcasting, math functions, activations, comparisons.

Each op is a ``Function`` whose ``forward`` works on arrays and whose ``backward`` is the
chain rule written with Tensor ops. Broadcasting is undone in backward by ``unbroadcast``,
which sums the gradient over the dimensions that forward stretched.

The fused activation kernels (sigmoid, GELU, softplus, erf) come from ``kernels_for(x, "activations")``:
the CPU module or its CUDA twin, whichever matches the device of ``x``.

May import: numpy, dslearn.tensor, dslearn.autograd.function, dslearn.ops.arguments,
dslearn.kernels, dslearn.backends.

>>> import dslearn as ds
>>> a = ds.tensor([[1.0], [2.0]], requires_grad=True)      # shape (2, 1)
>>> (a * ds.tensor([1.0, 10.0, 100.0])).sum().backward()   # broadcast to (2, 3)
>>> a.grad
tensor([[111.],
        [111.]])
"""

from __future__ import annotations

import builtins
import math

import numpy as np

from dslearn import dtypes
from dslearn.autograd.function import Function
from dslearn.backends import kernels_for
from dslearn.ops.arguments import binary_operands, cast_if_needed, check_floating, describe, to_tensor
from dslearn.tensor import Tensor


def unbroadcast(grad: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``grad`` down to ``shape``: the backward of NumPy broadcasting.

    >>> import dslearn as ds
    >>> unbroadcast(ds.ones(4, 2, 3), (2, 1)).shape
    (2, 1)
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, size in enumerate(shape) if size == 1 and grad.shape[i + lead] != 1
    )
    from dslearn.ops.reduction import sum as reduce_sum

    return reduce_sum(grad, axes).reshape(shape)


# Division by zero, log(0) and sqrt(-1) give inf/nan silently, as in PyTorch.
def _quiet():
    return np.errstate(divide="ignore", invalid="ignore")


# -- arithmetic -------------------------------------------------------------------------------


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.shapes[0]), unbroadcast(grad, ctx.shapes[1])


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.shapes[0]), unbroadcast(-grad, ctx.shapes[1])


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        return a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad * b, a.shape) if need_a else None,
                unbroadcast(grad * a, b.shape) if need_b else None)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        with _quiet():
            return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        return (unbroadcast(grad / b, a.shape) if need_a else None,
                unbroadcast(-grad * a / (b * b), b.shape) if need_b else None)


class Pow(Function):
    """``a ** b`` for two tensors."""

    @staticmethod
    def forward(ctx, a, b):
        with _quiet():
            return np.power(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        grad_a = unbroadcast(grad * b * a ** (b - 1), a.shape) if need_a else None
        grad_b = None
        if need_b:  # d/db a^b = a^b log a, taken as 0 where a == 0 and b >= 0 (as PyTorch)
            log_a = where((a == 0) & (b >= 0), 0.0, log(a))
            grad_b = unbroadcast(grad * ctx.output * log_a, b.shape)
        return grad_a, grad_b


class PowScalar(Function):
    """``x ** c`` for a Python number ``c``."""

    @staticmethod
    def forward(ctx, x, exponent):
        with _quiet():
            return np.power(x, x.dtype.type(exponent)) if x.dtype.kind == "f" else np.power(x, exponent)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.inputs
        c = ctx.attrs["exponent"]
        if c == 0:
            return grad * 0
        return grad * c * (x ** (c - 1) if c != 2 else x)


class ScalarPow(Function):
    """``c ** x`` for a Python number ``c``."""

    @staticmethod
    def forward(ctx, x, base):
        return np.power(x.dtype.type(base), x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.output * math.log(ctx.attrs["base"])


class Neg(Function):
    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Abs(Function):
    @staticmethod
    def forward(ctx, x):
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * sign(ctx.inputs[0])


class Sign(Function):
    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return np.sign(x)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        return np.exp(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.output


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        with _quiet():
            return np.log(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / ctx.inputs[0]


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        with _quiet():
            return np.sqrt(x)

    @staticmethod
    def backward(ctx, grad):
        return grad / (2 * ctx.output)


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * cos(ctx.inputs[0])


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad * sin(ctx.inputs[0])


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        return np.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        y = ctx.output
        return grad * (1 - y * y)


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        return kernels_for(x, "activations").sigmoid(x)

    @staticmethod
    def backward(ctx, grad):
        y = ctx.output
        return grad * y * (1 - y)


class Relu(Function):
    @staticmethod
    def forward(ctx, x):
        return np.maximum(x, 0)

    @staticmethod
    def backward(ctx, grad):
        return grad * (ctx.inputs[0] > 0)


class LeakyRelu(Function):
    @staticmethod
    def forward(ctx, x, negative_slope):
        return np.where(x > 0, x, x * x.dtype.type(negative_slope))

    @staticmethod
    def backward(ctx, grad):
        return where(ctx.inputs[0] > 0, grad, grad * ctx.attrs["negative_slope"])


class Gelu(Function):
    """GELU, exact (``approximate='none'``) or with the tanh approximation."""

    @staticmethod
    def forward(ctx, x, approximate):
        kernels = kernels_for(x, "activations")
        return kernels.gelu(x) if approximate == "none" else kernels.gelu_tanh(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * GeluGrad.apply(ctx.inputs[0], approximate=ctx.attrs["approximate"])


class GeluGrad(Function):
    """GELU'(x), its own op so that GELU's backward is one fused kernel."""

    @staticmethod
    def forward(ctx, x, approximate):
        kernels = kernels_for(x, "activations")
        return kernels.gelu_grad(x) if approximate == "none" else kernels.gelu_tanh_grad(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.inputs
        if ctx.attrs["approximate"] == "none":  # GELU''(x) = phi(x) (2 - x^2)
            return grad * exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi)) * (2 - x * x)
        c, k = math.sqrt(2 / math.pi), 0.044715
        t = tanh(c * (x + k * x * x * x))
        du = c * (1 + 3 * k * x * x)
        return grad * (1 - t * t) * (du + 0.5 * x * (6 * c * k * x - 2 * t * du * du))


class Softplus(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        return kernels_for(x, "activations").softplus(x, float(beta), float(threshold))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.inputs
        beta, threshold = ctx.attrs["beta"], ctx.attrs["threshold"]
        z = x * beta
        return where(z > threshold, grad, grad * sigmoid(z))


class Erf(Function):
    @staticmethod
    def forward(ctx, x):
        return kernels_for(x, "activations").erf(x)

    @staticmethod
    def backward(ctx, grad):
        x = ctx.inputs[0]
        return grad * (2 / math.sqrt(math.pi)) * exp(-(x * x))


class Clamp(Function):
    @staticmethod
    def forward(ctx, x, min, max):
        return np.clip(x, min, max)

    @staticmethod
    def backward(ctx, grad):
        x = ctx.inputs[0]
        low, high = ctx.attrs["min"], ctx.attrs["max"]
        keep = None
        if low is not None:
            keep = x >= low
        if high is not None:
            keep = (x <= high) if keep is None else keep & (x <= high)
        return grad if keep is None else grad * keep


class Maximum(Function):
    @staticmethod
    def forward(ctx, a, b):
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.inputs
        share_a = (a > b) + (a == b) * 0.5  # ties split the gradient, as PyTorch does
        return unbroadcast(grad * share_a, a.shape), unbroadcast(grad * (1 - share_a), b.shape)


class Minimum(Function):
    @staticmethod
    def forward(ctx, a, b):
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.inputs
        share_a = (a < b) + (a == b) * 0.5
        return unbroadcast(grad * share_a, a.shape), unbroadcast(grad * (1 - share_a), b.shape)


class Where(Function):
    """``where(condition, a, b)``; the condition gets no gradient."""

    @staticmethod
    def forward(ctx, condition, a, b):
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, grad):
        condition, a, b = ctx.inputs
        zero = Tensor._make(np.zeros((), dtype=grad._data.dtype))
        need_a, need_b = ctx.needs_input_grad[1:]
        return (None,
                unbroadcast(where(condition, grad, zero), a.shape) if need_a else None,
                unbroadcast(where(condition, zero, grad), b.shape) if need_b else None)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        return x.astype(dtype.np)

    @staticmethod
    def backward(ctx, grad):
        return cast(grad, ctx.inputs[0].dtype)


class Remainder(Function):
    @staticmethod
    def forward(ctx, a, b):
        return np.remainder(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.inputs
        return unbroadcast(grad, a.shape), unbroadcast(-grad * floor_divide(a, b), b.shape)


def _not_differentiable(name: str, compute):
    """A Function class for an op whose output carries no gradient (comparisons, rounding)."""

    def forward(ctx, *arrays):
        return compute(*arrays)

    return type(name, (Function,), {"differentiable": False, "forward": staticmethod(forward)})


Eq = _not_differentiable("Eq", np.equal)
Ne = _not_differentiable("Ne", np.not_equal)
Lt = _not_differentiable("Lt", np.less)
Le = _not_differentiable("Le", np.less_equal)
Gt = _not_differentiable("Gt", np.greater)
Ge = _not_differentiable("Ge", np.greater_equal)
LogicalAnd = _not_differentiable("LogicalAnd", np.logical_and)
LogicalOr = _not_differentiable("LogicalOr", np.logical_or)
LogicalXor = _not_differentiable("LogicalXor", np.logical_xor)
LogicalNot = _not_differentiable("LogicalNot", np.logical_not)
IsNan = _not_differentiable("IsNan", np.isnan)
IsFinite = _not_differentiable("IsFinite", np.isfinite)
FloorDivide = _not_differentiable("FloorDivide", np.floor_divide)
Floor = _not_differentiable("Floor", np.floor)
Ceil = _not_differentiable("Ceil", np.ceil)
Round = _not_differentiable("Round", np.round)


# -- public functions --------------------------------------------------------------------------


def _binary(fn, a, b, name: str) -> Tensor:
    a, b = binary_operands(a, b, name)
    return fn.apply(a, b)


def add(a, b) -> Tensor:
    """``a + b`` with broadcasting."""
    return _binary(Add, a, b, "add")


def sub(a, b) -> Tensor:
    """``a - b`` with broadcasting."""
    return _binary(Sub, a, b, "sub")


def mul(a, b) -> Tensor:
    """``a * b`` with broadcasting."""
    return _binary(Mul, a, b, "mul")


def div(a, b) -> Tensor:
    """``a / b`` (true division: integer inputs give a float result).

    >>> import dslearn as ds
    >>> ds.tensor([1, 2]) / 2
    tensor([0.5, 1. ])
    """
    a, b = binary_operands(a, b, "div")
    if not a.is_floating_point():
        a, b = cast_if_needed(a, dtypes.get_default_dtype()), cast_if_needed(b, dtypes.get_default_dtype())
    return Div.apply(a, b)


def floor_divide(a, b) -> Tensor:
    """``a // b`` (not differentiable)."""
    return _binary(FloorDivide, a, b, "floor_divide")


def remainder(a, b) -> Tensor:
    """``a % b`` with the sign of ``b`` (Python's convention)."""
    return _binary(Remainder, a, b, "remainder")


def pow(base, exponent) -> Tensor:
    """``base ** exponent``; either may be a Python number.

    >>> import dslearn as ds
    >>> ds.tensor([1.0, 2.0]) ** 2, 2 ** ds.tensor([1.0, 2.0])
    (tensor([1., 4.]), tensor([2., 4.]))
    """
    if isinstance(base, Tensor) and isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        if not base.is_floating_point() and isinstance(exponent, float):
            base = cast_if_needed(base, dtypes.get_default_dtype())
        return PowScalar.apply(base, exponent=exponent)
    if isinstance(exponent, Tensor) and isinstance(base, (int, float)) and not isinstance(base, bool):
        if base <= 0:
            raise ValueError(f"pow: a scalar base must be positive to differentiate c ** x, got {base}")
        if not exponent.is_floating_point():
            exponent = cast_if_needed(exponent, dtypes.get_default_dtype())
        return ScalarPow.apply(exponent, base=base)
    return _binary(Pow, base, exponent, "pow")


def _unary(fn, x, name: str, floating: bool = True, **attrs) -> Tensor:
    x = to_tensor(x, name)
    if floating and not x.is_floating_point():
        x = cast_if_needed(x, dtypes.get_default_dtype())
    return fn.apply(x, **attrs)


def neg(x) -> Tensor:
    """``-x``."""
    return _unary(Neg, x, "neg", floating=False)


def abs(x) -> Tensor:
    """``|x|`` (gradient 0 at 0, as PyTorch)."""
    return _unary(Abs, x, "abs", floating=False)


def sign(x) -> Tensor:
    """-1, 0 or 1 elementwise (no gradient)."""
    return _unary(Sign, x, "sign", floating=False)


def exp(x) -> Tensor:
    """``e ** x``."""
    return _unary(Exp, x, "exp")


def log(x) -> Tensor:
    """Natural logarithm."""
    return _unary(Log, x, "log")


def sqrt(x) -> Tensor:
    """Square root."""
    return _unary(Sqrt, x, "sqrt")


def rsqrt(x) -> Tensor:
    """``1 / sqrt(x)``."""
    return div(1.0, sqrt(x))


def sin(x) -> Tensor:
    """Sine."""
    return _unary(Sin, x, "sin")


def cos(x) -> Tensor:
    """Cosine."""
    return _unary(Cos, x, "cos")


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return _unary(Tanh, x, "tanh")


def sigmoid(x) -> Tensor:
    """``1 / (1 + exp(-x))``, stable for large ``|x|``."""
    return _unary(Sigmoid, x, "sigmoid")


def relu(x) -> Tensor:
    """``max(x, 0)``."""
    return _unary(Relu, x, "relu", floating=False)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return _unary(LeakyRelu, x, "leaky_relu", negative_slope=float(negative_slope))


def gelu(x, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit; ``approximate='tanh'`` for the tanh formula.

    >>> import dslearn as ds
    >>> ds.gelu(ds.tensor([-1.0, 0.0, 1.0]))
    tensor([-0.1587,  0.    ,  0.8413])
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _unary(Gelu, x, "gelu", approximate=approximate)


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold`` (as PyTorch)."""
    return _unary(Softplus, x, "softplus", beta=float(beta), threshold=float(threshold))


def erf(x) -> Tensor:
    """The Gauss error function."""
    return _unary(Erf, x, "erf")


def clamp(x, min=None, max=None) -> Tensor:
    """Limit values to ``[min, max]``; either bound may be a number, a tensor or None.

    >>> import dslearn as ds
    >>> ds.tensor([-2.0, 0.5, 3.0]).clamp(0, 1)
    tensor([0. , 0.5, 1. ])
    """
    x = to_tensor(x, "clamp")
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        out = x if min is None else maximum(x, min)
        return out if max is None else minimum(out, max)
    if min is not None and max is not None and min > max:
        raise ValueError(f"clamp: min ({min}) is greater than max ({max})")
    if not x.is_floating_point() and builtins.any(isinstance(v, float) for v in (min, max)):
        x = cast_if_needed(x, dtypes.get_default_dtype())
    return Clamp.apply(x, min=min, max=max)


def maximum(a, b) -> Tensor:
    """Elementwise maximum (ties share the gradient)."""
    return _binary(Maximum, a, b, "maximum")


def minimum(a, b) -> Tensor:
    """Elementwise minimum (ties share the gradient)."""
    return _binary(Minimum, a, b, "minimum")


def where(condition, a, b) -> Tensor:
    """``a`` where ``condition`` is true, else ``b``, with broadcasting.

    >>> import dslearn as ds
    >>> ds.where(ds.tensor([True, False]), ds.tensor([1.0, 2.0]), 0.0)
    tensor([1., 0.])
    """
    condition = to_tensor(condition, "where")
    if condition._data.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {describe(condition)}")
    a, b = binary_operands(a, b, "where")
    try:
        np.broadcast_shapes(condition.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes {condition.shape}, {a.shape} and {b.shape} "
                         "cannot be broadcast together") from None
    return Where.apply(condition, a, b)


def cast(x: Tensor, dtype) -> Tensor:
    """``x`` converted to ``dtype`` (differentiable between float dtypes)."""
    dtype = dtypes.get_dtype(dtype)
    if x._data.dtype == dtype.np:
        return x
    if x.requires_grad and not dtype.is_floating_point:
        x = x.detach()
    return Cast.apply(x, dtype=dtype)


def _comparison(fn, name):
    def compare(a, b) -> Tensor:
        return _binary(fn, a, b, name)

    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``{name}`` comparison, a bool tensor (no gradient)."
    return compare


eq, ne, lt, le, gt, ge = (_comparison(fn, n) for fn, n in
                          ((Eq, "eq"), (Ne, "ne"), (Lt, "lt"), (Le, "le"), (Gt, "gt"), (Ge, "ge")))


def _logical(fn, name):
    def logical(a, b) -> Tensor:
        a, b = to_tensor(a, name), to_tensor(b, name)
        return _binary(fn, a.to(dtypes.bool_), b.to(dtypes.bool_), name)

    logical.__name__, logical.__doc__ = name, f"Elementwise {name.replace('_', ' ')} of truth values."
    return logical


logical_and, logical_or, logical_xor = (_logical(fn, n) for fn, n in
                                        ((LogicalAnd, "logical_and"), (LogicalOr, "logical_or"),
                                         (LogicalXor, "logical_xor")))


def logical_not(x) -> Tensor:
    """Elementwise not of truth values."""
    return _unary(LogicalNot, x, "logical_not", floating=False)


def isnan(x) -> Tensor:
    """True where ``x`` is NaN."""
    return _unary(IsNan, x, "isnan", floating=False)


def isfinite(x) -> Tensor:
    """True where ``x`` is neither infinite nor NaN."""
    return _unary(IsFinite, x, "isfinite", floating=False)


def floor(x) -> Tensor:
    """Round down (no gradient)."""
    return _unary(Floor, x, "floor", floating=False)


def ceil(x) -> Tensor:
    """Round up (no gradient)."""
    return _unary(Ceil, x, "ceil", floating=False)


def round(x) -> Tensor:
    """Round half to even (no gradient)."""
    return _unary(Round, x, "round", floating=False)


__all__ = ["unbroadcast", "add", "sub", "mul", "div", "floor_divide", "remainder", "pow", "neg", "abs", "sign",
           "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "relu", "leaky_relu", "gelu", "softplus",
           "erf", "clamp", "maximum", "minimum", "where", "cast", "eq", "ne", "lt", "le", "gt", "ge", "logical_and",
           "logical_or", "logical_xor", "logical_not", "isnan", "isfinite", "floor", "ceil", "round", "check_floating"]
