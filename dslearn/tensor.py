"""``Tensor``: an n-dimensional array that remembers how it was computed.

A Tensor holds its data (a NumPy array on the CPU), a flag ``requires_grad``, the gradient
``grad`` that ``backward()`` fills in, and ``_ctx``: the graph node of the op that produced
it (None for leaves). Every method that computes is a thin call into ``dslearn.ops``, where
each op's forward and backward sit side by side.

May import: numpy, dslearn.dtypes, dslearn.device, and (for methods) dslearn.ops,
dslearn.autograd.engine, dslearn.creation, dslearn.random and dslearn.interop.

>>> import dslearn as ds
>>> x = ds.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> y = (x * x).sum()
>>> y.backward()
>>> x.grad
tensor([[2., 4.],
        [6., 8.]])
"""

from __future__ import annotations

import numbers

import numpy as np

from dslearn import dtypes
from dslearn.device import CPU, Device, as_device


class Tensor:
    """A multi-dimensional array with reverse-mode automatic differentiation.

    ``ds.Tensor(data)`` makes a tensor of the default float dtype, as ``torch.Tensor`` does;
    use ``ds.tensor(data)`` to keep the data's own dtype.

    >>> import dslearn as ds
    >>> ds.Tensor([1, 2, 3])
    tensor([1., 2., 3.])
    """

    __slots__ = ("_data", "_ctx", "requires_grad", "grad", "_version", "_hooks", "_retains_grad", "__weakref__")
    __array_priority__ = 1000  # ndarray + Tensor defers to Tensor.__radd__

    # Called with the tensor whenever Python needs its *value* (bool(), item(), numpy()...).
    # The JIT tracer sets it to catch data-dependent control flow.
    _value_access_hook = None

    def __init__(self, data=None, *, dtype=None, device=None, requires_grad: bool = False) -> None:
        from dslearn.creation import array_from_data

        if data is None:
            data = []
        array = array_from_data(data, dtypes.get_dtype(dtype) if dtype is not None else dtypes.get_default_dtype())
        self._data, self._ctx, self.requires_grad, self.grad = array, None, False, None
        self._version, self._hooks, self._retains_grad = 0, None, False
        if device is not None and as_device(device) != CPU:
            moved = self.to(device)
            self._data = moved._data
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad: bool = False) -> Tensor:
        """Wrap an array (no copy, no checks): the fast path every op uses."""
        if type(data) is not np.ndarray and isinstance(data, (np.generic, numbers.Number)):
            data = np.asarray(data)
        t = object.__new__(cls)
        t._data, t._ctx, t.requires_grad, t.grad = data, None, requires_grad, None
        t._version, t._hooks, t._retains_grad = 0, None, False
        return t

    # -- basic properties --------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension, a tuple of ints."""
        return self._data.shape

    def size(self, dim: int | None = None):
        """The shape, or the size of one dimension."""
        if dim is None:
            return self._data.shape
        return self._data.shape[_ops.normalize_dim(dim, self.ndim, "size")]

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._data.ndim

    def dim(self) -> int:
        """Number of dimensions (PyTorch spelling)."""
        return self._data.ndim

    def numel(self) -> int:
        """Number of elements."""
        return self._data.size

    @property
    def dtype(self) -> dtypes.DType:
        """Element type, e.g. ``dslearn.float32``."""
        return dtypes.from_numpy_dtype(self._data.dtype)

    @property
    def device(self) -> Device:
        """Where the data lives."""
        return CPU if type(self._data) is np.ndarray else as_device(self._data.device)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (parameters, inputs)."""
        return self._ctx is None

    @property
    def grad_fn(self):
        """The graph node that produced this tensor, or None."""
        return self._ctx

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f" or self._data.dtype == dtypes.bfloat16.np

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's storage, cut from the graph."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value, dtype=self._data.dtype)

    @property
    def T(self) -> Tensor:
        """Dimensions reversed (for 2-D tensors, the transpose)."""
        return _ops.permute(self, tuple(range(self.ndim - 1, -1, -1)))

    @property
    def mT(self) -> Tensor:
        """The last two dimensions swapped."""
        return _ops.transpose(self, -2, -1)

    # -- autograd ----------------------------------------------------------------------------

    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into every leaf's ``.grad``."""
        _engine.backward([self], None if gradient is None else [gradient], retain_graph, create_graph)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Start (or stop) recording ops on this leaf; returns self."""
        if requires_grad and not (self.is_floating_point()):
            raise RuntimeError(f"requires_grad_: only floating point tensors can require gradients, got {self.dtype}")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach() instead")
        self.requires_grad = requires_grad
        return self

    def detach(self) -> Tensor:
        """A tensor with the same data (shared) and no history."""
        return Tensor._make(self._data)

    def detach_(self) -> Tensor:
        """Cut this tensor from its history in place."""
        self._ctx, self.requires_grad = None, False
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    def register_hook(self, hook) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        >>> import dslearn as ds
        >>> x = ds.ones(2, requires_grad=True)
        >>> h = x.register_hook(lambda g: g * 10)
        >>> x.sum().backward(); x.grad
        tensor([10., 10.])
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = {}
        return RemovableHandle(self._hooks, hook)

    # -- conversion ---------------------------------------------------------------------------

    def item(self):
        """The value of a one-element tensor as a Python number."""
        _notify_value_access(self, "item()")
        if self._data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        value = self._host_array().reshape(())
        return float(value) if value.dtype == dtypes.bfloat16.np else value.item()

    def tolist(self):
        """Nested Python lists of the values."""
        _notify_value_access(self, "tolist()")
        return self._host_array().tolist()

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared memory on the CPU)."""
        _notify_value_access(self, "numpy()")
        if self.requires_grad:
            raise RuntimeError("numpy(): can't call numpy() on a tensor that requires grad; "
                               "use tensor.detach().numpy()")
        return self._host_array()

    def _host_array(self) -> np.ndarray:
        return self._data if type(self._data) is np.ndarray else self._data.to_numpy()

    def __array__(self, dtype=None, copy=None):
        _notify_value_access(self, "conversion to a NumPy array")
        array = self._host_array()
        return array if dtype is None else array.astype(dtype, copy=False)

    @staticmethod
    def from_numpy(array: np.ndarray) -> Tensor:
        """Wrap a NumPy array, sharing its memory (like ``torch.from_numpy``)."""
        from dslearn.creation import from_numpy

        return from_numpy(array)

    @staticmethod
    def from_torch(tensor) -> Tensor:
        """A dslearn tensor sharing a CPU torch tensor's memory."""
        from dslearn.interop import from_torch

        return from_torch(tensor)

    def to_torch(self):
        """A torch tensor sharing this tensor's memory (CPU)."""
        from dslearn.interop import to_torch

        return to_torch(self)

    def __dlpack__(self, *args, **kwargs):
        if self.requires_grad:
            raise RuntimeError("__dlpack__: can't export a tensor that requires grad; detach() it first")
        if self._data.dtype == dtypes.bfloat16.np:
            raise TypeError("__dlpack__: NumPy cannot export bfloat16 through DLPack; use to_torch() instead")
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    def to(self, *args, dtype=None, device=None, copy: bool = False) -> Tensor:
        """Convert dtype and/or device: ``t.to(ds.float64)``, ``t.to('cpu')``, ``t.to(other)``."""
        for arg in args:
            if isinstance(arg, Tensor):
                dtype, device = arg.dtype, arg.device
            elif isinstance(arg, (str, Device)) and str(arg).split(":")[0] in ("cpu", "cuda"):
                device = arg
            else:
                dtype = arg
        out = self
        if dtype is not None and dtypes.get_dtype(dtype) != self.dtype:
            out = _ops.cast(out, dtypes.get_dtype(dtype))
        if device is not None and as_device(device) != out.device:
            out = _ops.to_device(out, as_device(device))
        if copy and out is self:
            out = _ops.clone(self)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None) -> Tensor:
        return self.to(f"cuda:{device}" if isinstance(device, int) else (device or "cuda"))

    def type(self, dtype=None):
        """With no argument, the type name (``'dslearn.float32'``); with one, a cast."""
        return repr(self.dtype) if dtype is None else self.to(dtype)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def half(self) -> Tensor:
        return self.to(dtypes.float16)

    def bfloat16(self) -> Tensor:
        return self.to(dtypes.bfloat16)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool_)

    # -- Python protocol ------------------------------------------------------------------------

    def __repr__(self) -> str:
        array = self._host_array()
        if array.dtype == dtypes.bfloat16.np:
            array = array.astype(np.float32)
        body = np.array2string(array, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, precision=4)
        extras = []
        default_dtypes = (dtypes.get_default_dtype().np, np.dtype(np.int64), np.dtype(np.bool_))
        if self._data.dtype not in default_dtypes or self._data.size == 0:
            extras.append(f"dtype={self.dtype!r}")
        if self.device != CPU:
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{_camel(self._ctx.fn.name)}Backward>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __bool__(self) -> bool:
        _notify_value_access(self, "bool()")
        if self._data.size != 1:
            raise RuntimeError(f"bool(): the truth value of a tensor with {self._data.size} elements is ambiguous")
        return bool(self._host_array().reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    __hash__ = object.__hash__

    # -- arithmetic -------------------------------------------------------------------------------

    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __floordiv__(self, other):
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other):
        return _ops.floor_divide(other, self)

    def __mod__(self, other):
        return _ops.remainder(self, other)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __invert__(self):
        return _ops.logical_not(self)

    def __and__(self, other):
        return _ops.logical_and(self, other)

    def __or__(self, other):
        return _ops.logical_or(self, other)

    def __xor__(self, other):
        return _ops.logical_xor(self, other)

    def __eq__(self, other):
        return _ops.eq(self, other)

    def __ne__(self, other):
        return _ops.ne(self, other)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __iadd__(self, other):
        return _ops.inplace(self, _ops.add, other)

    def __isub__(self, other):
        return _ops.inplace(self, _ops.sub, other)

    def __imul__(self, other):
        return _ops.inplace(self, _ops.mul, other)

    def __itruediv__(self, other):
        return _ops.inplace(self, _ops.div, other)

    def __getitem__(self, key):
        return _ops.getitem(self, key)

    def __setitem__(self, key, value) -> None:
        _ops.setitem(self, key, value)

    # -- named methods: each one line into dslearn.ops ------------------------------------------

    def add(self, other, alpha=1):
        return _ops.add(self, other if alpha == 1 else _ops.mul(other, alpha))

    def sub(self, other, alpha=1):
        return _ops.sub(self, other if alpha == 1 else _ops.mul(other, alpha))

    def mul(self, other):
        return _ops.mul(self, other)

    def div(self, other):
        return _ops.div(self, other)

    def pow(self, exponent):
        return _ops.pow(self, exponent)

    def matmul(self, other):
        return _ops.matmul(self, other)

    def neg(self):
        return _ops.neg(self)

    def abs(self):
        return _ops.abs(self)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def rsqrt(self):
        return _ops.rsqrt(self)

    def sin(self):
        return _ops.sin(self)

    def cos(self):
        return _ops.cos(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def square(self):
        return _ops.mul(self, self)

    def sign(self):
        return _ops.sign(self)

    def reciprocal(self):
        return _ops.div(1.0, self)

    def clamp(self, min=None, max=None):
        return _ops.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return _ops.maximum(self, other)

    def minimum(self, other):
        return _ops.minimum(self, other)

    def eq(self, other):
        return _ops.eq(self, other)

    def ne(self, other):
        return _ops.ne(self, other)

    def lt(self, other):
        return _ops.lt(self, other)

    def le(self, other):
        return _ops.le(self, other)

    def gt(self, other):
        return _ops.gt(self, other)

    def ge(self, other):
        return _ops.ge(self, other)

    def isnan(self):
        return _ops.isnan(self)

    def isfinite(self):
        return _ops.isfinite(self)

    def logical_not(self):
        return _ops.logical_not(self)

    def sum(self, dim=None, keepdim=False, dtype=None):
        return _ops.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim=None, keepdim=False):
        return _ops.mean(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, unbiased=None, correction=None):
        return _ops.var(self, dim, keepdim, unbiased=unbiased, correction=correction)

    def std(self, dim=None, keepdim=False, unbiased=None, correction=None):
        return _ops.std(self, dim, keepdim, unbiased=unbiased, correction=correction)

    def max(self, dim=None, keepdim=False):
        return _ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return _ops.min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return _ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return _ops.amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _ops.argmin(self, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return _ops.logsumexp(self, dim, keepdim)

    def norm(self, p=2, dim=None, keepdim=False):
        return _ops.norm(self, p, dim, keepdim)

    def all(self, dim=None, keepdim=False):
        return _ops.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return _ops.any(self, dim, keepdim)

    def softmax(self, dim):
        return _ops.softmax(self, dim)

    def log_softmax(self, dim):
        return _ops.log_softmax(self, dim)

    def reshape(self, *shape):
        return _ops.reshape(self, _shape_args(shape))

    def view(self, *shape):
        return _ops.view(self, _shape_args(shape))

    def view_as(self, other):
        return _ops.view(self, other.shape)

    def reshape_as(self, other):
        return _ops.reshape(self, other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.flatten(self, start_dim, end_dim)

    def transpose(self, dim0, dim1):
        return _ops.transpose(self, dim0, dim1)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t(): expects a tensor with <= 2 dimensions, got {self.ndim}")
        return self.T

    def permute(self, *dims):
        return _ops.permute(self, _shape_args(dims))

    def expand(self, *shape):
        return _ops.expand(self, _shape_args(shape))

    def expand_as(self, other):
        return _ops.expand(self, other.shape)

    def squeeze(self, dim=None):
        return _ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _ops.unsqueeze(self, dim)

    def split(self, split_size_or_sections, dim=0):
        return _ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _ops.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return _ops.unbind(self, dim)

    def select(self, dim, index):
        return _ops.select(self, dim, index)

    def contiguous(self):
        return _ops.contiguous(self)

    def clone(self):
        return _ops.clone(self)

    def repeat(self, *sizes):
        return _ops.repeat(self, _shape_args(sizes))

    def gather(self, dim, index):
        return _ops.gather(self, dim, index)

    def scatter_add(self, dim, index, src):
        return _ops.scatter_add(self, dim, index, src)

    def index_select(self, dim, index):
        return _ops.index_select(self, dim, index)

    def masked_fill(self, mask, value):
        return _ops.masked_fill(self, mask, value)

    def where(self, condition, other):
        return _ops.where(condition, self, other)

    # -- in-place methods (see ops.inplace for how they meet autograd) ---------------------------

    def add_(self, other, alpha=1):
        return _ops.inplace(self, _ops.add, other if alpha == 1 else _ops.mul(other, alpha))

    def sub_(self, other, alpha=1):
        return _ops.inplace(self, _ops.sub, other if alpha == 1 else _ops.mul(other, alpha))

    def mul_(self, other):
        return _ops.inplace(self, _ops.mul, other)

    def div_(self, other):
        return _ops.inplace(self, _ops.div, other)

    def clamp_(self, min=None, max=None):
        return _ops.inplace(self, _ops.clamp, min, max)

    def masked_fill_(self, mask, value):
        return _ops.inplace(self, _ops.masked_fill, mask, value)

    def copy_(self, src):
        return _ops.inplace(self, _ops.copy_from, src)

    def fill_(self, value):
        return _ops.inplace(self, _ops.full_like_of, value)

    def zero_(self):
        return _ops.inplace(self, _ops.full_like_of, 0)

    def uniform_(self, low=0.0, high=1.0, generator=None):
        from dslearn.random import uniform_like

        return _ops.inplace(self, uniform_like, low, high, generator)

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from dslearn.random import normal_like

        return _ops.inplace(self, normal_like, mean, std, generator)


class RemovableHandle:
    """Returned by ``register_*hook``; ``handle.remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, registry: dict, hook) -> None:
        RemovableHandle._next_id += 1
        self.registry, self.id = registry, RemovableHandle._next_id
        registry[self.id] = hook

    def remove(self) -> None:
        self.registry.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _notify_value_access(t: Tensor, what: str) -> None:
    if Tensor._value_access_hook is not None:
        Tensor._value_access_hook(t, what)


def _shape_args(args: tuple) -> tuple:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def is_tensor(obj) -> bool:
    """True if ``obj`` is a dslearn Tensor."""
    return isinstance(obj, Tensor)


from dslearn import ops as _ops  # noqa: E402  (methods above call into ops; ops imports Tensor)
from dslearn.autograd import engine as _engine  # noqa: E402
