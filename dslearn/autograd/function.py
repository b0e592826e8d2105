"""``Function``: the contract every differentiable op follows.

An op is a subclass with two static methods side by side:

* ``forward(ctx, *arrays, **attrs)`` computes the output array from input arrays (NumPy on
  the CPU) and may stash whatever backward needs on ``ctx``;
* ``backward(ctx, grad)`` maps the output's gradient (a Tensor) to one gradient per input,
  written with Tensor ops so that higher-order gradients and the JIT's backward graphs come
  for free.

``Op.apply(*tensors, **attrs)`` runs forward and, when grad mode is on and an input requires
grad, links the output to a ``Context`` node. Observers (the profiler, anomaly detection, the
JIT tracer) can wrap every forward and backward call; with none installed, ``apply`` pays one
list check.

May import: dslearn.tensor, dslearn.autograd.grad_mode.

>>> import numpy as np, dslearn as ds
>>> class Cube(Function):
...     @staticmethod
...     def forward(ctx, x):
...         return x ** 3
...     @staticmethod
...     def backward(ctx, grad):
...         (x,) = ctx.inputs
...         return grad * 3 * x * x
>>> x = ds.tensor([2.0], requires_grad=True)
>>> Cube.apply(x).sum().backward(); x.grad
tensor([12.])
"""

from __future__ import annotations

import contextlib
import weakref

from dslearn.autograd.grad_mode import _state


class Context:
    """The graph node an op leaves behind: its inputs, its output and what forward saved."""

    released = False

    def link(self, fn, inputs: tuple[Tensor, ...], output: Tensor, attrs: dict) -> None:
        """Make this context the graph node that produced ``output``."""
        self.fn = fn
        self.parents = inputs  # the engine walks these; ops read them via ``inputs``
        self.attrs = attrs
        self._versions = tuple([t._version for t in inputs])
        self._output = weakref.ref(output)
        self._output_version = output._version
        output._ctx = self
        output.requires_grad = True

    @property
    def inputs(self) -> tuple[Tensor, ...]:
        """The input tensors, checked for in-place changes since forward."""
        self._check_not_released()
        for t, version in zip(self.parents, self._versions):
            if t._version != version:
                raise RuntimeError(
                    f"{self.fn.name} backward: an input of shape {t.shape} needed for the gradient was "
                    "modified by an in-place operation after it was used; use an out-of-place op (e.g. "
                    "x = x + 1 instead of x += 1) or .clone() the tensor first"
                )
        return self.parents

    @property
    def output(self) -> Tensor:
        """The tensor forward returned (alive while backward runs)."""
        self._check_not_released()
        out = self._output()
        if out is None or out._version != self._output_version:
            raise RuntimeError(f"{self.fn.name} backward: its output was modified in place or freed")
        return out

    @property
    def needs_input_grad(self) -> tuple[bool, ...]:
        """Which inputs need a gradient; backward may return None for the others."""
        return tuple([t.requires_grad for t in self.parents])

    def _check_not_released(self) -> None:
        if self.released:
            raise RuntimeError(
                f"{self.fn.name}: trying to backward through the graph a second time; its saved values "
                "were freed. Pass retain_graph=True to the first backward() if you need to do this."
            )

    def release(self) -> None:
        """Drop saved values after backward (unless retain_graph)."""
        self.released = True
        self.__dict__ = {"fn": self.fn, "parents": self.parents, "released": True}


class Function:
    """Base class of ops. Subclasses define ``forward`` and ``backward``; callers use ``apply``."""

    differentiable = True  # False for comparisons, argmax, ...: outputs never require grad
    name = "function"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = _snake_case(cls.__name__)

    @staticmethod
    def forward(ctx, *arrays, **attrs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad: Tensor):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Tensor, **attrs) -> Tensor:
        """Run the op on tensors and record it in the graph when gradients are needed."""
        if _observers:
            return _observed_forward(cls, inputs, attrs, 0)
        return _run_forward(cls, inputs, attrs)


def _run_forward(cls, inputs: tuple[Tensor, ...], attrs: dict) -> Tensor:
    ctx = Context()
    try:
        out = Tensor._make(cls.forward(ctx, *[t._data for t in inputs], **attrs))
    except (ValueError, IndexError, TypeError) as error:
        raise _named_error(cls, inputs, error) from None
    if _state.enabled and cls.differentiable:
        for t in inputs:
            if t.requires_grad:
                ctx.link(cls, inputs, out, attrs)
                break
    return out


def _named_error(cls, inputs: tuple[Tensor, ...], error: Exception) -> Exception:
    """Re-word an error raised inside a forward so that it names the op and its inputs."""
    message = str(error)
    if message.startswith(cls.name + ":"):
        return error
    shown = "; ".join(f"shape {t.shape}, {t.dtype.name} on {t.device}" for t in inputs)
    return type(error)(f"{cls.name}: {message} (inputs: {shown})")


def run_backward(ctx: Context, grad: Tensor) -> tuple:
    """Call an op's backward (through any observers) and normalise the result to a tuple."""
    ctx._check_not_released()
    if _observers:
        grads = _observed_backward(ctx, grad, 0)
    else:
        grads = ctx.fn.backward(ctx, grad)
    if not isinstance(grads, tuple):
        grads = (grads,)
    if len(grads) != len(ctx.parents):
        raise RuntimeError(f"{ctx.fn.name} backward returned {len(grads)} gradients for {len(ctx.parents)} inputs")
    return grads


# -- observers --------------------------------------------------------------------------------

_observers: list = []


class OpObserver:
    """Wraps every op call. Override ``forward`` / ``backward``; call ``run()`` to continue.

    In ``forward``, ``run(new_inputs)`` continues with other input tensors (autocast uses this
    to cast them); ``run()`` keeps them.

    >>> import dslearn as ds
    >>> class Count(OpObserver):
    ...     def __init__(self): self.names = []
    ...     def forward(self, fn, inputs, attrs, run):
    ...         self.names.append(fn.name); return run()
    >>> with observe(Count()) as seen:
    ...     _ = ds.ones(2).exp() + 1
    >>> seen.names
    ['exp', 'add']
    """

    def forward(self, fn, inputs: tuple, attrs: dict, run):
        return run()

    def backward(self, ctx: Context, grad: Tensor, run):
        return run()


@contextlib.contextmanager
def observe(observer: OpObserver):
    """Install an observer for the duration of a ``with`` block."""
    _observers.append(observer)
    try:
        yield observer
    finally:
        _observers.remove(observer)


def _observed_forward(cls, inputs, attrs, i):
    if i == len(_observers):
        return _run_forward(cls, inputs, attrs)
    def run(new_inputs: tuple | None = None):
        return _observed_forward(cls, inputs if new_inputs is None else tuple(new_inputs), attrs, i + 1)

    return _observers[i].forward(cls, inputs, attrs, run)


def _observed_backward(ctx, grad, i):
    if i == len(_observers):
        return ctx.fn.backward(ctx, grad)
    return _observers[i].backward(ctx, grad, lambda: _observed_backward(ctx, grad, i + 1))


def _snake_case(name: str) -> str:
    out = [name[0].lower()]
    for prev, ch in zip(name, name[1:]):
        if ch.isupper() and (prev.islower() or prev.isdigit()):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


# Imported last: dslearn.tensor imports the ops, and the ops need ``Function`` defined above.
from dslearn.tensor import Tensor  # noqa: E402
