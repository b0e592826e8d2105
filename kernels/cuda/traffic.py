"""Counting a kernel's memory traffic in the CUDA simulator: global and shared reads and writes, per thread.

A GPU kernel is usually limited by memory, not arithmetic, so *how often* it touches global
memory is the number to watch (the idea of GPU-Puzzles' counters). ``count_traffic`` launches
a ``@cuda.jit`` kernel in Numba's CUDA simulator, which runs every CUDA thread as a Python
thread, and hands it counting stand-ins for its array arguments (global memory) and for the
arrays it allocates with ``cuda.shared.array`` (shared memory). Each stand-in records which
thread touched which element, so the report can say, for example, that a tiled matmul reads
each element of its inputs ``N / TILE`` times where the naive one reads it ``N`` times: a lab
can grade that a kernel is tiled, not only that its answer is right.

What counts: one read per element a thread loads (``a[i, j]``, or each element of a slice),
one write per element it stores; an atomic add is one read and one write. Local arrays and
scalars are registers and are not counted. The arrays are NumPy arrays the kernel reads and
writes in place, so the results are there afterwards.

Needs the simulator: set ``NUMBA_ENABLE_CUDASIM=1`` before numba is imported.

May import: numpy, numba, dslearn.kernels.cuda.runtime.

>>> import numpy as np
>>> from numba import cuda
>>> @cuda.jit
... def add_one(a, out):
...     i = cuda.grid(1)
...     if i < a.size:
...         out[i] = a[i] + 1
>>> report = count_traffic(add_one, 1, 4, np.arange(3.0), np.zeros(3))
>>> report.total, report.arrays["out"].array
(Counts(global_reads=3, global_writes=3, shared_reads=0, shared_writes=0), array([1., 2., 3.]))
"""

from __future__ import annotations

import contextlib
import inspect
import linecache
import re
import sys
import threading
from dataclasses import dataclass, field
from unittest import mock

import numpy as np
from dslearn.kernels.cuda.runtime import SIMULATOR
from numba.core import types
from numba.np import numpy_support


@dataclass(frozen=True)
class Counts:
    """Element reads and writes, in global and in shared memory."""

    global_reads: int = 0
    global_writes: int = 0
    shared_reads: int = 0
    shared_writes: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.global_reads, self.global_writes, self.shared_reads, self.shared_writes


@dataclass
class ArrayTraffic:
    """One array's accesses: how many times each element was read and written."""

    name: str
    array: np.ndarray
    shared: bool
    reads: np.ndarray = field(repr=False)
    writes: np.ndarray = field(repr=False)


@dataclass
class TrafficReport:
    """What ``count_traffic`` measured: per thread, in total, and per element of each array."""

    threads: dict[tuple[tuple[int, ...], tuple[int, ...]], Counts]  # (blockIdx, threadIdx) -> counts, as
    # tuples as long as the launch's grid and block: ((1,), (3,)) is thread 3 of block 1 of a 1-D launch
    arrays: dict[str, ArrayTraffic]  # kernel argument name (or ``shared@line``) -> its element counts

    @property
    def total(self) -> Counts:
        return sum(self.threads.values(), Counts())

    def most_by_one_thread(self) -> Counts:
        """The largest count of each kind over all threads (the busiest thread bounds the kernel's time)."""
        rows = [c.as_tuple() for c in self.threads.values()] or [(0, 0, 0, 0)]
        return Counts(*(int(v) for v in np.max(rows, axis=0)))

    def reads_per_element(self, name: str) -> float:
        """Mean number of times each element of array ``name`` was read."""
        traffic = self.arrays[name]
        return float(traffic.reads.mean()) if traffic.reads.size else 0.0

    def table(self) -> str:
        """A plain-text summary: totals, the busiest thread, and per-array reads per element."""
        lines = [f"{'':24}{'global reads':>14}{'global writes':>15}{'shared reads':>14}{'shared writes':>15}"]
        for label, counts in (("total", self.total), ("busiest thread", self.most_by_one_thread())):
            lines.append(f"{label:24}" + "".join(f"{v:>{w}}" for v, w in zip(counts.as_tuple(), (14, 15, 14, 15))))
        for traffic in self.arrays.values():
            kind = "shared" if traffic.shared else "global"
            lines.append(f"{traffic.name + ' (' + kind + ')':24}reads per element {traffic.reads.mean():.2f}, "
                         f"writes per element {traffic.writes.mean():.2f}")
        return "\n".join(lines)


class _Recorder:
    """Collects every access, each simulated thread in its own list (no two threads share one)."""

    def __init__(self) -> None:
        self.events: dict[tuple, list] = {}

    def record(self, array: CountingArray, key, write: bool) -> None:
        thread = threading.current_thread()
        where = (tuple(thread.blockIdx), tuple(thread.threadIdx))
        self.events.setdefault(where, []).append((array, key, write))


