"""Loss functions: cross-entropy, negative log-likelihood, regression and binary losses, KL divergence.

Each takes ``reduction``: ``'none'`` (one loss per element or sample), ``'mean'`` or ``'sum'``.
``cross_entropy`` with class indices is the hot path of classification training and runs as
one fused kernel each way (log-softmax, pick, label smoothing, class weights); the others are
short compositions of Tensor ops, so their backward (and double backward) comes for free.

Double backward: ``cross_entropy``'s backward runs its kernel, or, when ``create_graph=True``,
the same formula (softmax minus the target distribution) in Tensor ops; every other loss here
is built from differentiable ops.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.ops.arguments,
dslearn.ops.elementwise, dslearn.ops.softmax, dslearn.kernels, dslearn.backends.

>>> import dslearn as ds
>>> logits = ds.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], requires_grad=True)
>>> loss = cross_entropy(logits, ds.tensor([0, 1])); loss
tensor(0.1672, grad_fn=<CrossEntropyBackward>)
>>> loss.backward(); logits.grad
tensor([[-0.1065,  0.0533,  0.0533],
        [ 0.0226, -0.0453,  0.0226]])
"""

from __future__ import annotations

import warnings

import numpy as np

from dslearn.autograd.function import Function
from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.backends import kernels_for, move
from dslearn.device import Device
from dslearn.ops.arguments import binary_operands, cast_if_needed, check_floating, describe, to_tensor
from dslearn.ops.elementwise import clamp, log, softplus, where
from dslearn.ops.softmax import log_softmax, softmax
from dslearn.tensor import Tensor

CPU = Device("cpu")

REDUCTIONS = ("none", "mean", "sum")


def _check_reduction(reduction: str, op: str, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    if reduction not in allowed:
        shown = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"{op}: reduction must be one of {shown}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    return loss.sum() if reduction == "sum" else loss


# -- cross-entropy and nll with class indices -----------------------------------------------------


class CrossEntropy(Function):
    """Cross-entropy of (N, C, ...) logits against class indices, reduction included."""

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, label_smoothing, reduction):
        kernels = kernels_for(logits, "softmax")
        ctx.rows = kernels.as_rows(logits, 1)  # (samples, classes), float32 or float64, contiguous
        # Targets and class weights are small: kept on the host, where the kernels of every device read them.
        ctx.target = move(target, CPU).reshape(-1).astype(np.int64, copy=False)
        weight = None if weight is None else move(weight, CPU)
        ctx.weight = _class_weights(weight, ctx.rows)
        loss, ctx.lse = kernels.cross_entropy_forward(ctx.rows, ctx.target, ctx.weight, ignore_index, label_smoothing)
        if reduction == "none":
            return loss.reshape(target.shape).astype(logits.dtype, copy=False)
        total = loss.sum()
        if reduction == "mean":
            ctx.denominator = _total_weight(ctx.target, weight, ctx.weight, ignore_index)
            total = _divide(total, ctx.denominator)
        return np.full_like(logits, total, shape=())  # a 0-d array in the dtype and on the device of ``logits``

    @staticmethod
    def backward(ctx, grad):
        logits = ctx.inputs[0]
        reduction, ignore_index = ctx.attrs["reduction"], ctx.attrs["ignore_index"]
        smoothing = ctx.attrs["label_smoothing"]
        if is_grad_enabled():  # create_graph=True: softmax minus the target distribution, as Tensor ops
            q = Tensor._make(_target_distribution(ctx.target, ctx.weight, ignore_index, smoothing)).to(logits.device)
            q = Tensor._make(kernels_for(logits._data, "softmax").from_rows(q._data, logits._data, 1))
            scale = grad.unsqueeze(1) if reduction == "none" else grad
            if reduction == "mean":
                scale = scale * _divide(1.0, ctx.denominator)
            return (softmax(logits, 1) * q.sum(1, keepdim=True) - q) * scale, None
        rows = ctx.rows
        if reduction == "none":
            scale = grad._data.reshape(-1).astype(rows.dtype, copy=False)
        else:
            value = _divide(float(grad._data), ctx.denominator) if reduction == "mean" else float(grad._data)
            scale = np.full(len(rows), value, dtype=rows.dtype)
        kernels = kernels_for(rows, "softmax")
        grad_rows = kernels.cross_entropy_backward(rows, ctx.lse, ctx.target, ctx.weight, ignore_index, smoothing,
                                                   scale)
        return Tensor._make(kernels.from_rows(grad_rows, logits._data, 1)), None


