"""Which ops the tracer supports, and what the compiler may assume about each.

The tracer records ``Function`` calls. It only accepts the ops listed here, because compiling
an op means trusting three facts about it that this table states explicitly:

* its forward depends on its *tensor* inputs and on static attributes only (an op whose
  attributes hold arrays computed from the data, such as indices picked by the data, would
  be frozen at trace time: a silently wrong result, so such calls are refused);
* its category, which tells the passes what they may do with it: ``elementwise`` (each output
  element from the same position of its broadcast inputs; fusible), ``reduction`` (sum, mean,
  max, min over some dims; fusible), ``view`` (reshape, permute, expand: no arithmetic),
  ``matmul``, or ``kernel`` (any other op, run through its own forward);
* how its backward is compiled: ``traced`` when the backward rule is written purely in
  Tensor ops (the tracer then records those ops and the passes optimise them like any
  other), or ``opaque`` when it calls a kernel on values saved by forward (layer norm,
  softmax, cross-entropy, max pooling): the compiled plan then keeps the forward's context
  and calls the op's backward as one step.

May import: numpy, dslearn.tensor, dslearn.ops.

>>> from dslearn.ops.elementwise import Relu
>>> info(Relu).category, info(Relu).backward
('elementwise', 'traced')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dslearn.ops import elementwise, reduction, shape
from dslearn.ops.conv import AvgPool2d, AvgPool2dBackward, Conv2d, Conv2dInputGrad, Conv2dWeightGrad, MaxPool2d
from dslearn.ops.embedding import Embedding, EmbeddingGradient
from dslearn.ops.indexing import GetItem, IndexAddInto, MaskedFill
from dslearn.ops.linalg import Linear, Matmul
from dslearn.ops.loss import CrossEntropy, _check_class_target
from dslearn.ops.normalization import GroupNorm, LayerNorm
from dslearn.ops.softmax import LogSoftmax, Softmax
from dslearn.ops.transfer import ToDevice
from dslearn.tensor import Tensor


@dataclass(frozen=True)
class OpInfo:
    """What the compiler knows about one Function class."""

    fn: type
    category: str  # elementwise, reduction, view, matmul, kernel
    backward: str | None  # traced, opaque, or None (not differentiable)
    accepts: Callable[[dict], str | None] | None = None  # returns why a call is refused, or None
    check: Callable | None = None  # check(*input_arrays, **attrs): the argument checks eager mode makes on values


def _basic_key(attrs: dict) -> str | None:
    """Indexing keys must be basic (ints, slices, None, Ellipsis): array keys come from the data."""
    key = attrs["key"]
    parts = key if isinstance(key, tuple) else (key,)
    if any(isinstance(p, np.ndarray) for p in parts):
        return "indexing with a tensor of indices or a mask picks elements by their values"
    return None


def _no_class_weights(attrs: dict) -> str | None:
    if attrs["weight"] is not None:
        return "class weights would be frozen at trace time"
    return None


_E = elementwise
_ELEMENTWISE = [_E.Add, _E.Sub, _E.Mul, _E.Div, _E.Pow, _E.PowScalar, _E.ScalarPow, _E.Neg, _E.Abs, _E.Exp, _E.Log,
                _E.Sqrt, _E.Sin, _E.Cos, _E.Tanh, _E.Sigmoid, _E.Relu, _E.LeakyRelu, _E.Gelu, _E.GeluGrad,
                _E.Softplus, _E.Erf, _E.Clamp, _E.Maximum, _E.Minimum, _E.Where, _E.Cast, _E.Remainder]
_ELEMENTWISE_NO_GRAD = [_E.Sign, _E.Eq, _E.Ne, _E.Lt, _E.Le, _E.Gt, _E.Ge, _E.LogicalAnd, _E.LogicalOr,
                        _E.LogicalXor, _E.LogicalNot, _E.IsNan, _E.IsFinite, _E.FloorDivide, _E.Floor, _E.Ceil,
                        _E.Round]
_R = reduction
_KERNELS_TRACED = [_R.Var, _R.Std, _R.Logsumexp, _R.Norm2, _R.NormP, shape.Cat, shape.Stack, shape.ConstantPad,
                   shape.Repeat, shape.Clone, shape.Contiguous, MaskedFill, Embedding, EmbeddingGradient, Conv2d,
                   Conv2dInputGrad, Conv2dWeightGrad, AvgPool2d, AvgPool2dBackward]
_KERNELS_OPAQUE = [LayerNorm, GroupNorm, Softmax, LogSoftmax, MaxPool2d]

_TABLE: dict[type, OpInfo] = {}
for _fn in _ELEMENTWISE:
    _TABLE[_fn] = OpInfo(_fn, "elementwise", "traced")
for _fn in _ELEMENTWISE_NO_GRAD:
    _TABLE[_fn] = OpInfo(_fn, "elementwise", None)
for _fn in (_R.Sum, _R.Mean, _R.Amax, _R.Amin):
    _TABLE[_fn] = OpInfo(_fn, "reduction", "traced")
for _fn in (_R.Argmax, _R.Argmin, _R.All, _R.Any):
    _TABLE[_fn] = OpInfo(_fn, "kernel", None)
for _fn in (shape.Reshape, shape.Permute, shape.Expand):
    _TABLE[_fn] = OpInfo(_fn, "view", "traced")
_TABLE[GetItem] = OpInfo(GetItem, "view", "traced", _basic_key)
_TABLE[IndexAddInto] = OpInfo(IndexAddInto, "kernel", "traced", _basic_key)
_TABLE[ToDevice] = OpInfo(ToDevice, "kernel", "traced")  # moving a constant to the GPU, or a result back
for _fn in (Matmul, Linear):
    _TABLE[_fn] = OpInfo(_fn, "matmul", "traced")
for _fn in _KERNELS_TRACED:
    _TABLE[_fn] = OpInfo(_fn, "kernel", "traced")
for _fn in _KERNELS_OPAQUE:
    _TABLE[_fn] = OpInfo(_fn, "kernel", "opaque")
def _check_targets(logits, target, **attrs) -> None:
    """Class indices out of range raise the same IndexError as in eager mode (a kernel would read past the row)."""
    _check_class_target(Tensor._make(logits), Tensor._make(target), attrs["ignore_index"], "cross_entropy")


_TABLE[CrossEntropy] = OpInfo(CrossEntropy, "kernel", "opaque", _no_class_weights, _check_targets)


def info(fn: type) -> OpInfo | None:
    """The table entry of a Function class, or None when the tracer does not support it.

    Ops made with ``ds.custom_op`` are supported as kernels: the plan calls their forward kernel,
    and their backward rule, written in Tensor ops like every built-in one, is traced.
    """
    entry = _TABLE.get(fn)
    if entry is None and getattr(fn, "custom_op", None) is not None:
        entry = OpInfo(fn, "kernel", "traced" if fn.differentiable else None)
    return entry


def supported_ops() -> list[str]:
    """The names of every op the tracer supports, sorted.

    >>> "linear" in supported_ops() and "layer_norm" in supported_ops()
    True
    """
    return sorted(fn.name for fn in _TABLE)


def refusal(fn: type, attrs: dict) -> str | None:
    """Why a call of ``fn`` with ``attrs`` cannot be compiled, or None if it can."""
    entry = info(fn)
    if entry is None:
        return f"the op '{fn.name}' is not supported by the jit tracer"
    if entry.accepts is not None:
        reason = entry.accepts(attrs)
        if reason:
            return f"{fn.name}: {reason}"
    return None


def is_category(node_fn, category: str) -> bool:
    """True when a node's Function class belongs to ``category``."""
    entry = info(node_fn)
    return entry is not None and entry.category == category


def reduction_ops() -> tuple[type, ...]:
    return (_R.Sum, _R.Mean, _R.Amax, _R.Amin)
