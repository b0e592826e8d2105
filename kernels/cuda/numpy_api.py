"""How a ``CudaArray`` answers NumPy: ufuncs by map and zip kernels, reductions by the reduce kernel, and more.

``array_ufunc`` (NEP 13) serves ``np.exp(x)``, ``x + y``, ``np.maximum(x, 0, out=x)`` and
``np.matmul``; ``array_function`` (NEP 18) serves ``np.sum``, ``np.where``, ``np.broadcast_to``,
``np.concatenate`` and the other functions in ``FUNCTIONS``. Each ufunc has a scalar function
(``UNARY``, ``BINARY``) compiled into a ``tensor_map`` or ``tensor_zip`` kernel the first time it
is used; result dtypes follow NumPy's own rules (``ufunc.resolve_dtypes``), Python numbers
included. A NumPy array or number mixed in is copied to the GPU (numbers once: they are cached).
What is not listed raises ``NotImplementedError`` naming the function: nothing falls back to
the host silently.

In the simulator the scalar functions get NumPy scalars, so ``exp``, ``log`` and ``sqrt`` come
from NumPy there (infinity and NaN, as on a GPU, where Python's ``math`` would raise).

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from dslearn.kernels.cuda.array import CudaArray
>>> x = CudaArray.from_numpy(np.array([[1.0, -2.0], [3.0, 4.0]], dtype=np.float32))
>>> np.maximum(x, 0).sum(axis=0).to_numpy(), np.where(x > 0, x, 0.5 * x).dtype
(array([4., 4.], dtype=float32), dtype('float32'))
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from dslearn.kernels.cuda import matmul as matmul_kernels
from dslearn.kernels.cuda import primitives
from dslearn.kernels.cuda.array import CudaArray, check_dtype
from dslearn.kernels.cuda.runtime import SIMULATOR, THREADS, blocks_for
from numba import cuda

_math = np if SIMULATOR else math  # see the module docstring

UNARY = {
    np.negative: lambda x: -x,
    np.positive: lambda x: x,
    np.absolute: lambda x: abs(x),
    np.sign: lambda x: int(x > 0) - int(x < 0),
    np.square: lambda x: x * x,
    np.exp: lambda x: _math.exp(x),
    np.log: lambda x: _math.log(x),
    np.log1p: lambda x: _math.log1p(x),
    np.expm1: lambda x: _math.expm1(x),
    np.sqrt: lambda x: _math.sqrt(x),
    np.sin: lambda x: _math.sin(x),
    np.cos: lambda x: _math.cos(x),
    np.tanh: lambda x: _math.tanh(x),
    np.isnan: lambda x: x != x,
    np.isfinite: lambda x: x - x == 0,  # inf - inf and NaN - NaN are NaN
    np.logical_not: lambda x: not x,
}

BINARY = {
    np.add: lambda x, y: x + y,
    np.subtract: lambda x, y: x - y,
    np.multiply: lambda x, y: x * y,
    np.true_divide: lambda x, y: x / y,
    np.floor_divide: lambda x, y: x // y,
    np.remainder: lambda x, y: x % y,
    np.power: lambda x, y: x ** y,
    np.maximum: lambda x, y: x if x > y or x != x else y,  # NaN wins, as in NumPy
    np.minimum: lambda x, y: x if x < y or x != x else y,
    np.equal: lambda x, y: x == y,
    np.not_equal: lambda x, y: x != y,
    np.less: lambda x, y: x < y,
    np.less_equal: lambda x, y: x <= y,
    np.greater: lambda x, y: x > y,
    np.greater_equal: lambda x, y: x >= y,
    np.logical_and: lambda x, y: bool(x) and bool(y),
    np.logical_or: lambda x, y: bool(x) or bool(y),
    np.logical_xor: lambda x, y: bool(x) != bool(y),
    np.bitwise_and: lambda x, y: x & y,  # ``mask & mask`` on bool arrays
    np.bitwise_or: lambda x, y: x | y,
    np.bitwise_xor: lambda x, y: x ^ y,
}

_kernels: dict = {}
_scalars: dict = {}


def _kernel(ufunc):
    if ufunc not in _kernels:
        factory = primitives.tensor_map if ufunc in UNARY else primitives.tensor_zip
        _kernels[ufunc] = factory({**UNARY, **BINARY}[ufunc])
    return _kernels[ufunc]


_copy = primitives.tensor_map(lambda x: x)


def on_device(value, dtype=None) -> CudaArray:
    """``value`` as a CudaArray: itself, a NumPy array copied over, or a number (kept on the GPU for reuse)."""
    if isinstance(value, CudaArray):
        return value if dtype is None or value.dtype == dtype else value.astype(dtype)
    if isinstance(value, (numbers.Number, np.generic)) and not isinstance(value, np.ndarray):
        dtype = np.dtype(dtype if dtype is not None else np.asarray(value).dtype)
        key = (dtype, value.item() if isinstance(value, np.generic) else value)
        if key not in _scalars:
            if len(_scalars) > 1024:
                _scalars.clear()
            _scalars[key] = CudaArray.from_numpy(np.asarray(value, dtype=dtype))
        return _scalars[key]
    return CudaArray.from_numpy(np.asarray(value, dtype=dtype))


def _dtype_of(value):
    """What ``ufunc.resolve_dtypes`` takes: a dtype, or the Python type of a number (a "weak" scalar)."""
    if isinstance(value, (CudaArray, np.ndarray, np.generic)):
        return value.dtype
    if isinstance(value, (bool, int, float)):
        return type(value)
    return np.asarray(value).dtype


def _shares_storage(a: CudaArray, b: CudaArray) -> bool:
    if SIMULATOR:
        return np.may_share_memory(a.storage._ary, b.storage._ary)
    start_a, start_b = (x.storage.__cuda_array_interface__["data"][0] for x in (a, b))
    return start_a < start_b + b.storage.nbytes and start_b < start_a + a.storage.nbytes


def copy_into(out: CudaArray, value) -> CudaArray:
    """Write ``value`` (a CudaArray, NumPy array or number, broadcast to ``out``) into ``out``, casting."""
    source = on_device(value, None if isinstance(value, CudaArray) else out.dtype)
    source = source.broadcast_to(out.shape)
    if source.size and _shares_storage(source, out):
        source = source.copy()
    if out.size:
        _copy(out.storage, out.shape, out.strides, source.storage, source.shape, source.strides)
    return out


def array_ufunc(ufunc, method: str, inputs: tuple, kwargs: dict):
    """``ufunc(*inputs, **kwargs)`` on the GPU (NEP 13); ``out`` and ``dtype`` keywords are honoured."""
    if ufunc is np.matmul and method == "__call__" and not kwargs:
        a, b = (on_device(x) for x in inputs)
        return matmul_kernels.matmul(a, b)
    if method != "__call__" or ufunc not in UNARY and ufunc not in BINARY:
        raise NotImplementedError(f"np.{ufunc.__name__}{'' if method == '__call__' else '.' + method} has no CUDA "
                                  f"kernel in dslearn; supported ufuncs: "
                                  f"{', '.join(sorted(u.__name__ for u in {**UNARY, **BINARY}))}")
    out = kwargs.pop("out", None)
    out = out[0] if isinstance(out, tuple) else out
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise NotImplementedError(f"np.{ufunc.__name__} on CUDA arrays takes out= and dtype=, not {sorted(kwargs)}")
    loop = ufunc.resolve_dtypes(tuple(_dtype_of(x) for x in inputs) + (None if dtype is None else np.dtype(dtype),))
    operands = [on_device(x, None if isinstance(x, CudaArray) else loop[i]) for i, x in enumerate(inputs)]
    shape = np.broadcast_shapes(*(x.shape for x in operands))
    if out is None:
        out = CudaArray.empty(shape, check_dtype(loop[-1]))
    elif not isinstance(out, CudaArray) or out.shape != shape:
        raise ValueError(f"np.{ufunc.__name__}: out must be a CudaArray of shape {shape}")
    if out.size:
        parts = [part for x in operands for part in (x.storage, x.shape, x.strides)]
        _kernel(ufunc)(out.storage, out.shape, out.strides, *parts)
    return out


# -- reductions -------------------------------------------------------------------------------------

_REDUCERS = {
    "sum": primitives.tensor_reduce(lambda acc, x: acc + x),
    "max": primitives.tensor_reduce(lambda acc, x: acc if acc > x or acc != acc else x),
    "min": primitives.tensor_reduce(lambda acc, x: acc if acc < x or acc != acc else x),
}


def _accumulator(dtype: np.dtype) -> np.dtype:
    """The dtype a reduction computes in: float32/float64 for floats, int64 for the rest (warp shuffles
    move only 32- and 64-bit values)."""
    if dtype.kind == "f":
        return np.dtype(np.float64 if dtype == np.float64 else np.float32)
    return np.dtype(np.int64)


def _start(kind: str, dtype: np.dtype):
    if kind == "sum":
        return 0
    low, high = (-np.inf, np.inf) if dtype.kind == "f" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    return low if kind == "max" else high


def _axes(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (numbers.Integral,)) else tuple(axis)
    return tuple(sorted({int(a) % max(ndim, 1) for a in axes}))


def reduce(x: CudaArray, kind: str, axis=None, keepdims: bool = False, dtype=None) -> CudaArray:
    """``kind`` ('sum', 'max' or 'min') of ``x`` over ``axis`` (None: all), NumPy's result dtype or ``dtype``.

    One kernel launch: a single reduced axis is read in place; several are first moved last and
    made contiguous, so that one launch reduces their product.
    """
    axes = _axes(axis, x.ndim)
    if dtype is None:
        dtype = np.add.reduce(np.zeros(1, x.dtype)).dtype if kind == "sum" else x.dtype
    dtype = np.dtype(dtype)
    kept_shape = tuple(1 if d in axes else s for d, s in enumerate(x.shape))
    if kind != "sum" and x.size == 0:
        raise ValueError(f"zero-size array to reduction operation {kind}imum which has no identity")
    if not axes:
        return x.astype(dtype)
    kept = [d for d in range(x.ndim) if d not in axes]
    if len(axes) == 1:
        source, dim = x, axes[0]
    else:
        moved = x.transpose(kept + list(axes))
        source = moved.reshape(tuple(x.shape[d] for d in kept) + (math.prod(x.shape[d] for d in axes),))
        dim = len(kept)
    acc = _accumulator(dtype if kind == "sum" else x.dtype)
    out = CudaArray.empty(source.shape[:dim] + (1,) + source.shape[dim + 1:], acc)
    if out.size:
        _REDUCERS[kind](out.storage, out.shape, out.strides, source.storage, source.shape, source.strides, dim,
                        _start(kind, acc))
    out = out.reshape(kept_shape if keepdims else tuple(x.shape[d] for d in kept))
    return out.astype(dtype, copy=False)


def _argreduce(x: CudaArray, kind: str, axis=None, keepdims: bool = False) -> CudaArray:
    """Index of the first largest (or smallest) value along ``axis``: the extreme, then the least index holding it."""
    if axis is None:
        return _argreduce(x.reshape(-1), kind, 0, False).reshape((1,) * x.ndim if keepdims else ())
    axis = int(axis) % max(x.ndim, 1)
    extreme = reduce(x, kind, axis, keepdims=True)
    positions = on_device(np.arange(x.shape[axis]).reshape((-1,) + (1,) * (x.ndim - axis - 1)))
    candidates = where(x == extreme, positions, x.shape[axis])
    return reduce(candidates, "min", axis, keepdims).astype(np.int64, copy=False)


def _mean(x: CudaArray, axis=None, dtype=None, keepdims: bool = False, out=None) -> CudaArray:
    count = math.prod(x.shape[d] for d in _axes(axis, x.ndim))
    result_dtype = np.dtype(dtype) if dtype is not None else np.mean(np.zeros(1, x.dtype)).dtype
    total = reduce(x, "sum", axis, keepdims, _accumulator(result_dtype))
    return (total / count if count else total * np.nan).astype(result_dtype, copy=False)


def _var(x: CudaArray, axis=None, dtype=None, keepdims: bool = False, ddof=0, out=None) -> CudaArray:
    count = math.prod(x.shape[d] for d in _axes(axis, x.ndim))
    result_dtype = np.dtype(dtype) if dtype is not None else np.var(np.zeros(2, x.dtype)).dtype
    centered = x - _mean(x, axis, result_dtype, keepdims=True)
    total = reduce(centered * centered, "sum", axis, keepdims, _accumulator(result_dtype))
    return (total / (count - ddof)).astype(result_dtype, copy=False)


def _reduction(kind: str):
    def run(x, axis=None, dtype=None, out=None, keepdims=False, **unused):
        return reduce(on_device(x), kind, axis, keepdims, dtype)

    return run


def _logical(kind: str):
    def run(x, axis=None, out=None, keepdims=False, **unused):
        return reduce(on_device(x) != 0, kind, axis, keepdims, np.int64).astype(np.bool_)

    return run


# -- elementwise selection and copies -------------------------------------------------------------


@cuda.jit
def _where_kernel(out, out_shape, out_strides, c, c_shape, c_strides, a, a_shape, a_strides, b, b_shape, b_strides):
    """``out = a if c else b`` element by element, all three broadcast to ``out_shape``."""
    for ordinal in range(cuda.grid(1), primitives.shape_size(out_shape), cuda.gridsize(1)):
        position = primitives.broadcast_position(ordinal, out_shape, out_shape, out_strides)
        if c[primitives.broadcast_position(ordinal, out_shape, c_shape, c_strides)]:
            out[position] = a[primitives.broadcast_position(ordinal, out_shape, a_shape, a_strides)]
        else:
            out[position] = b[primitives.broadcast_position(ordinal, out_shape, b_shape, b_strides)]


def where(condition, a, b) -> CudaArray:
    """``np.where(condition, a, b)`` with broadcasting; the dtype is NumPy's for ``a`` and ``b``."""
    dtype = np.result_type(*(np.empty(0, x.dtype) if isinstance(x, CudaArray) else x for x in (a, b)))
    operands = [on_device(condition, np.bool_), on_device(a, dtype), on_device(b, dtype)]
    shape = np.broadcast_shapes(*(x.shape for x in operands))
    out = CudaArray.empty(shape, dtype)
    if out.size:
        parts = [primitives.launch_tuple(p) if isinstance(p, tuple) else p
                 for x in operands for p in (x.storage, x.shape, x.strides)]
        _where_kernel[blocks_for(out.size), THREADS](out.storage, primitives.launch_tuple(out.shape),
                                                     primitives.launch_tuple(out.strides), *parts)
    return out


