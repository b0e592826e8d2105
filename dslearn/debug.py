"""Debugging aids: switch gradients off, check gradients numerically, catch NaN/Inf at its source.

``set_grad_mode(False)`` is the seed's way to verify a forward pass quickly: nothing is
recorded, so nothing can be differentiated until it is switched back on. ``gradcheck``
compares an op's analytic gradients with central differences in float64.

``detect_anomaly()`` (as ``torch.autograd.detect_anomaly``) installs an op observer that
checks every floating output of every op for NaN/Inf and names the op, its inputs and the line
of *your* code that called it. It also stamps that call site on each graph node, so that when
an op's backward produces NaN/Inf (or fails) the error says whose forward it was. When anomaly
mode is off the observer is not installed and ops pay nothing.

May import: numpy, dslearn.tensor, dslearn.autograd.

>>> import dslearn as ds
>>> ds.debug.set_grad_mode(False)
>>> (ds.ones(2, requires_grad=True) * 3).requires_grad
False
>>> ds.debug.set_grad_mode(True)
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence

import numpy as np

from dslearn import dtypes
from dslearn.autograd.engine import grad as autograd_grad
from dslearn.autograd.function import Context, OpObserver, observe
from dslearn.autograd.grad_mode import is_grad_enabled, set_grad_enabled
from dslearn.tensor import Tensor


def set_grad_mode(enabled: bool) -> None:
    """Turn gradient recording on or off for this thread (as the seed's ``ds.debug.set_grad_mode``)."""
    set_grad_enabled(enabled)


def get_grad_mode() -> bool:
    """Whether gradients are being recorded."""
    return is_grad_enabled()


class GradcheckError(AssertionError):
    """Raised by ``gradcheck`` when analytic and numerical gradients disagree."""


def numerical_jacobian_vector(fn: Callable, inputs: Sequence[Tensor], direction: np.ndarray, index: int,
                              eps: float) -> np.ndarray:
    """The gradient of ``sum(direction * fn(*inputs))`` with respect to ``inputs[index]``, by central differences."""
    base = inputs[index]._data
    grad = np.zeros(base.shape, dtype=np.float64)
    flat = base.reshape(-1)  # a view: we nudge one element at a time in place, then restore it
    for k in range(flat.size):
        original = flat[k]
        flat[k] = original + eps
        plus = float(np.sum(_as_array(fn(*inputs)) * direction))
        flat[k] = original - eps
        minus = float(np.sum(_as_array(fn(*inputs)) * direction))
        flat[k] = original
        grad.reshape(-1)[k] = (plus - minus) / (2 * eps)
    return grad


def _as_array(out) -> np.ndarray:
    if isinstance(out, (tuple, list)):
        raise TypeError("gradcheck: fn must return a single tensor")
    return out._data.astype(np.float64)


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0, raise_exception: bool = True) -> bool:
    """Check ``fn``'s gradients against central differences, in float64.

    Inputs that require grad are checked; each must be float64 (cast them with ``.double()``).
    A random projection of the output makes one backward pass enough for any output shape.

    >>> import dslearn as ds
    >>> x = ds.randn(3, 4, dtype=ds.float64, requires_grad=True)
    >>> gradcheck(lambda t: (t * t).tanh().sum(1), [x])
    True
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; nothing to check")
    for i in checked:
        if inputs[i]._data.dtype != dtypes.float64.np:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64 inputs")
    with set_grad_enabled(True):
        out = fn(*inputs)
    direction = np.random.default_rng(seed).standard_normal(out.shape)
    upstream = Tensor._make(direction.astype(out._data.dtype))
    analytic = autograd_grad(out, [inputs[i] for i in checked], grad_outputs=upstream, allow_unused=True)
    with set_grad_enabled(False):
        for i, grad in zip(checked, analytic):
            numeric = numerical_jacobian_vector(fn, inputs, direction, i, eps)
            got = np.zeros_like(numeric) if grad is None else grad._data.astype(np.float64)
            if not np.allclose(got, numeric, atol=atol, rtol=rtol):
                if raise_exception:
                    worst = np.unravel_index(np.argmax(np.abs(got - numeric)), numeric.shape)
                    raise GradcheckError(
                        f"gradcheck: input {i} (shape {inputs[i].shape}): analytic and numerical gradients differ; "
                        f"largest gap at {tuple(int(w) for w in worst)}: analytic {got[worst]:.6g}, "
                        f"numerical {numeric[worst]:.6g}"
                    )
                return False
    return True


# -- anomaly detection --------------------------------------------------------------------------


class AnomalyError(RuntimeError):
    """Raised in anomaly mode when an op's output, or a gradient an op's backward returns, holds NaN or Inf."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stack(limit: int = 6) -> traceback.StackSummary:
    """The caller's innermost ``limit`` frames that lie outside the dslearn package, outermost first.

    >>> user_stack()[-1].name  # a doctest runs as a module
    '<module>'
    """
    frames = ((frame, line) for frame, line in traceback.walk_stack(sys._getframe(1))
              if not frame.f_code.co_filename.startswith(_PACKAGE_DIR))
    stack = traceback.StackSummary.extract(frames, limit=limit, lookup_lines=False)
    stack.reverse()
    return stack


