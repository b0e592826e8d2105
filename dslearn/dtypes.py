"""Data types of tensors and the rules that promote them.

A ``DType`` is a small named wrapper around a NumPy dtype, so that ``ds.float32`` prints
as ``dslearn.float32`` and compares equal to itself. bfloat16 comes from ``ml_dtypes``.
Promotion follows PyTorch: Python scalars are "weak" (``float32 * 2.5`` stays float32),
and integer tensors combined with a float scalar become the default float dtype.

May import: numpy, ml_dtypes.

>>> import dslearn as ds
>>> ds.float32.itemsize, ds.bfloat16.is_floating_point
(4, True)
>>> ds.promote_types(ds.int64, ds.float16)
dslearn.float16
"""

from __future__ import annotations

import ml_dtypes
import numpy as np


class DType:
    """A tensor element type: its name, NumPy dtype and category."""

    __slots__ = ("name", "np", "is_floating_point", "is_complex", "is_signed")

    def __init__(self, name: str, np_dtype) -> None:
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = name in ("float16", "bfloat16", "float32", "float64")
        self.is_complex = False
        self.is_signed = name not in ("bool", "uint8")

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.np.itemsize

    def __repr__(self) -> str:
        return f"dslearn.{self.name}"

    def __reduce__(self):
        return (get_dtype, (self.name,))


float16 = DType("float16", np.float16)
bfloat16 = DType("bfloat16", ml_dtypes.bfloat16)
float32 = DType("float32", np.float32)
float64 = DType("float64", np.float64)
uint8 = DType("uint8", np.uint8)
int8 = DType("int8", np.int8)
int16 = DType("int16", np.int16)
int32 = DType("int32", np.int32)
int64 = DType("int64", np.int64)
bool_ = DType("bool", np.bool_)

half, double, long, int_ = float16, float64, int64, int32

ALL_DTYPES = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
_BY_NUMPY = {d.np: d for d in ALL_DTYPES}
_ALIASES = {"half": float16, "double": float64, "long": int64, "float": float32, "int": int32}
_BY_NAME = {d.name: d for d in ALL_DTYPES} | _ALIASES

_default_float = float32


def get_dtype(spec) -> DType:
    """Turn a DType, NumPy dtype, torch dtype, Python type or name into a DType.

    >>> get_dtype("float64"), get_dtype(float), get_dtype(np.int32)
    (dslearn.float64, dslearn.float32, dslearn.int32)
    """
    if isinstance(spec, DType):
        return spec
    if spec is float:
        return _default_float
    if spec is int:
        return int64
    if spec is bool:
        return bool_
    if isinstance(spec, str):
        name = spec.removeprefix("torch.").removeprefix("dslearn.")
        if name in _BY_NAME:
            return _BY_NAME[name]
        raise TypeError(f"unknown dtype {spec!r}; expected one of {sorted(_BY_NAME)}")
    if type(spec).__module__ == "torch":  # torch.dtype, without importing torch
        return get_dtype(str(spec))
    try:
        return _BY_NUMPY[np.dtype(spec)]
    except (TypeError, KeyError):
        raise TypeError(f"unsupported dtype {spec!r}; dslearn supports {[d.name for d in ALL_DTYPES]}") from None


def from_numpy_dtype(np_dtype: np.dtype) -> DType:
    """The DType of a NumPy dtype (fast path used by ``Tensor.dtype``)."""
    try:
        return _BY_NUMPY[np_dtype]
    except KeyError:
        raise TypeError(f"NumPy dtype {np_dtype} has no dslearn equivalent") from None


def get_default_dtype() -> DType:
    """The float dtype of new tensors made from Python floats (float32 unless changed)."""
    return _default_float


def set_default_dtype(dtype) -> None:
    """Change the default float dtype (float32 or float64).

    >>> set_default_dtype(float64); get_default_dtype()
    dslearn.float64
    >>> set_default_dtype(float32)
    """
    global _default_float
    dtype = get_dtype(dtype)
    if dtype not in (float16, bfloat16, float32, float64):
        raise TypeError(f"set_default_dtype: {dtype} is not a floating point dtype")
    _default_float = dtype


_FLOAT_RANK = {float16: 1, bfloat16: 1, float32: 2, float64: 3}


def promote_types(a: DType, b: DType) -> DType:
    """The dtype of a binary op between tensors of dtypes ``a`` and ``b`` (PyTorch's rules)."""
    if a is b:
        return a
    if a.is_floating_point and b.is_floating_point:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if _FLOAT_RANK[a] >= _FLOAT_RANK[b] else b
    if a.is_floating_point:
        return a
    if b.is_floating_point:
        return b
    return from_numpy_dtype(np.promote_types(a.np, b.np))


def scalar_result_dtype(tensor_dtype: DType, scalar) -> DType:
    """The dtype of an op between a tensor and a Python scalar: the scalar is weak."""
    if isinstance(scalar, bool) or tensor_dtype.is_floating_point:
        return tensor_dtype
    if isinstance(scalar, float):
        return _default_float
    return tensor_dtype if tensor_dtype is not bool_ else int64
