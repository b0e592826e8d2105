"""The GPU (or Numba's CUDA simulator) and how kernels are launched on it.

Numba picks its CUDA target when ``numba.cuda`` is first imported: a real GPU through the
driver, or, with ``NUMBA_ENABLE_CUDASIM=1`` in the environment, the simulator, which runs
every CUDA thread of a block as a Python thread. The simulator is exact but slow (a fraction of
a millisecond per thread, more at each barrier), so launches there use fewer, smaller blocks
(and the GPU's warp shuffles, which it lacks, give way to shared memory): every kernel is written
with a *grid-stride loop* (thread ``t`` handles elements ``t, t + gridsize, ...``) or a loop
over its share of the data, so that any launch shape covers any size.

May import: numpy, numba.

>>> blocks_for(1000, threads=256, max_blocks=8192), blocks_for(0, threads=256)
(4, 1)
"""

from __future__ import annotations

import sys

import numba
from numba import cuda

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
THREADS = 16 if SIMULATOR else 256  # threads per block of elementwise and reduction kernels (a power of two)
MAX_BLOCKS = 2 if SIMULATOR else 8192  # grid-stride loops cover the rest
WARP = 32

if SIMULATOR:
    # The simulated threads of a block wait for each other at every barrier, and Python lets a thread
    # run for 5 ms before switching: each ``syncthreads`` would cost milliseconds. Switch 25x sooner.
    sys.setswitchinterval(min(sys.getswitchinterval(), 0.0002))


def blocks_for(work: int, threads: int = THREADS, max_blocks: int = MAX_BLOCKS) -> int:
    """How many blocks of ``threads`` threads a grid-stride loop over ``work`` items launches (at least 1).

    >>> blocks_for(10 ** 9, threads=256, max_blocks=8192)
    8192
    """
    return max(1, min(max_blocks, -(-work // threads)))


def is_available() -> bool:
    """True when kernels can run here: a CUDA GPU, or the simulator.

    >>> isinstance(is_available(), bool)
    True
    """
    return bool(cuda.is_available())


def device_count() -> int:
    """The number of CUDA devices (the simulator counts as one; 0 without either).

    >>> device_count() >= 0
    True
    """
    return len(cuda.gpus) if is_available() else 0


def device_name() -> str:
    """The GPU's name, e.g. ``'NVIDIA H100 80GB HBM3'``, or ``'CUDA simulator'``.

    >>> isinstance(device_name(), str)
    True
    """
    if SIMULATOR:
        return "CUDA simulator"
    if not is_available():
        return "no CUDA device"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize() -> None:
    """Wait until every kernel launched so far has finished (launches return at once on a GPU).

    >>> synchronize()
    """
    if is_available():
        cuda.synchronize()
