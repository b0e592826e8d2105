"""Shape ops: reshape/view, flatten, permute/transpose, expand, squeeze/unsqueeze, cat, stack,
split/chunk, pad, repeat, clone and contiguous.

None of these does arithmetic; each backward moves the gradient back to where the forward
took each element from.

May import: numpy, dslearn.tensor, dslearn.autograd.function, dslearn.ops.arguments,
dslearn.ops.elementwise.

>>> import dslearn as ds
>>> x = ds.arange(6.0).reshape(2, 3)
>>> x.T.shape, ds.cat([x, x], dim=1).shape, [p.shape for p in x.split(2, dim=1)]
((3, 2), (2, 6), [(2, 2), (2, 1)])
"""

from __future__ import annotations

import math

import numpy as np

from dslearn import dtypes
from dslearn.autograd.function import Function
from dslearn.ops.arguments import cast_if_needed, check_same_device, describe, normalize_dim, to_tensor
from dslearn.ops.elementwise import unbroadcast
from dslearn.tensor import Tensor


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape)


class Permute(Function):
    @staticmethod
    def forward(ctx, x, dims):
        return np.transpose(x, dims)

    @staticmethod
    def backward(ctx, grad):
        return grad.permute(tuple(np.argsort(ctx.attrs["dims"]).tolist()))


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return broadcast_view(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return unbroadcast(grad, ctx.in_shape)


class Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.sizes = [a.shape[dim] for a in arrays]
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        return tuple(grad.split(ctx.sizes, ctx.attrs["dim"]))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        return np.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, grad):
        dim = ctx.attrs["dim"]
        return tuple(grad.select(dim, i) for i in range(grad.shape[dim]))


class ConstantPad(Function):
    @staticmethod
    def forward(ctx, x, widths, value):
        return np.pad(x, widths, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, grad):
        key = tuple(slice(before, size - after) for (before, after), size in zip(ctx.attrs["widths"], grad.shape))
        return grad[key]


