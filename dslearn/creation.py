"""Making tensors: from data (``tensor``, ``from_numpy``), filled (``zeros``, ``ones``, ``full``,
``eye``), ranges (``arange``, ``linspace``), random (``rand``, ``randn``, ``randint``,
``randperm``) and ``*_like`` versions.

Every function takes ``dtype``, ``device`` and ``requires_grad`` keywords, as PyTorch's do. With
``device='cuda'``, ``zeros``, ``ones`` and ``full`` fill GPU memory directly; the others make their
values on the host and copy them over once (random numbers come from the host generator, so a
seed gives the same values on every device).

May import: numpy, dslearn.tensor, dslearn.dtypes, dslearn.device, dslearn.random, dslearn.backends.

>>> import dslearn as ds
>>> ds.zeros(2, 3).shape, ds.arange(5).dtype, ds.tensor([1.5]).dtype
((2, 3), dslearn.int64, dslearn.float32)
"""

from __future__ import annotations

import numbers

import numpy as np

from dslearn import backends, dtypes
from dslearn.device import CPU, as_device
from dslearn.random import Generator, numpy_generator
from dslearn.tensor import Tensor, _shape_args


def array_from_data(data, dtype: dtypes.DType | None) -> np.ndarray:
    """A NumPy array from nested lists, scalars, arrays or tensors; floats default to float32."""
    if isinstance(data, Tensor):
        array = data._host_array()
    elif type(data).__module__ == "torch":
        from dslearn.interop import torch_to_numpy

        array = torch_to_numpy(data)
    else:
        try:
            array = np.asarray(data)
        except ValueError as error:
            raise ValueError(f"tensor: cannot build a tensor from ragged data ({error})") from None
        if array.dtype == object:
            raise TypeError(f"tensor: cannot build a tensor from {type(data).__name__} holding "
                            f"{type(np.ravel(array)[0]).__name__} values")
        if array.dtype == np.float64 and dtype is None and not (isinstance(data, np.ndarray) or _is_np_float64(data)):
            dtype = dtypes.get_default_dtype()
        if array.dtype.kind in "US":
            raise TypeError(f"tensor: strings cannot be tensor values ({data!r:.60})")
    if dtype is not None:
        array = array.astype(dtype.np, copy=False)
    else:
        dtypes.from_numpy_dtype(array.dtype)  # refuse complex or other unsupported dtypes
    return array


def _is_np_float64(data) -> bool:
    return isinstance(data, np.floating) and data.dtype == np.float64


