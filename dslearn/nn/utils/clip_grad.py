"""Gradient clipping: bound the size of an update before the optimizer takes it.

``clip_grad_norm_`` rescales all gradients together so that their joint norm is at most
``max_norm`` (directions are kept); ``clip_grad_value_`` clamps each element. Both work on the
gradient arrays directly (no graph is recorded) and, like PyTorch, replace each ``.grad``'s
values rather than building new Tensor objects.

May import: math, numpy, dslearn.tensor.

>>> import dslearn as ds
>>> w = ds.zeros(2, requires_grad=True)
>>> w.grad = ds.tensor([3.0, 4.0])
>>> clip_grad_norm_([w], max_norm=1.0), w.grad
(tensor(5.), tensor([0.6, 0.8]))
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from dslearn.tensor import Tensor

_EPS = 1e-6  # keeps the scale finite for an all-zero gradient, as in PyTorch


def _with_grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def _vector_norm(array: np.ndarray, norm_type: float) -> float:
    """The ``norm_type``-norm of all elements, accumulated in the array's precision (at least float32)."""
    values = array.ravel()
    if values.dtype.itemsize < 4 or values.dtype.kind != "f":
        values = values.astype(np.float32)
    if norm_type == 2:
        return math.sqrt(float(np.dot(values, values)))
    if norm_type == math.inf:
        return float(np.abs(values).max()) if values.size else 0.0
    if norm_type == -math.inf:
        return float(np.abs(values).min()) if values.size else math.inf
    if norm_type == 0:
        return float(np.count_nonzero(values))
    return float(np.sum(np.abs(values) ** norm_type)) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients by ``min(1, max_norm / (total_norm + 1e-6))``; returns ``total_norm``.

    ``total_norm`` is the ``norm_type``-norm of all gradients concatenated (``inf`` for the
    largest absolute value). With ``error_if_nonfinite`` a NaN or infinite norm raises.

    >>> import dslearn as ds
    >>> w = ds.zeros(3, requires_grad=True); w.grad = ds.tensor([1.0, -5.0, 2.0])
    >>> clip_grad_norm_(w, 2.5, norm_type=float("inf")), w.grad
    (tensor(5.), tensor([ 0.5, -2.5,  1. ]))
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    params = _with_grads(parameters)
    if not params:
        return Tensor._make(np.zeros((), dtype=np.float32))
    norms = [_vector_norm(p.grad._data, norm_type) for p in params]
    total = _vector_norm(np.array(norms, dtype=np.float64), norm_type)
    dtype = params[0].grad._data.dtype
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is non-finite "
                           f"({total}), so it cannot be clipped; pass error_if_nonfinite=False to scale the "
                           "gradients by the non-finite norm anyway")
    scale = min(max_norm / (total + _EPS), 1.0) if not math.isnan(total) else math.nan
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch: the non-finite norm propagates
        for p in params:
            grad = p.grad._data
            p.grad._data = grad * grad.dtype.type(scale)  # a new array: gradients may share memory
    return Tensor._make(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]``.

    >>> import dslearn as ds
    >>> w = ds.zeros(3, requires_grad=True); w.grad = ds.tensor([0.5, -3.0, 2.0])
    >>> clip_grad_value_(w, 1.0); w.grad
    tensor([ 0.5, -1. ,  1. ])
    """
    clip_value = float(clip_value)
    for p in _with_grads(parameters):
        p.grad._data = np.clip(p.grad._data, -clip_value, clip_value).astype(p.grad._data.dtype, copy=False)
