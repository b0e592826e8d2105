"""``CudaArray``: an n-dimensional array in GPU memory that NumPy code can use as if it were an ndarray.

A CudaArray is what the CPU kernels call (storage, shape, strides): a flat Numba device array
whose first element is the array's first element, a shape, and strides counted in elements.
Views (``reshape`` of a contiguous array, ``transpose``, ``broadcast_to``, basic indexing) share
the storage and change only shape and strides, exactly as NumPy's do.

NumPy's dispatch protocols make the rest work: ``np.exp(x)``, ``x + y`` and ``np.add(x, y,
out=x)`` arrive in ``__array_ufunc__`` (NEP 13), and ``np.sum``, ``np.where``, ``np.matmul``...
in ``__array_function__`` (NEP 18); both hand over to ``dslearn.kernels.cuda.numpy_api``, which
launches kernels and returns new CudaArrays. Nothing is copied to the host behind the caller's
back: ``to_numpy()`` is the one way back, and ``np.asarray(x)`` is an error.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> x = CudaArray.from_numpy(np.arange(6.0).reshape(2, 3))
>>> y = np.exp(x.T) + 1
>>> type(y).__name__, y.shape, y.to_numpy().round(2)[0]
('CudaArray', (3, 2), array([ 2.  , 21.09]))
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from dslearn.kernels.cuda.primitives import contiguous_strides
from numba import cuda
from numpy.lib.mixins import NDArrayOperatorsMixin

SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                                np.float16, np.float32, np.float64))


class CudaArray(NDArrayOperatorsMixin):
    """An array in GPU memory: ``storage`` (a flat Numba device array), ``shape`` and ``strides`` (in elements).

    >>> import numpy as np
    >>> x = CudaArray.from_numpy(np.arange(4, dtype=np.float32))
    >>> x, x.device
    (CudaArray([0., 1., 2., 3.], dtype=float32), 'cuda:0')
    """

    __slots__ = ("storage", "shape", "strides", "dtype")
    __array_priority__ = 2000  # ndarray + CudaArray asks CudaArray first
    device = "cuda:0"  # dslearn uses one GPU

    def __init__(self, storage, shape: tuple[int, ...], strides: tuple[int, ...]) -> None:
        self.storage, self.shape, self.strides = storage, tuple(shape), tuple(strides)
        self.dtype = np.dtype(storage.dtype)

    # -- making and reading arrays --------------------------------------------------------------

    @classmethod
    def empty(cls, shape, dtype) -> CudaArray:
        """An uninitialised contiguous array."""
        shape, dtype = tuple(int(s) for s in shape), check_dtype(dtype)
        return cls(cuda.device_array(math.prod(shape), dtype), shape, contiguous_strides(shape))

    @classmethod
    def from_numpy(cls, array) -> CudaArray:
        """A copy of a NumPy array (or anything ``np.asarray`` takes) in GPU memory."""
        array = np.asarray(array)
        check_dtype(array.dtype)
        flat = np.ascontiguousarray(array).reshape(-1)
        storage = cuda.to_device(flat) if flat.size else cuda.device_array(0, flat.dtype)
        return cls(storage, array.shape, contiguous_strides(array.shape))

    def to_numpy(self) -> np.ndarray:
        """A NumPy copy of the values (waits for the kernels that compute them)."""
        if self.size == 0:
            return np.empty(self.shape, self.dtype)
        source = self if self.is_contiguous() else self.copy()
        return source.storage[:self.size].copy_to_host().reshape(self.shape)

    def device_array(self):
        """The values as a C-contiguous Numba device array of ``shape`` (at least 1-D; a copy if need be)."""
        source = self if self.is_contiguous() else self.copy()
        return source.storage[:self.size].reshape(self.shape or (1,))

    @classmethod
    def from_device_array(cls, array) -> CudaArray:
        """Wrap a C-contiguous Numba device array (no copy)."""
        return cls(array.reshape(array.size) if array.ndim != 1 else array, array.shape,
                   contiguous_strides(array.shape))

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a CudaArray lives in GPU memory: call .to_numpy() to copy it to the host "
                        "(or .cpu() on the tensor that holds it)")

    def item(self):
        """The value of a one-element array as a Python number (copied from the GPU)."""
        return self.to_numpy().item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of an array with {self.size} elements is ambiguous")
        return bool(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.to_numpy(), separator=", ", prefix="CudaArray(")
        return f"CudaArray({body}, dtype={self.dtype})"

    # -- properties -------------------------------------------------------------------------------

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def T(self) -> CudaArray:
        return self.transpose()

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def is_contiguous(self) -> bool:
        """Row-major and gap-free (the stride of a size-1 dimension does not matter)."""
        expected = 1
        for size, stride in zip(reversed(self.shape), reversed(self.strides)):
            if size != 1 and stride != expected:
                return False
            expected *= size
        return True

    # -- views --------------------------------------------------------------------------------------

    def _view(self, offset: int, shape, strides) -> CudaArray:
        return CudaArray(self.storage[offset:] if offset else self.storage, tuple(shape), tuple(strides))

    def reshape(self, *shape, order: str = "C") -> CudaArray:
        """A view with another shape when the array is contiguous, else a reshaped copy."""
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        shape = _resolve_shape(tuple(int(s) for s in shape), self.size)
        source = self if self.is_contiguous() else self.copy()
        return CudaArray(source.storage, shape, contiguous_strides(shape))

    def ravel(self) -> CudaArray:
        return self.reshape(-1)

    def transpose(self, *axes) -> CudaArray:
        """A view with the dimensions permuted (reversed when no axes are given)."""
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(range(self.ndim))[::-1] if not axes else tuple(int(a) % max(self.ndim, 1) for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"transpose: axes {axes} do not match an array of shape {self.shape}")
        return CudaArray(self.storage, tuple(self.shape[a] for a in axes), tuple(self.strides[a] for a in axes))

    def swapaxes(self, first: int, second: int) -> CudaArray:
        axes = list(range(self.ndim))
        axes[first], axes[second] = axes[second], axes[first]
        return self.transpose(axes)

    def broadcast_to(self, shape) -> CudaArray:
        """A read-only-in-spirit view repeating size-1 dimensions (stride 0), NumPy's rules."""
        shape = tuple(int(s) for s in shape)
        lead = len(shape) - self.ndim
        if lead < 0 or any(s not in (1, t) for s, t in zip(self.shape, shape[lead:])):
            raise ValueError(f"operands could not be broadcast together: shape {self.shape} to {shape}")
        strides = (0,) * lead + tuple(0 if s == 1 and t != 1 else st
                                      for s, t, st in zip(self.shape, shape[lead:], self.strides))
        return CudaArray(self.storage, shape, strides)

    def __getitem__(self, key) -> CudaArray:
        offset, shape, strides = _basic_index(self.shape, self.strides, key)
        return self._view(offset, shape, strides)

    def __setitem__(self, key, value) -> None:
        from dslearn.kernels.cuda.numpy_api import copy_into

        copy_into(self[key], value)

    # -- conversions ----------------------------------------------------------------------------------

    def copy(self) -> CudaArray:
        """A contiguous copy."""
        from dslearn.kernels.cuda.numpy_api import copy_into

        out = CudaArray.empty(self.shape, self.dtype)
        copy_into(out, self)
        return out

    def astype(self, dtype, copy: bool = True) -> CudaArray:
        """The values converted to ``dtype`` (itself when nothing changes and ``copy`` is False)."""
        from dslearn.kernels.cuda.numpy_api import copy_into

        dtype = np.dtype(dtype)
        if dtype == self.dtype and not copy:
            return self
        out = CudaArray.empty(self.shape, dtype)
        copy_into(out, self)
        return out

    # -- reductions (NumPy's method spellings) ------------------------------------------------------

    def sum(self, axis=None, dtype=None, keepdims: bool = False) -> CudaArray:
        return np.sum(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis=None, dtype=None, keepdims: bool = False) -> CudaArray:
        return np.mean(self, axis=axis, dtype=dtype, keepdims=keepdims)

    def max(self, axis=None, keepdims: bool = False) -> CudaArray:
        return np.amax(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False) -> CudaArray:
        return np.amin(self, axis=axis, keepdims=keepdims)

    def any(self, axis=None, keepdims: bool = False) -> CudaArray:
        return np.any(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims: bool = False) -> CudaArray:
        return np.all(self, axis=axis, keepdims=keepdims)

    # -- NumPy's dispatch protocols -----------------------------------------------------------------

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from dslearn.kernels.cuda.numpy_api import array_ufunc

        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from dslearn.kernels.cuda.numpy_api import array_function

        return array_function(func, args, kwargs)


