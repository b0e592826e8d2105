"""The profiler: how much time each op takes, forward and backward, to find a model's bottlenecks.

``profile()`` installs an op observer (see ``dslearn.autograd.function``) that times every
forward call of an op (named after it, ``'mul'``) and every backward call (``'mul_backward'``).
A backward runs other ops, and ``record_function('data')`` marks a range of your own code:
the time of the calls nested inside a call counts in its *total* time, not in its *self* time.
The summary table, like PyTorch's, lists calls, self and total time, and the bytes that outputs
allocated (an output that is a view of an input allocates none); ``export_chrome_trace`` writes
a timeline for chrome://tracing or https://ui.perfetto.dev.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.serialization (for atomic writes).

>>> import dslearn as ds
>>> x = ds.ones(3, requires_grad=True)
>>> with profile() as prof:
...     (x * 2).sum().backward()
>>> sorted((row.name, row.calls) for row in prof.key_averages() if row.name in ("mul", "sum", "mul_backward"))
[('mul', 2), ('mul_backward', 1), ('sum', 1)]
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from dslearn.autograd.function import Context, OpObserver, observe
from dslearn.serialization import atomic_write
from dslearn.tensor import Tensor

_active: list[profile] = []  # the running profilers, which record_function reports to


@dataclass(slots=True)
class ProfileEvent:
    """One timed call: an op's forward or backward, or a ``record_function`` range. Times in seconds."""

    name: str
    kind: str  # 'forward', 'backward' or 'user'
    start: float  # since the profiler was first entered
    duration: float
    self_time: float  # duration minus the duration of the calls nested directly inside
    thread: int
    input_shapes: tuple = ()  # filled when record_shapes=True
    bytes: int = 0  # allocated by the outputs


@dataclass(slots=True)
class OpStats:
    """All calls of one name (and, if grouped so, one input shape) added up. Times in seconds."""

    name: str
    calls: int = 0
    total_time: float = 0.0
    self_time: float = 0.0
    bytes: int = 0
    input_shapes: tuple = ()

    @property
    def avg_time(self) -> float:
        """Mean total time per call."""
        return self.total_time / self.calls


_SORT_KEYS = {"self_time": "self_time", "total_time": "total_time", "avg_time": "avg_time", "calls": "calls",
              "bytes": "bytes", "name": "name",
              "self_cpu_time_total": "self_time", "cpu_time_total": "total_time", "count": "calls"}  # torch names


class ProfileSummary(list):
    """The rows of ``key_averages()``: a list of ``OpStats`` that can print itself as a table."""

    def table(self, sort_by: str = "self_time", row_limit: int = 20) -> str:
        """The rows as aligned text, largest first (``sort_by`` any ``OpStats`` field or torch's names).

        >>> summary = ProfileSummary([OpStats("matmul", 2, 0.004, 0.004, 2048), OpStats("relu", 2, 0.001, 0.001)])
        >>> print(summary.table())
        name    calls  self ms  total ms  self %  avg us   bytes
        matmul      2    4.000     4.000   80.0%  2000.0  2.0 KB
        relu        2    1.000     1.000   20.0%   500.0     0 B
        self time total: 5.000 ms
        """
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"table: unknown sort_by {sort_by!r}; choose one of {sorted(_SORT_KEYS)}")
        field = _SORT_KEYS[sort_by]
        rows = sorted(self, key=lambda row: getattr(row, field), reverse=field != "name")[:row_limit]
        self_total = sum(row.self_time for row in self)
        headers = ["name", "calls", "self ms", "total ms", "self %", "avg us", "bytes"]
        cells = [[row.name, str(row.calls), f"{row.self_time * 1e3:.3f}", f"{row.total_time * 1e3:.3f}",
                  f"{100 * row.self_time / self_total if self_total else 0.0:.1f}%", f"{row.avg_time * 1e6:.1f}",
                  _human_bytes(row.bytes)] for row in rows]
        if any(row.input_shapes for row in rows):
            headers.append("input shapes")
            for line, row in zip(cells, rows):
                line.append(", ".join(str(shape) for shape in row.input_shapes))
        widths = [max(len(text) for text in column) for column in zip(headers, *cells)]
        lines = ["  ".join(text.ljust(w) if i in (0, 7) else text.rjust(w) for i, (text, w) in
                           enumerate(zip(line, widths))).rstrip() for line in [headers, *cells]]
        return "\n".join([*lines, f"self time total: {self_total * 1e3:.3f} ms"])


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _new_bytes(outputs, sources) -> int:
    """Bytes of the output arrays that are fresh allocations (a view of a source tensor counts 0)."""
    total = 0
    for out in outputs:
        if out is None:
            continue
        data = out._data
        if type(data) is np.ndarray and (data.base is not None or any(data is s._data for s in sources)):
            if any(type(s._data) is np.ndarray and np.may_share_memory(data, s._data) for s in sources):
                continue
        total += data.nbytes
    return total


