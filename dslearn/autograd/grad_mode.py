"""Grad mode: whether ops record the graph that ``backward`` walks.

The switch is per thread (like PyTorch's), so a data-loading thread that turns gradients
off cannot silently turn them off for the training loop.

May import: nothing from dslearn.

>>> import dslearn as ds
>>> with ds.no_grad():
...     ds.is_grad_enabled()
False
>>> ds.is_grad_enabled()
True
"""

from __future__ import annotations

import functools
import threading


class _GradState(threading.local):
    enabled = True  # class attribute: the default seen by every new thread


_state = _GradState()


def is_grad_enabled() -> bool:
    """True when new ops record the autograd graph."""
    return _state.enabled


class set_grad_enabled:
    """Turn graph recording on or off; works as a call, a context manager or a decorator.

    >>> import dslearn as ds
    >>> with ds.set_grad_enabled(False):
    ...     ds.ones(2, requires_grad=True).mul(2).requires_grad
    False
    """

    def __init__(self, mode: bool) -> None:
        self.prev = _state.enabled
        _state.enabled = bool(mode)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        _state.enabled = self.prev

    def __call__(self, fn):
        mode = _state.enabled
        _state.enabled = self.prev  # used as a decorator: undo the eager switch

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper


class _GradModeContext:
    mode: bool

    def __enter__(self) -> None:
        self.prev = _state.enabled
        _state.enabled = self.mode

    def __exit__(self, *exc) -> None:
        _state.enabled = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Context manager and decorator: ops inside do not record gradients.

    >>> import dslearn as ds
    >>> x = ds.ones(3, requires_grad=True)
    >>> with ds.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    mode = False


class enable_grad(_GradModeContext):
    """Context manager and decorator: turn recording back on inside a ``no_grad`` block."""

    mode = True