class CountingArray:
    """Stands in for a global or shared array inside a simulated kernel and records its accesses."""

    def __init__(self, array: np.ndarray, name: str, shared: bool, recorder: _Recorder) -> None:
        self.array, self.name, self.shared, self.recorder = array, name, shared, recorder

    shape = property(lambda self: self.array.shape)
    size = property(lambda self: self.array.size)
    ndim = property(lambda self: self.array.ndim)
    dtype = property(lambda self: self.array.dtype)

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, key):
        self.recorder.record(self, key, False)
        return self.array[key]

    def __setitem__(self, key, value) -> None:
        self.recorder.record(self, key, True)
        self.array[key] = value


def _atomic_add(array, index, value):
    """``cuda.atomic.add`` on a counting array: one read and one write (the simulator's would count two reads)."""
    target = array.array if isinstance(array, CountingArray) else array
    with _ATOMIC_LOCK:
        old = target[index]
        target[index] = old + value
    if isinstance(array, CountingArray):
        array.recorder.record(array, index, False)
        array.recorder.record(array, index, True)
    return old


_ATOMIC_LOCK = threading.Lock()


@contextlib.contextmanager
def _counting_shared_memory(recorder: _Recorder):
    """While active, ``cuda.shared.array`` in simulated kernels returns counting arrays."""
    from numba.cuda.simulator import kernelapi

    def counting_array(self, shape, dtype, alignment=None):
        # As the simulator does: one array per line of source, shared by the threads of a block.
        caller = sys._getframe(1)
        where = (caller.f_code.co_filename, caller.f_lineno)
        array = self._allocations.setdefault(where, np.zeros(shape, numpy_support.as_dtype(dtype)
                                                             if isinstance(dtype, types.Type) else dtype))
        return CountingArray(array, _shared_name(*where), True, recorder)

    with mock.patch.object(kernelapi.FakeCUDAShared, "array", counting_array), \
            mock.patch.object(kernelapi.FakeCUDAAtomic, "add", lambda self, *args: _atomic_add(*args)):
        yield


def _shared_name(filename: str, line: int) -> str:
    """The variable a shared array is assigned to on that line (``a_tile = cuda.shared.array(...)``)."""
    found = re.match(r"\s*(\w+)\s*=\s*cuda\.shared\.array", linecache.getline(filename, line))
    return found.group(1) if found else f"shared@{line}"


def count_traffic(kernel, griddim, blockdim, *args) -> TrafficReport:
    """Launch ``kernel[griddim, blockdim](*args)`` in the simulator, counting its memory accesses.

    NumPy array arguments are global memory (read and written in place); other arguments pass
    through unchanged.
    """
    if not SIMULATOR:
        raise RuntimeError("count_traffic runs kernels in Numba's CUDA simulator: set NUMBA_ENABLE_CUDASIM=1 "
                           "before numba (or dslearn) is imported")
    recorder = _Recorder()
    names = list(inspect.signature(kernel.py_func).parameters)
    wrapped = [CountingArray(a, names[i], False, recorder) if isinstance(a, np.ndarray) else a
               for i, a in enumerate(args)]
    with _counting_shared_memory(recorder):
        kernel[griddim, blockdim](*wrapped)
    dims = (np.ndim(griddim) and len(griddim)) or 1, (np.ndim(blockdim) and len(blockdim)) or 1
    return _report(recorder, [w for w in wrapped if isinstance(w, CountingArray)], dims)


def _report(recorder: _Recorder, global_arrays: list[CountingArray], dims: tuple[int, int]) -> TrafficReport:
    arrays: dict[str, ArrayTraffic] = {}

    def traffic_of(array: CountingArray) -> ArrayTraffic:
        if array.name not in arrays:
            arrays[array.name] = ArrayTraffic(array.name, array.array, array.shared,
                                              np.zeros(array.shape, np.int64), np.zeros(array.shape, np.int64))
        return arrays[array.name]

    for array in global_arrays:
        traffic_of(array)
    threads = {}
    for where, events in recorder.events.items():
        counts = [0, 0, 0, 0]  # global reads, global writes, shared reads, shared writes
        for array, key, write in events:
            traffic = traffic_of(array)
            touched = traffic.writes if write else traffic.reads
            touched[key] += 1  # one for each element the index selects
            counts[2 * array.shared + write] += int(np.size(touched[key]))
        threads[where[0][:dims[0]], where[1][:dims[1]]] = Counts(*counts)
    return TrafficReport(threads, arrays)
