"""Matrix multiplication on the GPU: a naive kernel and a shared-memory tiled one, twins of the CPU kernels.

``matmul_naive(a, b, out)`` and ``matmul_tiled(a, b, out)`` take 2-D C-contiguous float32 or
float64 Numba device arrays of one dtype and write ``out = a @ b``, like their CPU twins in
``dslearn.kernels.cpu.matmul``. Both run one thread per output element; they differ in where
the operands come from:

- naive: thread (i, j) reads row i of ``a`` and column j of ``b`` straight from global memory.
  Every element of ``a`` is read by all ``p`` threads of its row of ``out``, every element of
  ``b`` by all ``n`` threads of its column: ``2 n m p`` global reads for ``n m p`` multiply-adds.
- tiled: a block of TILE x TILE threads computes a TILE x TILE tile of ``out``. It walks along
  ``k`` one tile at a time: each thread copies one element of ``a`` and one of ``b`` into shared
  memory, the block waits (``syncthreads``), and then every thread reads the TILE values it needs
  from shared memory, which is on the chip and about as fast as a register. Each global element
  is now read ``p / TILE`` (or ``n / TILE``) times instead of ``p`` (or ``n``): TILE times fewer
  global reads. Tiles at the edges are padded with zeros, so any shape works.

``kernels.cuda.traffic`` counts these reads in the simulator; lab 11 grades a kernel on them.
``matmul(a, b, kernel=...)`` takes ``CudaArray`` operands of any layout and float dtype, with
batch dimensions that broadcast, and returns a new CudaArray.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from numba import cuda
>>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
>>> out = cuda.device_array((2, 2))
>>> matmul_tiled(cuda.to_device(a), cuda.to_device(b), out).copy_to_host()
array([[ 3.,  3.],
       [12., 12.]])
"""

from __future__ import annotations

import numpy as np
from dslearn.kernels.cuda.runtime import SIMULATOR
from numba import cuda, float32, float64

# 16 x 16 = 256 threads per block on a GPU; the simulator runs each thread as a Python thread, so it
# uses 8 x 8 to keep tests fast. Shapes that are not multiples of the tile are handled either way.
TILE = 8 if SIMULATOR else 16


@cuda.jit
def naive_kernel(a, b, out, zero):
    """``out[i, j] = sum_k a[i, k] * b[k, j]``, one thread per (i, j); ``zero`` is 0 in the arrays' dtype.

    Performance contract: 2 m global reads and 1 global write per thread; no shared memory.
    """
    j, i = cuda.grid(2)  # x, the fastest-varying thread index, runs along a row: coalesced reads of b
    if i < out.shape[0] and j < out.shape[1]:
        total = zero
        for k in range(a.shape[1]):
            total += a[i, k] * b[k, j]
        out[i, j] = total


def _tiled(item):
    @cuda.jit
    def tiled_kernel(a, b, out, zero):
        """One TILE x TILE block per tile of ``out``; operand tiles staged in shared memory.

        Performance contract: per thread, 2 ceil(m / TILE) global reads (one element of ``a`` and
        one of ``b`` per step along k), 2 m shared reads and 1 global write; two barriers per step.
        """
        a_tile = cuda.shared.array((TILE, TILE), item)
        b_tile = cuda.shared.array((TILE, TILE), item)
        j, i = cuda.grid(2)
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        n, m = a.shape
        total = zero
        for k0 in range(0, m, TILE):
            a_tile[ty, tx] = a[i, k0 + tx] if i < n and k0 + tx < m else zero
            b_tile[ty, tx] = b[k0 + ty, j] if k0 + ty < m and j < b.shape[1] else zero
            cuda.syncthreads()  # the tiles are complete
            for k in range(TILE):
                total += a_tile[ty, k] * b_tile[k, tx]
            cuda.syncthreads()  # everyone is done with the tiles before they are overwritten
        if i < n and j < b.shape[1]:
            out[i, j] = total

    return tiled_kernel


TILED_KERNELS = {np.dtype(np.float32): _tiled(float32), np.dtype(np.float64): _tiled(float64)}