def _class_weights(weight: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """The per-class weights in the rows' dtype; all ones when none were given."""
    if weight is None:
        return np.ones(rows.shape[1], dtype=rows.dtype)
    return weight.astype(rows.dtype, copy=False)


def _total_weight(target: np.ndarray, given_weight, weight: np.ndarray, ignore_index: int) -> float:
    """What 'mean' divides by: the sum of weight[t] over the targets t that are not ignored."""
    kept = target != ignore_index
    if given_weight is None:
        return float(np.count_nonzero(kept))
    return float(weight[target[kept]].sum())


def _divide(total, denominator: float):
    """``total / denominator``, NaN when every target was ignored (as PyTorch)."""
    return total / denominator if denominator else float("nan")


def _target_distribution(target, weight, ignore_index: int, smoothing: float) -> np.ndarray:
    """q[i, c] = (1 - e) w[t_i] [c == t_i] + e/C w[c], zero rows where the target is ignored."""
    classes = len(weight)
    q = np.broadcast_to(smoothing / classes * weight, (len(target), classes)).copy()
    kept = np.flatnonzero(target != ignore_index)
    q[kept, target[kept]] += (1 - smoothing) * weight[target[kept]]
    q[target == ignore_index] = 0
    return q


def _check_class_target(input: Tensor, target: Tensor, ignore_index: int, op: str) -> None:
    """Class-index targets: integers, shaped like the input without its class dim, in range."""
    if target._data.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices (int64), got {describe(target)}; "
                        "float targets are class probabilities and need the input's shape")
    expected = input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()
    if target.shape != expected:
        raise ValueError(f"{op}: target of shape {target.shape} does not match input of shape {input.shape} "
                         f"(expected target shape {expected}: the input's shape without its class dim)")
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    values = target._data
    if values.size and (values.min() < 0 or values.max() >= classes):
        bad = values[(values != ignore_index) & ((values < 0) | (values >= classes))]
        if bad.size:
            raise IndexError(f"{op}: target class {int(bad.flat[0])} is out of range for {classes} classes "
                             f"(expected 0..{classes - 1}, or ignore_index={ignore_index})")


def _check_weight(weight, classes: int, op: str) -> Tensor | None:
    if weight is None:
        return None
    weight = to_tensor(weight, op)
    if weight.shape != (classes,):
        raise ValueError(f"{op}: weight must have one entry per class, shape ({classes},), got {describe(weight)}")
    return weight


