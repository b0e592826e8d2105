"""In-place ops (``x.add_(y)``, ``x[k] = v``, ``x.zero_()``) and how they meet autograd.

Without gradients an in-place op writes straight into ``x``'s memory, so views of ``x`` see
the change (as in PyTorch). When gradients are recorded, the op runs out of place and ``x``
is re-pointed at the result: the old value stays in the graph under a stand-in tensor. Every
in-place write bumps ``x._version``; backward refuses to use a value that changed after it
was saved, instead of computing a silently wrong gradient.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.ops.arguments.

>>> import dslearn as ds
>>> w = ds.ones(3)
>>> with ds.no_grad():
...     _ = w.mul_(2).add_(1)
>>> w
tensor([3., 3., 3.])
"""

from __future__ import annotations

import weakref

import numpy as np

from dslearn.autograd.grad_mode import is_grad_enabled, no_grad
from dslearn.ops.arguments import cast_if_needed, describe
from dslearn.tensor import Tensor


def inplace(x: Tensor, fn, *args) -> Tensor:
    """Apply ``fn(x, *args)`` and store the result in ``x``; returns ``x``."""
    name = getattr(fn, "__name__", "op") + "_"
    if is_grad_enabled() and (x.requires_grad or any(isinstance(a, Tensor) and a.requires_grad for a in args)):
        return _recorded(x, fn, args, name)
    with no_grad():
        out = fn(x.detach(), *args)
    _check_result(x, out, name)
    try:
        np.copyto(x._data, out._data, casting="same_kind")
    except ValueError as error:  # read-only memory, e.g. an expanded tensor
        raise RuntimeError(f"{name}: cannot write into this tensor ({error}); clone() it first") from None
    x._version += 1
    return x


def _recorded(x: Tensor, fn, args, name: str) -> Tensor:
    if x.requires_grad and x._ctx is None:
        raise RuntimeError(
            f"{name}: a leaf tensor that requires grad ({describe(x)}) is used in an in-place operation; "
            "wrap the update in `with ds.no_grad():` or work on a clone()"
        )
    if x._data.base is not None and x.requires_grad:
        raise RuntimeError(
            f"{name}: in-place operation on a view ({describe(x)}) while recording gradients is not supported; "
            "use the out-of-place op, or write into the tensor it was viewed from"
        )
    old = Tensor._make(x._data)  # stands in for x's old value in the graph
    old._ctx, old.requires_grad = x._ctx, x.requires_grad
    if old._ctx is not None:
        old._ctx._output = weakref.ref(old)
    out = fn(old, *[old if a is x else a for a in args])  # x.mul_(x) uses x's old value twice
    _check_result(x, out, name)
    out = cast_if_needed(out, x.dtype)
    x._version += 1
    x._data, x._ctx, x.requires_grad = out._data, out._ctx, out.requires_grad
    if out._ctx is not None:
        out._ctx._output = weakref.ref(x)
        out._ctx._output_version = x._version
    return x


def _check_result(x: Tensor, out: Tensor, name: str) -> None:
    if out.shape != x.shape:
        raise RuntimeError(f"{name}: the result has shape {out.shape}, which does not fit the tensor's "
                           f"shape {x.shape}; in-place ops cannot change a tensor's shape")
    if not np.can_cast(out._data.dtype, x._data.dtype, casting="same_kind"):
        raise TypeError(f"{name}: the result dtype {out.dtype.name} cannot be stored in a {x.dtype.name} tensor")


def copy_from(x: Tensor, src) -> Tensor:
    """``src`` broadcast to ``x``'s shape and dtype (the functional form of ``x.copy_(src)``)."""
    src = src if isinstance(src, Tensor) else Tensor._make(np.asarray(src))
    return cast_if_needed(src, x.dtype).expand(x.shape).clone()


def full_like_of(x: Tensor, value) -> Tensor:
    """A tensor like ``x`` filled with ``value`` (the functional form of ``fill_``/``zero_``)."""
    return Tensor._make(np.full(x.shape, value, dtype=x._data.dtype))