def tensor(data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``; Python floats become the default float dtype.

    >>> import dslearn as ds
    >>> ds.tensor([[1, 2], [3, 4]])
    tensor([[1, 2],
            [3, 4]])
    """
    dtype = dtypes.get_dtype(dtype) if dtype is not None else None
    array = np.array(array_from_data(data, dtype), copy=True)
    return _finish(array, device, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory when ``data`` is already a matching array or tensor."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    dtype = dtypes.get_dtype(dtype) if dtype is not None else None
    return _finish(array_from_data(data, dtype), device, False)


def from_numpy(array: np.ndarray) -> Tensor:
    """Wrap a NumPy array without copying (changes to one show in the other).

    >>> import numpy as np, dslearn as ds
    >>> a = np.zeros(2, dtype=np.float32); t = ds.from_numpy(a); a[0] = 7
    >>> t
    tensor([7., 0.])
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    dtypes.from_numpy_dtype(array.dtype)
    return Tensor._make(array)


def from_dlpack(obj) -> Tensor:
    """A tensor sharing memory with any object that implements ``__dlpack__``."""
    return Tensor._make(np.from_dlpack(obj))


def _finish(array: np.ndarray, device, requires_grad: bool) -> Tensor:
    if device is not None and as_device(device) != CPU:
        array = backends.move(array, as_device(device))
    out = Tensor._make(array)
    if requires_grad:
        out.requires_grad_(True)
    return out


def _filled(shape: tuple[int, ...], fill_value, dtype: dtypes.DType, device, requires_grad: bool) -> Tensor:
    """A tensor of ``shape`` holding ``fill_value`` everywhere, made on ``device`` directly."""
    if device is None or as_device(device) == CPU:
        return _finish(np.full(shape, fill_value, dtype.np), None, requires_grad)
    return _finish(backends.full(shape, fill_value, dtype.np, as_device(device)), None, requires_grad)


def _dtype(dtype, default=None) -> dtypes.DType:
    if dtype is None:
        return default or dtypes.get_default_dtype()
    return dtypes.get_dtype(dtype)


def _check_shape(shape, op: str) -> tuple[int, ...]:
    for s in shape:
        if not isinstance(s, (numbers.Integral)) or isinstance(s, bool) or s < 0:
            raise ValueError(f"{op}: sizes must be non-negative ints, got {tuple(shape)}")
    return tuple(int(s) for s in shape)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    shape = _check_shape(_shape_args(shape), "zeros")
    return _filled(shape, 0, _dtype(dtype), device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    shape = _check_shape(_shape_args(shape), "ones")
    return _filled(shape, 1, _dtype(dtype), device, requires_grad)


def empty(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of the given shape (filled with zeros here: uninitialised memory is a bug magnet)."""
    return zeros(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full(shape, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value``; its dtype follows the value when not given."""
    shape = _check_shape(_shape_args((shape,)) if isinstance(shape, (tuple, list)) else (shape,), "full")
    if dtype is None:
        dtype = dtypes.get_dtype(type(fill_value)) if isinstance(fill_value, (bool, int, float)) else None
    return _filled(shape, fill_value, _dtype(dtype), device, requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """The identity matrix (n x m)."""
    _check_shape((n, n if m is None else m), "eye")
    return _finish(np.eye(n, m, dtype=_dtype(dtype).np), device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in ``[start, end)``; int64 unless a bound or step is a float.

    >>> import dslearn as ds
    >>> ds.arange(3), ds.arange(0, 1, 0.25)
    (tensor([0, 1, 2]), tensor([0.  , 0.25, 0.5 , 0.75]))
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    floating = any(isinstance(v, float) for v in (start, end, step))
    default = dtypes.get_default_dtype() if floating else dtypes.int64
    return _finish(np.arange(start, end, step).astype(_dtype(dtype, default).np), device, requires_grad)


def linspace(start: float, end: float, steps: int, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive."""
    if steps < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    return _finish(np.linspace(start, end, steps).astype(_dtype(dtype).np), device, requires_grad)


def rand(*shape, generator: Generator | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform random values in ``[0, 1)``."""
    shape = _check_shape(_shape_args(shape), "rand")
    values = numpy_generator(generator).random(shape, dtype=np.float64)
    return _finish(values.astype(_dtype(dtype).np), device, requires_grad)


def randn(*shape, generator: Generator | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal random values."""
    shape = _check_shape(_shape_args(shape), "randn")
    values = numpy_generator(generator).standard_normal(shape)
    return _finish(values.astype(_dtype(dtype).np), device, requires_grad)


def randint(low: int, high: int | None = None, size=(), *, generator: Generator | None = None, dtype=None,
            device=None) -> Tensor:
    """Random integers in ``[low, high)``: ``randint(10, size=(3,))`` or ``randint(0, 10, (3,))``."""
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: empty range [{low}, {high})")
    shape = _check_shape(size if isinstance(size, (tuple, list)) else (size,), "randint")
    values = numpy_generator(generator).integers(low, high, size=shape)
    return _finish(values.astype(_dtype(dtype, dtypes.int64).np), device, False)


def randperm(n: int, *, generator: Generator | None = None, dtype=None, device=None) -> Tensor:
    """A random permutation of ``0..n-1``."""
    return _finish(numpy_generator(generator).permutation(n).astype(_dtype(dtype, dtypes.int64).np), device, False)


def _like(x: Tensor, dtype, device):
    return x.shape, dtype or x.dtype, device or x.device


def zeros_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(x: Tensor, fill_value, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(x, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(x: Tensor, *, generator: Generator | None = None, dtype=None, device=None,
              requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return rand(shape, generator=generator, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(x: Tensor, *, generator: Generator | None = None, dtype=None, device=None,
               requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like(x, dtype, device)
    return randn(shape, generator=generator, dtype=dtype, device=device, requires_grad=requires_grad)