class profile(OpObserver, contextlib.ContextDecorator):
    """Context manager and decorator that records every op call; entering again keeps adding.

    >>> import dslearn as ds
    >>> prof = profile(record_shapes=True)
    >>> @prof
    ... def step(x):
    ...     return (x @ x).relu()
    >>> _ = step(ds.ones(2, 2)); _ = step(ds.ones(3, 3))
    >>> sorted((row.name, row.calls, row.input_shapes) for row in prof.key_averages(group_by_input_shape=True))
    [('matmul', 1, ((2, 2), (2, 2))), ('matmul', 1, ((3, 3), (3, 3))), ('relu', 1, ((2, 2),)), ('relu', 1, ((3, 3),))]
    """

    def __init__(self, record_shapes: bool = False) -> None:
        self.record_shapes = record_shapes
        self.total_time = 0.0  # seconds spent inside the profiler's blocks
        self._events: list[tuple] = []  # ProfileEvent fields as a tuple (cheaper to record), times in ns
        self._origin: int | None = None
        self._local = threading.local()  # per thread: stack of nested-time accumulators
        self._depth = 0
        self._entered = 0

    # -- switching on and off -----------------------------------------------------------------

    def __enter__(self) -> profile:
        if self._depth == 0:
            self._entered = time.perf_counter_ns()
            if self._origin is None:
                self._origin = self._entered
            self._installation = observe(self)
            self._installation.__enter__()
            _active.append(self)
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            _active.remove(self)
            self._installation.__exit__(None, None, None)
            self.total_time += (time.perf_counter_ns() - self._entered) / 1e9

    # -- recording ----------------------------------------------------------------------------

    def _begin(self) -> int:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        stack.append(0)
        return time.perf_counter_ns()

    def _end(self, name: str, kind: str, begin: int, shapes: tuple = (), outputs=(), sources=()) -> None:
        """Close the call opened by ``_begin``: add its time to its parent's nested time, and record it."""
        duration = time.perf_counter_ns() - begin
        stack = self._local.stack
        nested = stack.pop()
        if stack:
            stack[-1] += duration
        nbytes = _new_bytes(outputs, sources) if outputs else 0
        self._events.append((name, kind, begin, duration, duration - nested, threading.get_ident(), shapes, nbytes))

    def forward(self, fn, inputs: tuple[Tensor, ...], attrs: dict, run):
        shapes = tuple([t.shape for t in inputs]) if self.record_shapes else ()
        out = None
        begin = self._begin()
        try:
            out = run()
        finally:
            self._end(fn.name, "forward", begin, shapes, (out,), inputs)
        return out

    def backward(self, ctx: Context, grad: Tensor, run):
        shapes = (grad.shape,) if self.record_shapes else ()
        grads = None
        begin = self._begin()
        try:
            grads = run()
        finally:
            self._end(f"{ctx.fn.name}_backward", "backward", begin, shapes,
                      grads if isinstance(grads, tuple) else (grads,), (grad,))
        return grads

    # -- results ------------------------------------------------------------------------------

    def events(self) -> list[ProfileEvent]:
        """Every recorded call, in the order the calls finished."""
        return [ProfileEvent(name, kind, (begin - self._origin) / 1e9, duration / 1e9, self_ns / 1e9, thread,
                             shapes, nbytes)
                for name, kind, begin, duration, self_ns, thread, shapes, nbytes in self._events]

    def key_averages(self, group_by_input_shape: bool = False) -> ProfileSummary:
        """One row per name (per name and input shapes if asked), ordered by self time."""
        rows: dict[tuple, OpStats] = {}
        for name, _, _, duration, self_ns, _, shapes, nbytes in self._events:
            key = (name, shapes if group_by_input_shape else ())
            row = rows.get(key)
            if row is None:
                row = rows[key] = OpStats(name, input_shapes=key[1])
            row.calls += 1
            row.total_time += duration / 1e9
            row.self_time += self_ns / 1e9
            row.bytes += nbytes
        return ProfileSummary(sorted(rows.values(), key=lambda row: -row.self_time))

    def table(self, sort_by: str = "self_time", row_limit: int = 20) -> str:
        """``key_averages().table(...)``: the summary as text, ready to print."""
        return self.key_averages().table(sort_by=sort_by, row_limit=row_limit)

    def export_chrome_trace(self, path: str | os.PathLike) -> None:
        """Write the calls as Chrome trace events (complete events, microseconds), atomically."""
        pid = os.getpid()
        trace = [{"name": e.name, "cat": e.kind, "ph": "X", "ts": round(e.start * 1e6, 3),
                  "dur": round(e.duration * 1e6, 3), "pid": pid, "tid": e.thread,
                  "args": {"self_us": round(e.self_time * 1e6, 3), "bytes": e.bytes,
                           "input_shapes": [list(shape) for shape in e.input_shapes]}}
                 for e in self.events()]
        text = json.dumps({"traceEvents": trace, "displayTimeUnit": "ms"})
        atomic_write(path, lambda file: file.write(text.encode()))


class record_function(contextlib.ContextDecorator):
    """Context manager and decorator naming a range of your code ('data', 'forward') in running profilers.

    >>> import dslearn as ds
    >>> with profile() as prof:
    ...     with record_function("forward"):
    ...         _ = ds.ones(2).exp()
    >>> rows = {row.name: row for row in prof.key_averages()}
    >>> rows["forward"].total_time >= rows["exp"].total_time
    True
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._open: list[list[tuple[profile, int]]] = []  # a stack, so a decorated function may recurse

    def __enter__(self) -> record_function:
        self._open.append([(prof, prof._begin()) for prof in list(_active)])
        return self

    def __exit__(self, *exc) -> None:
        for prof, begin in self._open.pop():
            prof._end(self.name, "user", begin)