def _with_batch_dim(input: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """A single sample, input (C,), becomes a batch of one: (1, C) with target (1,)."""
    return (input.unsqueeze(0), target.reshape(1)) if input.ndim == 1 else (input, target)


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits and targets: ``nll_loss(log_softmax(input, 1), target)``.

    ``input`` is (N, C), (N, C, d1, ...) or (C,). ``target`` holds class indices (integers,
    shaped like input without dim 1), or class probabilities (floats, shaped like input).
    With class weights, ``'mean'`` divides by the total weight of the non-ignored targets
    (as PyTorch). ``label_smoothing`` mixes the target with the uniform distribution.

    >>> import dslearn as ds
    >>> cross_entropy(ds.tensor([[0.0, 0.0]]), ds.tensor([1]))
    tensor(0.6931)
    >>> cross_entropy(ds.tensor([[0.0, 0.0]]), ds.tensor([[0.25, 0.75]]), label_smoothing=0.1)
    tensor(0.6931)
    """
    input, target = to_tensor(input, "cross_entropy"), to_tensor(target, "cross_entropy")
    check_floating("cross_entropy", input)
    _check_reduction(reduction, "cross_entropy")
    if input.ndim == 0:
        raise ValueError(f"cross_entropy: input must have a class dimension, got {describe(input)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    weight = _check_weight(weight, classes, "cross_entropy")
    if target.is_floating_point():
        return _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing)
    _check_class_target(input, target, ignore_index, "cross_entropy")
    batched_input, batched_target = _with_batch_dim(input, target)
    loss = CrossEntropy.apply(batched_input, batched_target, weight=None if weight is None else weight._data,
                              ignore_index=int(ignore_index), label_smoothing=float(label_smoothing),
                              reduction=reduction)
    return loss.reshape(()) if reduction == "none" and input.ndim == 1 else loss


def _cross_entropy_probabilities(input: Tensor, target: Tensor, weight, reduction: str, smoothing: float) -> Tensor:
    if target.shape != input.shape:
        raise ValueError(f"cross_entropy: float targets are class probabilities and must have the input's shape "
                         f"{input.shape}, got {describe(target)}")
    class_dim = 1 if input.ndim > 1 else 0
    target = cast_if_needed(target, input.dtype)
    if smoothing > 0:
        target = target * (1 - smoothing) + smoothing / input.shape[class_dim]
    if weight is not None:
        target = target * cast_if_needed(weight, input.dtype).reshape((-1,) + (1,) * (input.ndim - class_dim - 1))
    return _reduce(-(log_softmax(input, class_dim) * target).sum(class_dim), reduction)


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: ``-weight[t] * input[i, t]`` for log-probabilities ``input``.

    Shapes as in ``cross_entropy`` with class indices; ``'mean'`` divides by the total weight
    of the non-ignored targets.

    >>> import dslearn as ds
    >>> nll_loss(ds.tensor([[-0.5, -1.0], [-2.0, -0.1]]), ds.tensor([1, 0]))
    tensor(1.5)
    """
    input, target = to_tensor(input, "nll_loss"), to_tensor(target, "nll_loss")
    check_floating("nll_loss", input)
    _check_reduction(reduction, "nll_loss")
    if input.ndim == 0:
        raise ValueError(f"nll_loss: input must have a class dimension, got {describe(input)}")
    _check_class_target(input, target, ignore_index, "nll_loss")
    classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    weight = _check_weight(weight, classes, "nll_loss")
    batched_input, batched_target = _with_batch_dim(input, target)
    indices = batched_target._data.astype(np.int64, copy=False)
    kept = indices != ignore_index
    safe = np.where(kept, indices, 0)
    class_weights = np.ones(classes, input._data.dtype) if weight is None else weight._data.astype(input._data.dtype)
    picked_weight = Tensor._make(np.where(kept, class_weights[safe], 0).astype(input._data.dtype))
    picked = batched_input.gather(1, Tensor._make(np.expand_dims(safe, 1))).squeeze(1)
    loss = -picked * picked_weight
    if reduction == "mean":
        return loss.sum() / picked_weight.sum()
    if reduction == "sum":
        return loss.sum()
    return loss.reshape(()) if input.ndim == 1 else loss


# -- regression losses ----------------------------------------------------------------------------


def _pointwise_pair(input, target, op: str) -> tuple[Tensor, Tensor]:
    """Input and target in one dtype; different shapes broadcast with a warning (as PyTorch)."""
    input, target = binary_operands(input, target, op)
    check_floating(op, input)
    if input.shape != target.shape:
        warnings.warn(f"{op}: target size {target.shape} differs from input size {input.shape}; they will be "
                      "broadcast, which is likely not what you want", UserWarning, stacklevel=3)
    return input, target


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(input - target) ** 2``.

    >>> import dslearn as ds
    >>> mse_loss(ds.tensor([1.0, 2.0]), ds.tensor([1.0, 4.0]))
    tensor(2.)
    """
    _check_reduction(reduction, "mse_loss")
    input, target = _pointwise_pair(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|input - target|``.

    >>> import dslearn as ds
    >>> l1_loss(ds.tensor([1.0, 2.0]), ds.tensor([1.0, 4.0]), reduction="sum")
    tensor(2.)
    """
    _check_reduction(reduction, "l1_loss")
    input, target = _pointwise_pair(input, target, "l1_loss")
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Quadratic ``0.5 d^2 / beta`` for ``|d| < beta``, linear ``|d| - 0.5 beta`` beyond (``beta=0``: L1).

    >>> import dslearn as ds
    >>> smooth_l1_loss(ds.tensor([0.5, 3.0]), ds.tensor([0.0, 0.0]), reduction="none")
    tensor([0.125, 2.5  ])
    """
    _check_reduction(reduction, "smooth_l1_loss")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    input, target = _pointwise_pair(input, target, "smooth_l1_loss")
    distance = (input - target).abs()
    if beta == 0:
        return _reduce(distance, reduction)
    return _reduce(where(distance < beta, 0.5 * distance * distance / beta, distance - 0.5 * beta), reduction)


# -- binary losses and KL divergence ---------------------------------------------------------------


def _same_shape_pair(input, target, op: str) -> tuple[Tensor, Tensor]:
    input, target = binary_operands(input, target, op)
    check_floating(op, input)
    if input.shape != target.shape:
        raise ValueError(f"{op}: target size {target.shape} must be the same as input size {input.shape}")
    return input, target


def _weighted(loss: Tensor, weight, op: str) -> Tensor:
    return loss if weight is None else loss * cast_if_needed(to_tensor(weight, op), loss.dtype)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Binary cross-entropy on logits: ``-[p t log s(x) + (1 - t) log(1 - s(x))]``, s the sigmoid.

    Computed stably as ``(1 - t) x + (1 + (p - 1) t) softplus(-x)``; ``pos_weight`` p (one per
    class, broadcast over the last dim) weighs the positive term, ``weight`` every element.

    >>> import dslearn as ds
    >>> binary_cross_entropy_with_logits(ds.tensor([0.0, -100.0]), ds.tensor([1.0, 0.0]), reduction="none")
    tensor([0.6931, 0.    ])
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    input, target = _same_shape_pair(input, target, "binary_cross_entropy_with_logits")
    if pos_weight is not None:
        pos_weight = cast_if_needed(to_tensor(pos_weight, "binary_cross_entropy_with_logits"), input.dtype)
    log_weight = 1.0 if pos_weight is None else 1 + (pos_weight - 1) * target
    loss = (1 - target) * input + log_weight * softplus(-input, threshold=float("inf"))
    return _reduce(_weighted(loss, weight, "binary_cross_entropy_with_logits"), reduction)


class BinaryCrossEntropy(Function):
    """``-[t log x + (1 - t) log(1 - x)]`` with each log clamped at -100 (as PyTorch)."""

    @staticmethod
    def forward(ctx, x, t):
        with np.errstate(divide="ignore"):
            return -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log1p(-x), -100))

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.inputs
        need_x, need_t = ctx.needs_input_grad
        grad_x = grad * (x - t) / clamp(x * (1 - x), min=1e-12) if need_x else None
        grad_t = grad * (clamp(log(1 - x), min=-100) - clamp(log(x), min=-100)) if need_t else None
        return grad_x, grad_t


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy between probabilities ``input`` (in [0, 1]) and targets.

    >>> import dslearn as ds
    >>> binary_cross_entropy(ds.tensor([0.5, 0.9]), ds.tensor([1.0, 1.0]), reduction="none")
    tensor([0.6931, 0.1054])
    """
    _check_reduction(reduction, "binary_cross_entropy")
    input, target = _same_shape_pair(input, target, "binary_cross_entropy")
    values = input._data
    if values.size and not (values.min() >= 0 and values.max() <= 1):
        raise ValueError("binary_cross_entropy: all elements of input must be probabilities in [0, 1] "
                         f"(got values from {values.min()} to {values.max()}); for logits use "
                         "binary_cross_entropy_with_logits")
    loss = BinaryCrossEntropy.apply(input, target)
    return _reduce(_weighted(loss, weight, "binary_cross_entropy"), reduction)


def kl_div(input, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL divergence pointwise, ``target * (log(target) - input)``, with ``input`` log-probabilities.

    ``log_target=True`` takes log-probabilities as target too. ``reduction='batchmean'`` (the
    true KL divergence per sample, used in knowledge distillation) divides the sum by the batch
    size; ``'mean'`` divides by the number of elements.

    >>> import dslearn as ds
    >>> p = ds.tensor([[0.5, 0.5]])
    >>> kl_div(ds.tensor([[0.25, 0.75]]).log(), p, reduction="batchmean")
    tensor(0.1438)
    """
    _check_reduction(reduction, "kl_div", REDUCTIONS + ("batchmean",))
    input, target = binary_operands(input, target, "kl_div")
    check_floating("kl_div", input)
    if log_target:
        pointwise = target.exp() * (target - input)
    else:
        positive = target > 0
        pointwise = where(positive, target * log(where(positive, target, 1.0)), 0.0) - target * input
    if reduction == "batchmean":
        return pointwise.sum() / (input.shape[0] if input.ndim else 1)
    if reduction == "mean":
        warnings.warn("kl_div: reduction='mean' divides the total by the number of elements, not the batch size; "
                      "use reduction='batchmean' for the KL divergence per sample", UserWarning, stacklevel=2)
    return _reduce(pointwise, reduction)
