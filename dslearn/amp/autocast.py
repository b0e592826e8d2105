"""``autocast``: run the ops that tolerate it in float16 or bfloat16, and keep the rest in float32.

Inside ``with ds.autocast(dtype=ds.bfloat16):`` an op observer (see ``dslearn.autograd.function``)
looks at every op before it runs:

* matrix products and convolutions (``LOW_PRECISION_OPS``) compute in the low-precision dtype:
  their float32 inputs are rounded to it, as tensor cores see them;
* ops whose accuracy matters (``FLOAT32_OPS``: softmax, losses, norms, reductions, exp and log)
  compute in float32: float16 or bfloat16 inputs are widened first;
* every other op runs as it is.

The result of a recast op comes back in the dtype its inputs had, so the program around it never
sees a dtype change: in a float32 model, the low-precision work is exactly the rounding of the
inputs and outputs of its matrix products, and its gradients are rounded the same way in backward
(the cast's backward casts them). That is where float16's narrow range bites: a gradient below
6e-8 becomes zero, which is what ``GradScaler`` prevents. Casts are ordinary differentiable ops,
visible to the profiler; ops that a backward pass runs are left alone, so every gradient keeps the
dtype of its input.

PyTorch lets a half-precision result flow on into the next ops; dslearn casts it back at once. That
keeps the dtype rules every op checks (``linear`` and ``conv2d`` refuse an input and a weight of
different dtypes, before any observer runs) and keeps the elementwise ops in float32, for the price of
one more cast per recast op and float32 activations between the low-precision ones.

Blocks nest; the innermost decides (``enabled=False`` switches autocast off inside an outer block).

May import: numpy, dslearn.tensor, dslearn.dtypes, dslearn.autograd, dslearn.ops.

>>> import dslearn as ds
>>> a = ds.tensor([[1.0 + 2 ** -10]]); b = ds.tensor([[1.0]])
>>> with ds.amp.autocast(dtype=ds.bfloat16):
...     product = a @ b                  # computed in bfloat16: 1 + 2**-10 rounds to 1
>>> product, product.dtype
(tensor([[1.]]), dslearn.float32)
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from dslearn import dtypes
from dslearn.autograd.function import OpObserver, observe
from dslearn.ops.elementwise import cast
from dslearn.tensor import Tensor

LOW_PRECISION_OPS = frozenset({"matmul", "linear", "conv2d"})
FLOAT32_OPS = frozenset({
    "softmax", "log_softmax", "cross_entropy", "binary_cross_entropy",
    "layer_norm", "batch_norm_training", "batch_norm_evaluation", "group_norm",
    "sum", "mean", "var", "std", "logsumexp", "norm2", "norm_p",
    "exp", "log", "pow", "pow_scalar", "scalar_pow", "softplus",
})
DEFAULT_DTYPES = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16}  # as torch.autocast


class _ThreadState(threading.local):
    def __init__(self) -> None:
        self.stack: list[autocast] = []  # the blocks this thread is inside, innermost last


_state = _ThreadState()


class autocast(OpObserver):
    """Context manager and decorator: mixed precision for the ops run inside.

    ``device_type`` ('cpu' or 'cuda') selects the tensors it applies to; ``dtype`` is float16
    or bfloat16 (default: bfloat16 on the CPU, float16 on CUDA, as PyTorch).

    >>> import dslearn as ds
    >>> @ds.amp.autocast(dtype=ds.float16)
    ... def step(x):
    ...     with ds.amp.autocast(enabled=False):
    ...         exact = x @ x
    ...     return x @ x, exact
    >>> rounded, exact = step(ds.tensor([[1.0001]]))
    >>> rounded.item(), round(exact.item(), 6)
    (1.0, 1.0002)
    """

    def __init__(self, device_type: str = "cpu", dtype: dtypes.DType | None = None, enabled: bool = True) -> None:
        if device_type not in DEFAULT_DTYPES:
            raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
        dtype = DEFAULT_DTYPES[device_type] if dtype is None else dtypes.get_dtype(dtype)
        if dtype not in (dtypes.float16, dtypes.bfloat16):
            raise ValueError(f"autocast: dtype must be float16 or bfloat16, got {dtype.name}")
        self.device_type, self.dtype, self.enabled = device_type, dtype, bool(enabled)
        self._in_backward = 0  # > 0 while an op's backward runs: its ops are left alone
        self._observing = None

    def __enter__(self) -> autocast:
        if self._observing is not None:
            raise RuntimeError("autocast: this block is already active; use a new autocast(...) to nest")
        _state.stack.append(self)
        self._observing = observe(self)
        self._observing.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._observing.__exit__(*exc)
        self._observing = None
        _state.stack.remove(self)

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled):
                return function(*args, **kwargs)

        return wrapper

    # -- the observer -------------------------------------------------------------------------------

    def forward(self, fn, inputs: tuple, attrs: dict, run):
        stack = _state.stack  # per thread: an autocast block in another thread does not apply here
        if not self.enabled or self._in_backward or not stack or stack[-1] is not self:
            return run()
        if fn.name in LOW_PRECISION_OPS:
            wanted, recast = self.dtype, (dtypes.float32,)
        elif fn.name in FLOAT32_OPS:
            wanted, recast = dtypes.float32, (dtypes.float16, dtypes.bfloat16)
        else:
            return run()
        original = next((t.dtype for t in inputs if t.dtype in recast and self._on_device(t)), None)
        if original is None:
            return run()
        out = run(tuple(cast(t, wanted) if t.dtype in recast and self._on_device(t) else t for t in inputs))
        return cast(out, original) if out.is_floating_point() else out

    def backward(self, ctx, grad: Tensor, run):
        self._in_backward += 1
        try:
            return run()
        finally:
            self._in_backward -= 1

    def _on_device(self, t: Tensor) -> bool:
        return (type(t._data) is np.ndarray) == (self.device_type == "cpu")

    def __repr__(self) -> str:
        return f"autocast(device_type={self.device_type!r}, dtype={self.dtype}, enabled={self.enabled})"


def current_autocast() -> autocast | None:
    """The innermost autocast block this thread is in, or None.

    >>> import dslearn as ds
    >>> with ds.amp.autocast(dtype=ds.float16):
    ...     current_autocast()
    autocast(device_type='cpu', dtype=dslearn.float16, enabled=True)
    """
    return _state.stack[-1] if _state.stack else None


def is_autocast_enabled(device_type: str = "cpu") -> bool:
    """True inside an enabled autocast block for ``device_type``.

    >>> import dslearn as ds
    >>> with ds.amp.autocast():
    ...     is_autocast_enabled(), is_autocast_enabled("cuda")
    (True, False)
    """
    block = current_autocast()
    return block is not None and block.enabled and block.device_type == device_type
