"""Three teaching matrix-multiply kernels, and the BLAS path production code uses.

``out = a @ b`` for 2-D arrays, four ways, all with the signature ``matmul_xxx(a, b, out)``:

- ``matmul_naive``: the textbook i-j-k triple loop. The inner loop walks down a column of
  ``b``, jumping a whole row of memory at every step: once ``b`` outgrows the cache, nearly
  every load misses.
- ``matmul_reordered``: the same arithmetic in i-k-j order. The inner loop now walks along a
  row of ``b`` and a row of ``out`` (unit stride), so the compiler vectorizes it (SIMD).
- ``matmul_tiled``: i-k-j on tiles small enough to stay in cache (cache blocking), with the
  row tiles shared out between threads (``prange``).
- ``matmul_blas``: ``np.matmul``, i.e. OpenBLAS: hand-written assembly micro-kernels, packed
  tiles and register blocking. ``dslearn.matmul`` uses this one.

The kernels take C-contiguous float32 or float64 arrays of one dtype and write into ``out``
(which must not overlap the inputs). ``matmul(a, b, kernel=...)`` allocates the result,
accepts any layout and dtype, and loops over leading batch dimensions. ``benchmarks/ops.py``
prints each kernel's GFLOP/s as a fraction of BLAS on the machine at hand.

May import: numpy, numba, ml_dtypes.

>>> import numpy as np
>>> a, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
>>> matmul(a, b, kernel="naive")
array([[ 3.,  3.],
       [12., 12.]])
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from numba import njit, prange

TILE_ROWS = 32  # rows of a and out per parallel task
TILE_K = 128  # columns of a / rows of b per tile
TILE_COLS = 512  # columns of b and out per tile: a (TILE_K x TILE_COLS) tile of b is 256 KiB in float32
_FLOATS = tuple(np.dtype(t) for t in (np.float16, ml_dtypes.bfloat16, np.float32, np.float64))


@njit(cache=True)
def _naive_kernel(a, b, out):
    n, m = a.shape
    p = b.shape[1]
    for i in range(n):
        for j in range(p):
            total = out.dtype.type(0)
            for k in range(m):
                total += a[i, k] * b[k, j]  # b[k, j] and b[k + 1, j] are p elements apart
            out[i, j] = total


@njit(cache=True)
def _reordered_kernel(a, b, out):
    n, m = a.shape
    p = b.shape[1]
    for i in range(n):
        out_row = out[i]
        out_row[:] = 0
        for k in range(m):
            a_ik = a[i, k]
            b_row = b[k]
            for j in range(p):  # unit stride in out_row and b_row: vectorized
                out_row[j] += a_ik * b_row[j]


@njit(parallel=True, cache=True)
def _tiled_kernel(a, b, out):
    n, m = a.shape
    p = b.shape[1]
    for tile in prange((n + TILE_ROWS - 1) // TILE_ROWS):  # each thread owns whole rows of out
        first_row, end_row = tile * TILE_ROWS, min(n, (tile + 1) * TILE_ROWS)
        for i in range(first_row, end_row):
            for j in range(p):
                out[i, j] = 0
        for k0 in range(0, m, TILE_K):
            k1 = min(m, k0 + TILE_K)
            for j0 in range(0, p, TILE_COLS):
                j1 = min(p, j0 + TILE_COLS)
                for i in range(first_row, end_row):  # i-k-j inside the tiles
                    out_row = out[i, j0:j1]
                    for k in range(k0, k1):
                        a_ik = a[i, k]
                        b_row = b[k, j0:j1]
                        for j in range(out_row.shape[0]):  # counting from 0 lets the compiler vectorize
                            out_row[j] += a_ik * b_row[j]


def _check(name: str, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    arrays = {"a": a, "b": b, "out": out}
    for label, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.ndim != 2:
            raise ValueError(f"{name}: {label} must be a 2-D NumPy array, got {type(array).__name__} "
                             f"of shape {np.shape(array)}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} are not aligned ({a.shape[1]} != {b.shape[0]})")
    if out.shape != (a.shape[0], b.shape[1]):
        raise ValueError(f"{name}: out has shape {out.shape}, expected {(a.shape[0], b.shape[1])}")
    dtypes = {array.dtype for array in arrays.values()}
    if len(dtypes) > 1 or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: a, b and out must all be float32 or all float64, got "
                        f"{a.dtype}, {b.dtype} and {out.dtype}")
    for label, array in arrays.items():
        if not array.flags.c_contiguous:
            raise ValueError(f"{name}: {label} must be C-contiguous (np.ascontiguousarray makes a copy that is)")
    if np.may_share_memory(out, a) or np.may_share_memory(out, b):
        raise ValueError(f"{name}: out must not overlap a or b")


def matmul_naive(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` by the i-j-k triple loop; returns ``out``.

    Performance contract: one thread; inner loop over k reads a row of ``a`` (unit stride)
    and a column of ``b`` (stride p: a cache miss per element once ``b`` outgrows the cache),
    so nothing vectorizes. Expect about 1% of BLAS (BLAS runs on every core).

    >>> import numpy as np
    >>> matmul_naive(np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]]), np.empty((2, 2)))
    array([[1., 2.],
           [3., 4.]])
    """
    _check("matmul_naive", a, b, out)
    _naive_kernel(a, b, out)
    return out