def _check(name: str, a, b, out) -> None:
    for label, array in (("a", a), ("b", b), ("out", out)):
        if len(array.shape) != 2:
            raise ValueError(f"{name}: {label} must be 2-D, got shape {array.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} are not aligned ({a.shape[1]} != {b.shape[0]})")
    if out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"{name}: out has shape {out.shape}, expected {(a.shape[0], b.shape[1])}")
    if len({np.dtype(x.dtype) for x in (a, b, out)}) > 1 or np.dtype(a.dtype) not in TILED_KERNELS:
        raise TypeError(f"{name}: a, b and out must all be float32 or all float64, got "
                        f"{a.dtype}, {b.dtype} and {out.dtype}")


def _grid(out) -> tuple[tuple[int, int], tuple[int, int]]:
    rows, cols = out.shape
    return (-(-cols // TILE), -(-rows // TILE)), (TILE, TILE)


def matmul_naive(a, b, out):
    """``out = a @ b`` by ``naive_kernel``; returns ``out``.

    Performance contract: one thread per output; every operand read comes from global memory
    (2 n m p reads), so the kernel is bound by memory bandwidth, far below the GPU's arithmetic.
    """
    _check("matmul_naive", a, b, out)
    if out.size:
        naive_kernel[_grid(out)](a, b, out, out.dtype.type(0))
    return out


def matmul_tiled(a, b, out):
    """``out = a @ b`` by the shared-memory tiled kernel; returns ``out``.

    Performance contract: one thread per output, TILE x TILE threads per block; global reads
    divided by TILE against the naive kernel (each operand tile is loaded once per block and read
    TILE times from shared memory); coalesced loads; two barriers per tile step. Expect a fraction
    of cuBLAS, which also keeps a block of outputs per thread in registers and uses tensor cores.
    """
    _check("matmul_tiled", a, b, out)
    if out.size:
        TILED_KERNELS[np.dtype(out.dtype)][_grid(out)](a, b, out, out.dtype.type(0))
    return out


KERNELS = {"naive": matmul_naive, "tiled": matmul_tiled}


def matmul(a, b, kernel: str = "tiled"):
    """``a @ b`` for ``CudaArray`` operands in a new CudaArray, NumPy's rules (1-D operands, batch broadcasting).

    float16 operands are multiplied in float32 and rounded back.

    >>> import numpy as np
    >>> from dslearn.kernels.cuda.array import CudaArray
    >>> matmul(CudaArray.from_numpy(np.ones((4, 2, 3))), CudaArray.from_numpy(np.ones((3, 5)))).shape
    (4, 2, 5)
    """
    from dslearn.kernels.cuda.array import CudaArray

    if kernel not in KERNELS:
        raise ValueError(f"matmul: unknown kernel {kernel!r}; choose one of {sorted(KERNELS)}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one dimension, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1 or b.ndim == 1:
        result = matmul(a.reshape(1, -1) if a.ndim == 1 else a, b.reshape(-1, 1) if b.ndim == 1 else b, kernel)
        return result.reshape(result.shape[:-2] + result.shape[-2 + (a.ndim == 1):result.ndim - (b.ndim == 1)])
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a.shape[-1]} != {b.shape[-2]})")
    result_dtype = np.result_type(np.empty(0, a.dtype), np.empty(0, b.dtype))
    if result_dtype.kind != "f":
        raise TypeError(f"matmul: expected floating-point arrays, got {a.dtype} and {b.dtype}")
    work = np.dtype(np.float64 if result_dtype == np.float64 else np.float32)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = (x.astype(work, copy=False) for x in (a, b))
    a, b = ((x if x.is_contiguous() else x.copy()).broadcast_to(batch + x.shape[-2:]) for x in (a, b))
    out = CudaArray.empty(batch + (a.shape[-2], b.shape[-1]), work)
    if a.shape[-1] == 0:
        out[...] = 0
    elif out.size:
        for index in np.ndindex(*batch):
            KERNELS[kernel](a[index].device_array(), b[index].device_array(), out[index].device_array())
    return out.astype(result_dtype, copy=False)
