"""Checking and coercing op arguments: scalars, dtypes, devices and dimensions.

Every op funnels its arguments through here so that errors read the same everywhere and name
the op, the shapes, the dtypes and the devices involved.

May import: numpy, dslearn.tensor, dslearn.dtypes, dslearn.device.

>>> import dslearn as ds
>>> normalize_dim(-1, 3, "sum")
2
>>> normalize_dim(3, 2, "sum")
Traceback (most recent call last):
...
IndexError: sum: dim 3 is out of range for a tensor with 2 dimensions (expected -2..1)
"""

from __future__ import annotations

import numbers

import numpy as np

from dslearn import dtypes
from dslearn.tensor import Tensor


def describe(t: Tensor) -> str:
    """``shape (2, 3), float32 on cpu``: how errors mention a tensor."""
    return f"shape {t.shape}, {t.dtype.name} on {t.device}"


def normalize_dim(dim: int, ndim: int, op: str) -> int:
    """A dimension index in ``[0, ndim)``; negative dims count from the end."""
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions "
                         f"(expected {-size}..{size - 1})")
    return int(dim) % size


def normalize_dims(dim, ndim: int, op: str) -> tuple[int, ...] | None:
    """``None`` (all dims), an int or a sequence of ints, as a sorted tuple of distinct dims."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = tuple(sorted({normalize_dim(d, ndim, op) for d in dims}))
    if len(out) != len(dims):
        raise ValueError(f"{op}: dim {dim} repeats a dimension")
    return out


def to_tensor(value, op: str, dtype: dtypes.DType | None = None) -> Tensor:
    """Accept a Tensor, a NumPy array or a Python number as an op's input."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        if dtype is None and value.dtype == np.float64:
            dtype = dtypes.get_default_dtype()
        return Tensor._make(np.asarray(value, dtype=None if dtype is None else dtype.np))
    if isinstance(value, (numbers.Number, np.generic)):
        if dtype is None:
            python_scalar = isinstance(value, (bool, int, float))
            dtype = dtypes.get_dtype(type(value) if python_scalar else value.dtype)
        return Tensor._make(np.asarray(value, dtype=dtype.np))
    if isinstance(value, (list, tuple)):
        from dslearn.creation import tensor

        return tensor(value, dtype=dtype)
    raise TypeError(f"{op}: expected a Tensor or a number, got {type(value).__name__}")


def binary_operands(a, b, op: str) -> tuple[Tensor, Tensor]:
    """Two tensors of one common dtype on one device; Python scalars take the tensor's dtype."""
    a_is_tensor, b_is_tensor = isinstance(a, Tensor), isinstance(b, Tensor)
    if a_is_tensor and b_is_tensor:
        if a._data.dtype != b._data.dtype:
            if b._data.dtype == np.bool_ and a.is_floating_point():
                return a, b  # a float times a mask: NumPy keeps the float dtype without a cast
            common = _common_dtype(a, b)
            a, b = cast_if_needed(a, common), cast_if_needed(b, common)
        if type(a._data) is not type(b._data):
            return _on_one_device(op, a, b)
        return a, b
    if a_is_tensor:
        return _with_scalar(a, b, op, tensor_first=True)
    if b_is_tensor:
        return _with_scalar(b, a, op, tensor_first=False)
    raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")


def _on_one_device(op: str, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """PyTorch's rule: a 0-d CPU tensor goes along with a tensor on another device, like a Python number."""
    if a.ndim == 0 and a.device.type == "cpu":
        return a.to(b.device), b
    if b.ndim == 0 and b.device.type == "cpu":
        return a, b.to(a.device)
    check_same_device(op, a, b)
    return a, b


def _common_dtype(a: Tensor, b: Tensor) -> dtypes.DType:
    """PyTorch's rule: a 0-d tensor does not widen a dimensioned tensor of the same category."""
    if (a.ndim == 0) != (b.ndim == 0) and a.is_floating_point() == b.is_floating_point():
        return b.dtype if a.ndim == 0 else a.dtype
    return dtypes.promote_types(a.dtype, b.dtype)


def _with_scalar(t: Tensor, other, op: str, tensor_first: bool) -> tuple[Tensor, Tensor]:
    if isinstance(other, (numbers.Number, np.generic)) and not isinstance(other, np.ndarray):
        common = dtypes.scalar_result_dtype(t.dtype, other)
        t = cast_if_needed(t, common)
        other = Tensor._make(np.asarray(other, dtype=common.np))
        if type(t._data) is not np.ndarray:
            other = other.to(t.device)
    else:
        other = to_tensor(other, op)
        return binary_operands(t, other, op) if tensor_first else binary_operands(other, t, op)
    return (t, other) if tensor_first else (other, t)


def cast_if_needed(t: Tensor, dtype: dtypes.DType) -> Tensor:
    """``t`` converted to ``dtype`` (differentiably), or ``t`` itself."""
    if t._data.dtype == dtype.np:
        return t
    from dslearn.ops.elementwise import cast

    return cast(t, dtype)


def check_same_device(op: str, *tensors: Tensor) -> None:
    """Raise if the tensors live on different devices.

    >>> import dslearn as ds
    >>> check_same_device("add", ds.ones(2), ds.ones(3))
    """
    first = type(tensors[0]._data)
    if first is np.ndarray and all(type(t._data) is first for t in tensors):
        return  # all on the CPU: the common case, checked cheaply
    devices = {str(t.device) for t in tensors}
    if len(devices) > 1:
        shown = ", ".join(describe(t) for t in tensors)
        raise RuntimeError(f"{op}: expected all tensors on one device, got {shown}; move them with .to(device)")


def check_floating(op: str, t: Tensor) -> None:
    """Raise unless ``t`` has a floating point dtype."""
    if not t.is_floating_point():
        raise TypeError(f"{op}: expected a floating point tensor, got {describe(t)}")


def check_integer(op: str, name: str, t: Tensor) -> None:
    """Raise unless ``t`` (an index argument) has an integer dtype."""
    if t._data.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer tensor, got {describe(t)}")