def _call_site(stack: traceback.StackSummary | None) -> str:
    """'train.py:12' and, below it, the stack that led there."""
    if not stack:
        return "an unknown place (the op ran before anomaly mode was turned on)"
    last = stack[-1]
    lines = "".join(stack.format()).rstrip()
    return f"{os.path.basename(last.filename)}:{last.lineno}\nCall stack (most recent call last):\n{lines}"


def _backward_origin(ctx: Context, stack: traceback.StackSummary | None) -> str:
    return f"the backward of {ctx.fn.name}, whose forward was called at {_call_site(stack)}"


def _non_finite(tensor: Tensor) -> str:
    """'' when every value is finite, else e.g. '2 NaN and 1 Inf among 8 values'."""
    if not tensor.dtype.is_floating_point:
        return ""
    data = tensor._host_array()
    if np.isfinite(data).all():
        return ""
    counts = [(int(np.isnan(data).sum()), "NaN"), (int(np.isinf(data).sum()), "Inf")]
    return " and ".join(f"{n} {kind}" for n, kind in counts if n) + f" among {data.size} values"


def _describe(tensors) -> str:
    return "; ".join(f"shape {t.shape}, {t.dtype.name}" for t in tensors)


class _AnomalyObserver(OpObserver):
    """Checks op outputs and gradients; stamps each graph node with the user code that created it."""

    def __init__(self) -> None:
        self.local = threading.local()  # backward_depth: inside a backward, outputs are checked as gradients

    def forward(self, fn, inputs: tuple, attrs: dict, run):
        stack = user_stack()
        out = run()
        if out._ctx is not None:
            out._ctx.creation_stack = stack
        if _anomaly.check_nan and not getattr(self.local, "backward_depth", 0):
            problem = _non_finite(out)
            if problem:
                raise AnomalyError(f"{fn.name} returned {problem} (inputs: {_describe(inputs)}); "
                                   f"called at {_call_site(stack)}")
        return out

    def backward(self, ctx: Context, grad: Tensor, run):
        stack = getattr(ctx, "creation_stack", None)
        self.local.backward_depth = getattr(self.local, "backward_depth", 0) + 1
        try:
            grads = run()
        except Exception as error:
            if hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(f"anomaly mode: raised in {_backward_origin(ctx, stack)}")
            raise
        finally:
            self.local.backward_depth -= 1
        if _anomaly.check_nan:
            for i, (g, parent) in enumerate(zip(grads if isinstance(grads, tuple) else (grads,), ctx.parents)):
                problem = "" if g is None or not parent.requires_grad else _non_finite(g)
                if problem:
                    raise AnomalyError(f"{ctx.fn.name}_backward returned {problem} in the gradient of input {i} "
                                       f"({_describe([g])}); produced by {_backward_origin(ctx, stack)}")
        return grads


class _AnomalyState:
    check_nan = True
    installation = None  # the active ``observe(...)`` context while anomaly mode is on


_anomaly = _AnomalyState()
_OBSERVER = _AnomalyObserver()


def _set_anomaly(enabled: bool, check_nan: bool) -> None:
    _anomaly.check_nan = check_nan
    if enabled and _anomaly.installation is None:
        _anomaly.installation = observe(_OBSERVER)
        _anomaly.installation.__enter__()
    elif not enabled and _anomaly.installation is not None:
        _anomaly.installation.__exit__(None, None, None)
        _anomaly.installation = None


def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on.

    >>> is_anomaly_enabled()
    False
    """
    return _anomaly.installation is not None


class set_detect_anomaly:
    """Turn anomaly mode on or off (for all threads); as a context manager, restore the old mode on exit.

    >>> import dslearn as ds
    >>> with set_detect_anomaly(True):
    ...     is_anomaly_enabled()
    True
    >>> is_anomaly_enabled()
    False
    """

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.previous = (is_anomaly_enabled(), _anomaly.check_nan)
        _set_anomaly(bool(mode), check_nan)

    def __enter__(self) -> set_detect_anomaly:
        return self

    def __exit__(self, *exc) -> None:
        _set_anomaly(*self.previous)


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager and decorator: run with anomaly mode on (``check_nan=False`` only records call sites).

    >>> import dslearn as ds
    >>> with detect_anomaly():
    ...     ds.tensor([float("nan"), 1.0]) + 1  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dslearn.debug.AnomalyError: add returned 1 NaN among 2 values (inputs: shape (2,), float32; shape (), ...
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan
        self.previous: list[tuple[bool, bool]] = []  # a stack, so a decorated function may recurse

    def __enter__(self) -> detect_anomaly:
        self.previous.append((is_anomaly_enabled(), _anomaly.check_nan))
        _set_anomaly(True, self.check_nan)
        return self

    def __exit__(self, *exc) -> None:
        _set_anomaly(*self.previous.pop())
