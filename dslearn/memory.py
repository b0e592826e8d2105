"""Memory tracking: how many bytes the autograd graph keeps alive, now and at its peak.

Backward needs values from the forward pass, so every recorded op keeps its inputs (and whatever
its forward saved on the graph node) until the graph is freed. ``track()`` is an op observer that,
for each graph node an op creates, registers the arrays the node holds: the *parameters* (leaf
tensors that require grad) and everything else, the *activations*. A weak-reference finalizer on
each array notices when it is freed, so the counts go down as graphs die, and the peak is the
most that was alive at once. Each buffer counts once, however many views of it are held; for a
tensor on a CUDA device, the buffer is its device memory.

What it measures is what checkpointing and micro-batches save; it does not see arrays that no
graph holds (an optimizer's state, data waiting in a loader).

May import: weakref, numpy, dslearn.tensor, dslearn.autograd.

>>> import dslearn as ds
>>> w = ds.ones(1000, requires_grad=True)
>>> with track() as memory:
...     y = w.exp().tanh().sum()      # exp keeps w; tanh keeps exp(w); sum keeps tanh(exp(w))
>>> memory.parameter_bytes, memory.activation_bytes
(4000, 8000)
>>> del y; memory.activation_bytes, memory.peak_activation_bytes   # frozen when the block ends
(8000, 8000)
"""

from __future__ import annotations

import weakref

import numpy as np

from dslearn.autograd.function import OpObserver, observe
from dslearn.tensor import Tensor

ACTIVATION, PARAMETER = "activation", "parameter"


class track(OpObserver):
    """Context manager that counts the bytes held by the graphs recorded inside it.

    Attributes (bytes): ``activation_bytes`` and ``parameter_bytes`` alive now,
    ``peak_activation_bytes``, ``peak_bytes`` (activations + parameters), and ``current_bytes``.
    They keep their values when the block ends.

    >>> import dslearn as ds
    >>> x = ds.ones(256, requires_grad=True)
    >>> with track() as memory:
    ...     for step in range(3):
    ...         loss = x.exp().sum()   # exp(x), 1 KiB, is kept for sum's backward
    ...         loss.backward()
    ...         del loss               # frees the graph, and exp(x) with it
    >>> memory.peak_activation_bytes, memory.activation_bytes, memory.parameter_bytes
    (1024, 0, 1024)
    """

    def __init__(self) -> None:
        self.activation_bytes = self.parameter_bytes = 0
        self.peak_activation_bytes = self.peak_bytes = 0
        self._alive: dict[int, tuple[int, str, weakref.finalize]] = {}  # id(buffer) -> (bytes, kind, finalizer)
        self._seen = weakref.WeakSet()  # graph nodes already registered
        self._observing = None

    @property
    def current_bytes(self) -> int:
        """Activations and parameters alive now."""
        return self.activation_bytes + self.parameter_bytes

    def __enter__(self) -> track:
        if self._observing is not None:
            raise RuntimeError("memory.track: this tracker is already active")
        self._observing = observe(self)
        self._observing.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._observing.__exit__(*exc)
        self._observing = None
        for _, _, finalizer in self._alive.values():
            finalizer.detach()
        self._alive.clear()

    def forward(self, fn, inputs: tuple, attrs: dict, run):
        out = run()
        if out._ctx is not None and out._ctx not in self._seen:
            self._register_graph(out._ctx)
        return out

    def _register_graph(self, node) -> None:
        """Register ``node`` and the nodes below it not seen yet (an observer further in may have made some)."""
        pending = [node]
        while pending:
            node = pending.pop()
            if node in self._seen:
                continue
            self._seen.add(node)
            for t in node.parents:
                self._register(t._data, PARAMETER if t._ctx is None and t.requires_grad else ACTIVATION)
                if t._ctx is not None and t._ctx not in self._seen:
                    pending.append(t._ctx)
            for value in (*vars(node).values(), *getattr(node, "attrs", {}).values()):
                if isinstance(value, Tensor):
                    value = value._data
                if isinstance(value, np.ndarray):
                    self._register(value, ACTIVATION)

    def _register(self, array, kind: str) -> None:
        if not isinstance(array, np.ndarray):
            array = getattr(array, "storage", array)  # a CudaArray: its device buffer, which its views share
        while isinstance(getattr(array, "base", None), np.ndarray):
            array = array.base  # a view: count the buffer it looks into
        key = id(array)
        if key in self._alive:
            return
        size = int(getattr(array, "nbytes", 0))
        try:
            finalizer = weakref.finalize(array, self._release, key)
        except TypeError:
            return  # an array type without weak references cannot be followed; leave it out
        self._alive[key] = (size, kind, finalizer)
        if kind == PARAMETER:
            self.parameter_bytes += size
        else:
            self.activation_bytes += size
            self.peak_activation_bytes = max(self.peak_activation_bytes, self.activation_bytes)
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    def _release(self, key: int) -> None:
        size, kind, _ = self._alive.pop(key)
        if kind == PARAMETER:
            self.parameter_bytes -= size
        else:
            self.activation_bytes -= size

    def __repr__(self) -> str:
        return (f"track(activations {_mib(self.activation_bytes)} (peak {_mib(self.peak_activation_bytes)}), "
                f"parameters {_mib(self.parameter_bytes)}, peak total {_mib(self.peak_bytes)})")


def _mib(n: int) -> str:
    return f"{n / 2 ** 20:.2f} MiB"