def check_dtype(dtype) -> np.dtype:
    """``dtype`` if GPU arrays can hold it; TypeError otherwise (bfloat16: NumPy's GPU bridge lacks it)."""
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"CUDA arrays hold {', '.join(str(d) for d in SUPPORTED_DTYPES)}; got {dtype}")
    return dtype


def _resolve_shape(shape: tuple[int, ...], size: int) -> tuple[int, ...]:
    """``shape`` with its one ``-1`` filled in; ValueError when it does not hold ``size`` elements."""
    known = math.prod(s for s in shape if s != -1)
    if shape.count(-1) == 1 and known and size % known == 0:
        shape = tuple(size // known if s == -1 else s for s in shape)
    if shape.count(-1) or math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return shape


def _basic_index(shape, strides, key) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(offset, shape, strides) of ``array[key]`` for a basic index: ints, slices, None and Ellipsis."""
    key = key if isinstance(key, tuple) else (key,)
    for part in key:
        if not (part is None or part is Ellipsis or isinstance(part, (slice, numbers.Integral))):
            raise NotImplementedError(f"CUDA arrays take basic indices (ints, slices, None, ...); got a "
                                      f"{type(part).__name__} index (move the tensor to the CPU for advanced indexing)")
    used = sum(1 for part in key if part is not None and part is not Ellipsis)
    if used > len(shape):
        raise IndexError(f"too many indices for an array of shape {shape}")
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (len(shape) - used) + key[at + 1:]
    else:
        key = key + (slice(None),) * (len(shape) - used)
    offset, out_shape, out_strides, d = 0, [], [], 0
    for part in key:
        if part is None:
            out_shape.append(1)
            out_strides.append(0)
            continue
        size, stride = shape[d], strides[d]
        if isinstance(part, slice):
            start, stop, step = part.indices(size)
            if step < 0:
                raise NotImplementedError("CUDA arrays do not take negative slice steps (nor do PyTorch tensors)")
            offset += start * stride if stop > start else 0
            out_shape.append(len(range(start, stop, step)))
            out_strides.append(stride * step)
        else:
            index = int(part)
            if not -size <= index < size:
                raise IndexError(f"index {index} is out of bounds for axis {d} with size {size}")
            offset += (index % size) * stride
        d += 1
    return offset, tuple(out_shape), tuple(out_strides)
