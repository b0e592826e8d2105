"""Indexing: ``x[key]``, ``x[key] = v``, gather, scatter_add, index_select, masked_fill.

Keys follow NumPy's (and PyTorch's) rules: ints, slices, None, Ellipsis, integer and bool
tensors. The backward of every read is a scatter-add, which sums the gradient when one
element was read several times.

May import: numpy, dslearn.tensor, dslearn.autograd.function, dslearn.ops.arguments,
dslearn.ops.elementwise, dslearn.ops.shape.

>>> import dslearn as ds
>>> x = ds.arange(6.0).reshape(2, 3).requires_grad_()
>>> x[:, [0, 0, 2]].sum().backward()          # column 0 read twice
>>> x.grad
tensor([[2., 0., 1.],
        [2., 0., 1.]])
"""

from __future__ import annotations

import numbers

import numpy as np

from dslearn.autograd.function import Function
from dslearn.ops.arguments import cast_if_needed, check_integer, describe, normalize_dim, to_tensor
from dslearn.ops.elementwise import unbroadcast, where
from dslearn.tensor import Tensor

# -- keys ---------------------------------------------------------------------------------------


def _array_key(key, op: str):
    """Turn a user's key into a NumPy key: tensors and lists become arrays."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for part in key:
        if isinstance(part, Tensor):
            if part._data.dtype.kind not in "iub":
                raise IndexError(f"{op}: tensors used as indices must be integer or bool, got {describe(part)}")
            out.append(part._host_array())
        elif isinstance(part, (list, np.ndarray)):
            array = np.asarray(part)
            if array.size and array.dtype.kind not in "iub":
                raise IndexError(f"{op}: index arrays must be integer or bool, got dtype {array.dtype}")
            out.append(array.astype(np.int64) if array.size == 0 else array)
        elif part is None or part is Ellipsis or isinstance(part, (slice, numbers.Integral)):
            out.append(part)
        else:
            raise IndexError(f"{op}: unsupported index {part!r} of type {type(part).__name__}")
    return tuple(out)


def _is_basic(key: tuple) -> bool:
    """True if the key has no index arrays (so it selects a view and never repeats an element)."""
    return all(not isinstance(part, np.ndarray) for part in key)


def _read(array: np.ndarray, key: tuple, op: str, shape) -> np.ndarray:
    try:
        return array[key]
    except IndexError as error:
        raise IndexError(f"{op}: {error} (indexing a tensor of shape {shape})") from None


# -- ops ---------------------------------------------------------------------------------------


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, key):
        ctx.in_shape = x.shape
        return _read(x, key, "getitem", x.shape)

    @staticmethod
    def backward(ctx, grad):
        return IndexAddInto.apply(grad, shape=ctx.in_shape, key=ctx.attrs["key"])


class IndexAddInto(Function):
    """Zeros of ``shape`` with ``grad`` added at ``key``: the backward of a read."""

    @staticmethod
    def forward(ctx, grad, shape, key):
        out = np.zeros_like(grad, shape=shape)  # on the device of ``grad``
        if _is_basic(key):
            out[key] = grad
        else:
            np.add.at(out, key, grad)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.attrs["key"]]


class IndexPut(Function):
    """A copy of ``x`` with ``value`` written at ``key`` (the functional form of ``x[key] = v``)."""

    @staticmethod
    def forward(ctx, x, value, key):
        out = x.copy()
        try:
            out[key] = value
        except (IndexError, ValueError) as error:
            raise type(error)(f"setitem: {error} (tensor of shape {x.shape}, value of shape {value.shape})") from None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, value = ctx.parents
        key = ctx.attrs["key"]
        need_x, need_value = ctx.needs_input_grad
        zero = Tensor._make(np.zeros((), dtype=grad._data.dtype))
        grad_x = IndexPut.apply(grad, zero, key=key) if need_x else None
        grad_value = unbroadcast(grad[key], value.shape) if need_value else None
        return grad_x, grad_value


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.in_shape = x.shape
        return np.take(x, index, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        dim = ctx.attrs["dim"]
        key = (slice(None),) * dim + (ctx.parents[1]._data,)
        return IndexAddInto.apply(grad, shape=ctx.in_shape, key=key), None


class Gather(Function):
    @staticmethod
    def forward(ctx, x, index, dim):
        ctx.in_shape = x.shape
        return x[_full_key(index, dim)]

    @staticmethod
    def backward(ctx, grad):
        key = _full_key(ctx.parents[1]._data, ctx.attrs["dim"])
        return IndexAddInto.apply(grad, shape=ctx.in_shape, key=key), None


class ScatterAdd(Function):
    @staticmethod
    def forward(ctx, x, index, src, dim):
        out = x.copy()
        np.add.at(out, _full_key(index, dim), src[tuple(slice(0, n) for n in index.shape)])
        return out

    @staticmethod
    def backward(ctx, grad):
        _, index, src = ctx.parents
        grad_src = None
        if ctx.needs_input_grad[2]:
            picked = grad.gather(ctx.attrs["dim"], index)
            if picked.shape != src.shape:
                from dslearn.ops.shape import pad

                widths = [p for s, i in zip(reversed(src.shape), reversed(index.shape)) for p in (0, s - i)]
                picked = pad(picked, widths)
            grad_src = picked
        return grad, None, grad_src


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        return np.where(mask, x.dtype.type(value), x)

    @staticmethod
    def backward(ctx, grad):
        zero = Tensor._make(np.zeros((), dtype=grad._data.dtype))
        return where(ctx.parents[1], zero, grad), None


def _full_key(index: np.ndarray, dim: int) -> tuple:
    """Index arrays that pick ``x[i0, ..., index[i], ..., ik]`` for every position of ``index``."""
    grids = list(np.ogrid[tuple(slice(0, n) for n in index.shape)])
    grids[dim] = index
    return tuple(grids)


# -- public functions --------------------------------------------------------------------------


def getitem(x: Tensor, key) -> Tensor:
    """``x[key]`` with NumPy/PyTorch semantics."""
    return GetItem.apply(x, key=_array_key(key, "getitem"))


def index_put(x: Tensor, key, value) -> Tensor:
    """A new tensor equal to ``x`` with ``value`` written at ``key`` (out of place)."""
    value = cast_if_needed(to_tensor(value, "setitem", dtype=x.dtype), x.dtype)
    return IndexPut.apply(x, value, key=_array_key(key, "setitem"))


def setitem(x: Tensor, key, value) -> None:
    """``x[key] = value``: writes in place, or records the write when gradients are needed."""
    from dslearn.autograd.grad_mode import is_grad_enabled
    from dslearn.ops.inplace import inplace

    value_needs_grad = isinstance(value, Tensor) and value.requires_grad
    if is_grad_enabled() and (x.requires_grad or value_needs_grad):
        inplace(x, index_put, key, value)
        return
    array = value._host_array() if isinstance(value, Tensor) else value
    try:
        x._data[_array_key(key, "setitem")] = array
    except (IndexError, ValueError) as error:
        raise type(error)(f"setitem: {error} (tensor of shape {x.shape})") from None
    x._version += 1


def _index_tensor(index, op: str) -> Tensor:
    index = to_tensor(index, op)
    check_integer(op, "index", index)
    return index


def gather(x, dim: int, index) -> Tensor:
    """``out[i][j] = x[i][index[i][j]]`` for ``dim=1`` (and likewise for other dims).

    >>> import dslearn as ds
    >>> ds.tensor([[1.0, 2.0], [3.0, 4.0]]).gather(1, ds.tensor([[1], [0]]))
    tensor([[2.],
            [3.]])
    """
    x, index = to_tensor(x, "gather"), _index_tensor(index, "gather")
    dim = normalize_dim(dim, x.ndim, "gather")
    if index.ndim != x.ndim:
        raise ValueError(f"gather: index ({describe(index)}) must have as many dimensions as input ({describe(x)})")
    if any(i > s for d, (i, s) in enumerate(zip(index.shape, x.shape)) if d != dim):
        raise ValueError(f"gather: index shape {index.shape} is larger than input shape {x.shape} outside dim {dim}")
    _check_range(index, x.shape[dim], "gather")
    return Gather.apply(x, index, dim=dim)


def scatter_add(x, dim: int, index, src) -> Tensor:
    """A copy of ``x`` with ``src`` added at the positions ``index`` names along ``dim``."""
    x, index = to_tensor(x, "scatter_add"), _index_tensor(index, "scatter_add")
    src = cast_if_needed(to_tensor(src, "scatter_add"), x.dtype)
    dim = normalize_dim(dim, x.ndim, "scatter_add")
    if not index.ndim == src.ndim == x.ndim:
        raise ValueError(f"scatter_add: input {x.shape}, index {index.shape} and src {src.shape} "
                         "must have the same number of dimensions")
    if any(i > s for i, s in zip(index.shape, src.shape)) or \
            any(i > s for d, (i, s) in enumerate(zip(index.shape, x.shape)) if d != dim):
        raise ValueError(f"scatter_add: index shape {index.shape} is too large for src {src.shape} or input {x.shape}")
    _check_range(index, x.shape[dim], "scatter_add")
    return ScatterAdd.apply(x, index, src, dim=dim)


def index_select(x, dim: int, index) -> Tensor:
    """The slices of ``x`` along ``dim`` at the positions in the 1-D tensor ``index``."""
    x, index = to_tensor(x, "index_select"), _index_tensor(index, "index_select")
    if index.ndim > 1:
        raise ValueError(f"index_select: index must be 1-D, got {describe(index)}")
    dim = normalize_dim(dim, x.ndim, "index_select")
    _check_range(index, x.shape[dim], "index_select", allow_negative=False)
    return IndexSelect.apply(x, index.reshape(-1), dim=dim)


def masked_fill(x, mask, value) -> Tensor:
    """``x`` with ``value`` wherever the bool ``mask`` (broadcast to x) is true."""
    x, mask = to_tensor(x, "masked_fill"), to_tensor(mask, "masked_fill")
    if mask._data.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {describe(mask)}")
    try:
        fits = np.broadcast_shapes(mask.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {x.shape}")
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"masked_fill: value must be a number or a one-element tensor, got {describe(value)}")
        value = value.item()
    return MaskedFill.apply(x, mask, value=value)


def _check_range(index: Tensor, size: int, op: str, allow_negative: bool = False) -> None:
    if index.numel() == 0:
        return
    low, high = int(index._data.min()), int(index._data.max())
    if high >= size or low < (-size if allow_negative else 0):
        bad = high if high >= size else low
        raise IndexError(f"{op}: index {bad} is out of range for a dimension of size {size}")