def _filled(like, fill, dtype=None, shape=None) -> CudaArray:
    shape = like.shape if shape is None else ((shape,) if isinstance(shape, numbers.Integral) else tuple(shape))
    out = CudaArray.empty(shape, like.dtype if dtype is None else dtype)
    return out if fill is None else copy_into(out, fill)


def _concatenate(arrays, axis=0, out=None, dtype=None, casting=None) -> CudaArray:
    arrays = [on_device(a) for a in arrays]
    axis = int(axis) % arrays[0].ndim
    result_dtype = dtype or np.result_type(*(np.empty(0, a.dtype) for a in arrays))
    shape = list(arrays[0].shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    result, start = CudaArray.empty(shape, result_dtype), 0
    for a in arrays:
        result[(slice(None),) * axis + (slice(start, start + a.shape[axis]),)] = a
        start += a.shape[axis]
    return result


def _stack(arrays, axis=0, out=None, dtype=None, casting=None) -> CudaArray:
    arrays = [on_device(a) for a in arrays]
    axis = int(axis) % (arrays[0].ndim + 1)
    return _concatenate([a.reshape(a.shape[:axis] + (1,) + a.shape[axis:]) for a in arrays], axis, dtype=dtype)


def _moveaxis(x, source, destination) -> CudaArray:
    source = [int(s) % x.ndim for s in np.atleast_1d(source)]
    destination = [int(d) % x.ndim for d in np.atleast_1d(destination)]
    order = [d for d in range(x.ndim) if d not in source]
    for dest, src in sorted(zip(destination, source)):
        order.insert(dest, src)
    return x.transpose(order)


def _squeeze(x, axis=None) -> CudaArray:
    axes = [d for d, s in enumerate(x.shape) if s == 1] if axis is None else _axes(axis, x.ndim)
    return x.reshape(tuple(s for d, s in enumerate(x.shape) if d not in axes))


def _expand_dims(x, axis) -> CudaArray:
    axes = _axes(axis, x.ndim + (1 if isinstance(axis, numbers.Integral) else len(axis)))
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return x.reshape(tuple(shape))


def _clip(x, a_min=None, a_max=None, out=None, **unused) -> CudaArray:
    result = x if a_min is None else np.maximum(x, a_min)
    return result if a_max is None else np.minimum(result, a_max)


FUNCTIONS = {
    np.sum: _reduction("sum"),
    np.amax: _reduction("max"),
    np.max: _reduction("max"),
    np.amin: _reduction("min"),
    np.min: _reduction("min"),
    np.any: _logical("max"),
    np.all: _logical("min"),
    np.mean: _mean,
    np.var: _var,
    np.count_nonzero: lambda x, axis=None, keepdims=False: reduce(on_device(x) != 0, "sum", axis, keepdims, np.int64),
    np.argmax: lambda x, axis=None, out=None, keepdims=False: _argreduce(x, "max", axis, keepdims),
    np.argmin: lambda x, axis=None, out=None, keepdims=False: _argreduce(x, "min", axis, keepdims),
    np.where: where,
    np.clip: _clip,
    np.concatenate: _concatenate,
    np.stack: _stack,
    np.broadcast_to: lambda x, shape, subok=False: on_device(x).broadcast_to(shape),
    np.transpose: lambda x, axes=None: x.transpose(*(axes or ())),
    np.swapaxes: lambda x, axis1, axis2: x.swapaxes(axis1, axis2),
    np.moveaxis: _moveaxis,
    np.reshape: lambda x, shape=None, order="C", newshape=None, copy=None: x.reshape(shape or newshape),
    np.squeeze: _squeeze,
    np.expand_dims: _expand_dims,
    np.ravel: lambda x, order="C": x.reshape(-1),
    np.ascontiguousarray: lambda x, dtype=None, like=None: (x if x.is_contiguous() else x.copy()).astype(
        dtype or x.dtype, copy=False),
    np.copy: lambda x, order="K", subok=False: x.copy(),
    np.zeros_like: lambda x, dtype=None, order="K", subok=True, shape=None, device=None: _filled(x, 0, dtype, shape),
    np.ones_like: lambda x, dtype=None, order="K", subok=True, shape=None, device=None: _filled(x, 1, dtype, shape),
    np.empty_like: lambda x, dtype=None, order="K", subok=True, shape=None, device=None: _filled(x, None, dtype,
                                                                                                 shape),
    np.full_like: lambda x, fill_value, dtype=None, order="K", subok=True, shape=None, device=None: _filled(
        x, fill_value, dtype, shape),
    np.shape: lambda x: x.shape,
    np.ndim: lambda x: x.ndim,
    np.size: lambda x, axis=None: x.size if axis is None else x.shape[axis],
    np.result_type: lambda *values: np.result_type(*(np.empty(0, v.dtype) if isinstance(v, CudaArray) else v
                                                     for v in values)),
}


def array_function(func, args: tuple, kwargs: dict):
    """``func(*args, **kwargs)`` for the NumPy functions in ``FUNCTIONS`` (NEP 18)."""
    if func not in FUNCTIONS:
        raise NotImplementedError(f"np.{func.__name__} is not implemented for CUDA arrays in dslearn; "
                                  "move the tensor to the CPU with .cpu() for it")
    return FUNCTIONS[func](*args, **kwargs)