def matmul_reordered(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` by the i-k-j loop order; returns ``out``.

    Performance contract: one thread; inner loop over j adds ``a[i, k] * b[k, :]`` to
    ``out[i, :]``, both unit stride, so it vectorizes (SIMD). It streams all of ``b`` once per
    row of ``a``: fast while ``b`` fits in cache, memory-bound beyond. Expect 5-20% of BLAS.

    >>> import numpy as np
    >>> matmul_reordered(np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]]), np.empty((2, 2)))
    array([[1., 2.],
           [3., 4.]])
    """
    _check("matmul_reordered", a, b, out)
    _reordered_kernel(a, b, out)
    return out


def matmul_tiled(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` with cache blocking, parallel over tiles of TILE_ROWS rows; returns ``out``.

    Performance contract: main loop in parallel over row tiles (each thread owns its rows of
    ``out``: no two threads write the same element, no locks). Within a tile, i-k-j over
    blocks of TILE_K x TILE_COLS of ``b`` that stay in L2 cache while every row of the tile
    uses them; vectorized, unit-stride inner loop; no allocation. Parallelism needs at least
    TILE_ROWS rows per thread. Expect 15-40% of BLAS: BLAS also keeps partial sums in
    registers and packs tiles, which plain loops cannot ask the compiler to do.

    >>> import numpy as np
    >>> matmul_tiled(np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]]), np.empty((2, 2)))
    array([[1., 2.],
           [3., 4.]])
    """
    _check("matmul_tiled", a, b, out)
    _tiled_kernel(a, b, out)
    return out


def matmul_blas(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` by ``np.matmul`` (OpenBLAS's sgemm/dgemm); returns ``out``.

    Performance contract: BLAS's threads (all cores), packed tiles, register-blocked
    assembly micro-kernels: the yardstick the other kernels are measured against.

    >>> import numpy as np
    >>> matmul_blas(np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]]), np.empty((2, 2)))
    array([[1., 2.],
           [3., 4.]])
    """
    _check("matmul_blas", a, b, out)
    return np.matmul(a, b, out=out)


KERNELS = {"naive": matmul_naive, "reordered": matmul_reordered, "tiled": matmul_tiled, "blas": matmul_blas}


def matmul(a: np.ndarray, b: np.ndarray, kernel: str = "tiled") -> np.ndarray:
    """``a @ b`` in a new array, by one of ``KERNELS``; leading batch dimensions broadcast.

    Inputs of any layout are made contiguous one matrix at a time; float16 and bfloat16 are
    computed in float32 and the result is cast back.

    >>> import numpy as np
    >>> matmul(np.ones((4, 2, 3)), np.ones((3, 5)), kernel="reordered").shape
    (4, 2, 5)
    """
    if kernel not in KERNELS:
        raise ValueError(f"matmul: unknown kernel {kernel!r}; choose one of {sorted(KERNELS)}")
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul: both operands need at least two dimensions, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a.shape[-1]} != {b.shape[-2]})")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast together") from None
    result_dtype = np.result_type(a, b)
    if result_dtype not in _FLOATS:
        raise TypeError(f"matmul: expected floating-point arrays, got {a.dtype} and {b.dtype}")
    work_dtype = np.float64 if result_dtype == np.float64 else np.float32
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])  # views, no copies
    out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=work_dtype)
    for index in np.ndindex(*batch):
        KERNELS[kernel](np.ascontiguousarray(a[index], dtype=work_dtype),
                        np.ascontiguousarray(b[index], dtype=work_dtype), out[index])
    return out.astype(result_dtype, copy=False)