class Repeat(Function):
    @staticmethod
    def forward(ctx, x, repeats):
        ctx.in_shape = x.shape
        return np.tile(x, repeats)

    @staticmethod
    def backward(ctx, grad):
        in_shape = (1,) * (len(ctx.attrs["repeats"]) - len(ctx.in_shape)) + ctx.in_shape
        interleaved = [n for pair in zip(ctx.attrs["repeats"], in_shape) for n in pair]
        summed = grad.reshape(interleaved).sum(tuple(range(0, len(interleaved), 2)))
        return summed.reshape(ctx.in_shape)


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Contiguous(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()  # row-major, on the array's device (contiguous() calls it only for other layouts)

    @staticmethod
    def backward(ctx, grad):
        return grad


def broadcast_view(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only view of ``x`` stretched to ``shape`` (stride 0 along stretched dims).

    Does what ``np.broadcast_to`` does, several times faster for the small arrays of backward.
    """
    if type(x) is not np.ndarray or not x.flags.c_contiguous:
        return np.broadcast_to(x, shape)
    lead = len(shape) - x.ndim
    strides, step = [0] * len(shape), x.itemsize
    for i in range(x.ndim - 1, -1, -1):
        strides[i + lead] = step if x.shape[i] != 1 else 0
        step *= x.shape[i]
    out = np.ndarray(shape, x.dtype, buffer=x if x.size else None, strides=tuple(strides) if x.size else None)
    out.flags.writeable = False
    return out


# -- public functions --------------------------------------------------------------------------


def _resolve_shape(x: Tensor, shape, op: str) -> tuple[int, ...]:
    if type(shape) is tuple and math.prod(shape) == x._data.size and -1 not in shape:
        return shape  # the common case, checked cheaply
    shape = tuple(int(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1 or any(s < -1 for s in shape):
        raise ValueError(f"{op}: invalid shape {shape}; at most one dimension may be -1 and none negative")
    known = math.prod(s for s in shape if s != -1)
    if unknown:
        if known == 0 or x.numel() % known:
            raise ValueError(f"{op}: cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) into {shape}")
        shape = tuple(x.numel() // known if s == -1 else s for s in shape)
    elif known != x.numel():
        raise ValueError(f"{op}: cannot reshape a tensor of shape {x.shape} ({x.numel()} elements) into {shape}")
    return shape


def reshape(x, shape) -> Tensor:
    """The same elements in a new shape; one dimension may be -1 (inferred)."""
    x = to_tensor(x, "reshape")
    shape = _resolve_shape(x, shape, "reshape")
    return x if shape == x.shape else Reshape.apply(x, shape=shape)


def view(x, shape) -> Tensor:
    """Like ``reshape``, but refuses (as PyTorch does) when the result cannot share memory."""
    x = to_tensor(x, "view")
    shape = _resolve_shape(x, shape, "view")
    try:
        x._data.view().shape = shape
    except AttributeError:
        raise RuntimeError(
            f"view: a tensor of shape {x.shape} with strides {x._data.strides} cannot be viewed as {shape} "
            "without copying; use .reshape(...) or call .contiguous() first"
        ) from None
    return reshape(x, shape)


def flatten(x, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` into one."""
    x = to_tensor(x, "flatten")
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = normalize_dim(start_dim, x.ndim, "flatten"), normalize_dim(end_dim, x.ndim, "flatten")
    if start > end:
        raise ValueError(f"flatten: start_dim ({start_dim}) comes after end_dim ({end_dim})")
    return reshape(x, x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])


def permute(x, dims) -> Tensor:
    """Reorder dimensions: ``permute(x, (2, 0, 1))``."""
    x = to_tensor(x, "permute")
    dims = tuple(normalize_dim(d, x.ndim, "permute") for d in dims)
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {x.ndim} dimensions of {describe(x)}")
    return x if dims == tuple(range(x.ndim)) else Permute.apply(x, dims=dims)


def transpose(x, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions."""
    x = to_tensor(x, "transpose")
    dims = list(range(x.ndim))
    a, b = normalize_dim(dim0, x.ndim, "transpose"), normalize_dim(dim1, x.ndim, "transpose")
    dims[a], dims[b] = dims[b], dims[a]
    return permute(x, dims)


def expand(x, shape) -> Tensor:
    """Broadcast to a larger shape without copying; -1 keeps a dimension's size."""
    x = to_tensor(x, "expand")
    shape = tuple(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: target {shape} has fewer dimensions than {describe(x)}")
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    for i, size in enumerate(x.shape):
        if size != 1 and size != shape[i + lead]:
            raise ValueError(f"expand: the size of dimension {i} ({size}) of {describe(x)} must be 1 or "
                             f"match the target {shape}")
    return x if shape == x.shape else Expand.apply(x, shape=shape)


def broadcast_to(x, shape) -> Tensor:
    """Alias of ``expand`` with NumPy's name."""
    return expand(x, shape)


def squeeze(x, dim=None) -> Tensor:
    """Remove dimensions of size 1 (all of them, or the given ones)."""
    x = to_tensor(x, "squeeze")
    if dim is None:
        dims = {i for i, s in enumerate(x.shape) if s == 1}
    else:
        dims = {normalize_dim(d, x.ndim, "squeeze") for d in ((dim,) if isinstance(dim, int) else dim)}
        dims = {d for d in dims if x.shape[d] == 1}  # PyTorch leaves other sizes alone
    return reshape(x, [s for i, s in enumerate(x.shape) if i not in dims])


def unsqueeze(x, dim: int) -> Tensor:
    """Insert a dimension of size 1 at ``dim``."""
    x = to_tensor(x, "unsqueeze")
    dim = normalize_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def _same_dtype(tensors: list[Tensor], op: str) -> list[Tensor]:
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    tensors = [to_tensor(t, op) for t in tensors]
    check_same_device(op, *tensors)
    common = tensors[0].dtype
    for t in tensors[1:]:
        common = dtypes.promote_types(common, t.dtype)
    return [cast_if_needed(t, common) for t in tensors]


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension.

    >>> import dslearn as ds
    >>> ds.cat([ds.zeros(2, 3), ds.ones(1, 3)]).shape
    (3, 3)
    """
    tensors = _same_dtype(list(tensors), "cat")
    first = tensors[0]
    dim = normalize_dim(dim, first.ndim, "cat")
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != dim):
            raise ValueError(f"cat: tensors must have the same shape except in dimension {dim}; "
                             f"got {first.shape} and {t.shape}")
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim: int = 0) -> Tensor:
    """Join same-shaped tensors along a new dimension.

    >>> import dslearn as ds
    >>> ds.stack([ds.zeros(2, 3), ds.ones(2, 3)], dim=1).shape
    (2, 2, 3)
    """
    tensors = _same_dtype(list(tensors), "stack")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: all tensors must have the same shape; got {tensors[0].shape} and {t.shape}")
    return Stack.apply(*tensors, dim=normalize_dim(dim, tensors[0].ndim + 1, "stack"))


def split(x, split_size_or_sections, dim: int = 0) -> list[Tensor]:
    """Cut into pieces of ``split_size`` (the last may be smaller) or of the listed sizes."""
    x = to_tensor(x, "split")
    dim = normalize_dim(dim, x.ndim, "split")
    length = x.shape[dim]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, length - start) for start in range(0, length, split_size_or_sections)]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != length:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)}, but dimension {dim} of {describe(x)} "
                             f"has size {length}")
    pieces, start = [], 0
    for size in sizes:
        key = (slice(None),) * dim + (slice(start, start + size),)
        pieces.append(x[key])
        start += size
    return pieces


def chunk(x, chunks: int, dim: int = 0) -> list[Tensor]:
    """Cut into ``chunks`` nearly equal pieces (as ``torch.chunk``)."""
    x = to_tensor(x, "chunk")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    length = x.shape[normalize_dim(dim, x.ndim, "chunk")]
    return split(x, max(math.ceil(length / chunks), 1), dim)


def unbind(x, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, each without that dimension."""
    x = to_tensor(x, "unbind")
    dim = normalize_dim(dim, x.ndim, "unbind")
    return tuple(x.select(dim, i) for i in range(x.shape[dim]))


def select(x, dim: int, index: int) -> Tensor:
    """The slice at ``index`` along ``dim``, without that dimension."""
    dim = normalize_dim(dim, x.ndim, "select")
    return x[(slice(None),) * dim + (index,)]


_PAD_MODES = {"constant", "reflect", "replicate", "circular"}


def pad(x, pad: tuple[int, ...], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last ``len(pad) // 2`` dimensions; ``pad`` lists (before, after) from the last dimension.

    >>> import dslearn as ds
    >>> ds.pad(ds.ones(2, 2), (1, 1, 0, 2)).shape   # last dim +1+1, first dim +0+2
    (4, 4)
    """
    x = to_tensor(x, "pad")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding {pad} must have an even length of at most 2 * ndim for {describe(x)}")
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: unknown mode {mode!r}; expected one of {sorted(_PAD_MODES)}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if any(b < 0 or a < 0 for b, a in widths):
        return _crop_negative(x, widths, mode, value)
    if mode == "constant":
        return ConstantPad.apply(x, widths=tuple(widths), value=value)
    from dslearn.ops.indexing import index_select

    for d, (before, after) in enumerate(widths):
        if before or after:
            x = index_select(x, d, Tensor._make(_source_positions(x.shape[d], before, after, mode)))
    return x


def _crop_negative(x: Tensor, widths, mode, value) -> Tensor:
    """Negative padding crops, as in PyTorch."""
    key = tuple(slice(max(-b, 0), s - max(-a, 0)) for (b, a), s in zip(widths, x.shape))
    positive = [(max(b, 0), max(a, 0)) for b, a in widths]
    flat = [p for pair in reversed(positive) for p in pair]
    return pad(x[key], flat, mode, value)


def _source_positions(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each padded position along one dimension, the input position it copies."""
    positions = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    if mode == "circular":
        if before > size or after > size:
            raise ValueError(f"pad: circular padding ({before}, {after}) is larger than the dimension ({size})")
        return positions % size
    if before >= size or after >= size:
        raise ValueError(f"pad: reflect padding ({before}, {after}) must be smaller than the dimension ({size})")
    period = 2 * (size - 1)
    folded = np.abs(positions) % period if period else np.zeros_like(positions)
    return np.where(folded < size, folded, period - folded)


def repeat(x, repeats) -> Tensor:
    """Tile the tensor ``repeats[i]`` times along each dimension (as ``torch.Tensor.repeat``)."""
    x = to_tensor(x, "repeat")
    repeats = tuple(int(r) for r in repeats)
    if len(repeats) < x.ndim:
        raise ValueError(f"repeat: {len(repeats)} repeat counts for {describe(x)}; give at least {x.ndim}")
    return Repeat.apply(x, repeats=repeats)


def clone(x) -> Tensor:
    """A copy with its own memory; gradients flow back to the original."""
    return Clone.apply(to_tensor(x, "clone"))


def contiguous(x) -> Tensor:
    """The tensor laid out in row-major order (itself if it already is)."""
    x = to_tensor(x, "contiguous")
    data = x._data
    row_major = data.flags.c_contiguous if type(data) is np.ndarray else data.is_contiguous()
    return x if row_major else Contiguous.apply(x)
