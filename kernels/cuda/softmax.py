"""Softmax, log-softmax and cross-entropy on the GPU, forward and backward: twins of ``kernels.cpu.softmax``.

Same wrappers, same signatures, ``CudaArray`` in and out: ``softmax(x, dim)``,
``log_softmax(x, dim)``, ``softmax_backward(y, grad, dim)``, ``log_softmax_backward(y, grad, dim)``,
``cross_entropy_forward`` and ``cross_entropy_backward`` (on (rows, classes) arrays), and the
layout helpers ``as_rows`` / ``from_rows``.

One block per row (a grid-stride loop over rows when there are more rows than blocks). The
block's threads stride along the row, so consecutive threads read consecutive elements, and
combine their partial maxima and sums with ``block_reducer`` (shared memory, then warp
shuffles on a GPU). A row is read from global memory two or three times (the max, the sum of
exponentials, the output) and written once; rows never need each other. The kernels are built
once per dtype (float32, float64), with the shared scratch array in that dtype.

Performance contract: one block per row, THREADS threads per block; per row element 2-3 global
reads and 1 write, coalesced; 1-2 block reductions per row; no atomics.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from dslearn.kernels.cuda.array import CudaArray
>>> x = CudaArray.from_numpy(np.array([[0.0, 0.0], [0.0, np.log(3.0)]], dtype=np.float32))
>>> softmax(x, 1).to_numpy().round(4)
array([[0.5 , 0.5 ],
       [0.25, 0.75]], dtype=float32)
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from dslearn.kernels.cuda import numpy_api
from dslearn.kernels.cuda.array import CudaArray
from dslearn.kernels.cuda.primitives import block_reducer
from dslearn.kernels.cuda.runtime import THREADS, blocks_for
from numba import cuda
from numba.np import numpy_support

block_sum = block_reducer(lambda a, b: a + b)
block_max = block_reducer(lambda a, b: a if a > b or a != a else b)


@functools.cache
def kernels(dtype: np.dtype) -> SimpleNamespace:
    """The row kernels for float32 or float64 (rows, cols) device arrays."""
    item, real = numpy_support.from_dtype(dtype), dtype.type
    zero, one, lowest = real(0), real(1), real(-np.inf)

    @cuda.jit(device=True)
    def row_max_and_sum(x, i, partial):
        """(max, sum of exp(x - max)) of row ``i``, known to every thread of the block."""
        peak = lowest
        for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            peak = max(peak, x[i, j])
        peak = block_max(peak, partial)
        total = zero
        for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            total += math.exp(x[i, j] - peak)
        return peak, block_sum(total, partial)

    @cuda.jit
    def softmax_rows(x, out):
        """Softmax of every row of ``x`` into ``out``."""
        partial = cuda.shared.array(THREADS, item)
        for i in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            peak, total = row_max_and_sum(x, i, partial)
            for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
                out[i, j] = math.exp(x[i, j] - peak) / total

    @cuda.jit
    def log_softmax_rows(x, out):
        """Log-softmax of every row of ``x`` into ``out``."""
        partial = cuda.shared.array(THREADS, item)
        for i in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            peak, total = row_max_and_sum(x, i, partial)
            lse = peak + math.log(total)
            for j in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
                out[i, j] = x[i, j] - lse

    @cuda.jit
    def softmax_backward_rows(y, grad, out):
        """dx = y * (g - sum(g * y)), row by row."""
        partial = cuda.shared.array(THREADS, item)
        for i in range(cuda.blockIdx.x, y.shape[0], cuda.gridDim.x):
            dot = zero
            for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
                dot += grad[i, j] * y[i, j]
            dot = block_sum(dot, partial)
            for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
                out[i, j] = y[i, j] * (grad[i, j] - dot)

    @cuda.jit
    def log_softmax_backward_rows(y, grad, out):
        """dx = g - exp(y) * sum(g), row by row."""
        partial = cuda.shared.array(THREADS, item)
        for i in range(cuda.blockIdx.x, y.shape[0], cuda.gridDim.x):
            total = zero
            for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
                total += grad[i, j]
            total = block_sum(total, partial)
            for j in range(cuda.threadIdx.x, y.shape[1], cuda.blockDim.x):
                out[i, j] = grad[i, j] - math.exp(y[i, j]) * total

    @cuda.jit
    def cross_entropy_rows(logits, target, weight, ignore_index, smoothing, loss, lse):
        """loss = (1 - e) w[t] (lse - x[t]) + e/C sum_c w[c] (lse - x[c]) per row; 0 (and lse 0) if ignored."""
        partial = cuda.shared.array(THREADS, item)
        classes = logits.shape[1]
        for i in range(cuda.blockIdx.x, logits.shape[0], cuda.gridDim.x):
            t = target[i]
            if t == ignore_index:  # the same for the whole block: no thread skips a barrier alone
                if cuda.threadIdx.x == 0:
                    loss[i], lse[i] = zero, zero
                continue
            peak, total = row_max_and_sum(logits, i, partial)
            row_lse = peak + math.log(total)
            spread = zero
            for c in range(cuda.threadIdx.x, classes, cuda.blockDim.x):
                spread += weight[c] * (row_lse - logits[i, c])
            spread = block_sum(spread, partial)
            if cuda.threadIdx.x == 0:
                nll = weight[t] * (row_lse - logits[i, t])
                loss[i] = (one - smoothing) * nll + smoothing / real(classes) * spread
                lse[i] = row_lse

    @cuda.jit
    def cross_entropy_backward_rows(logits, lse, target, weight, total_weight, ignore_index, smoothing, scale, out):
        """out = scale * (softmax(x) * sum_c q[c] - q), q[c] = (1 - e) w[t] [c == t] + e/C w[c]; 0 if ignored."""
        classes = logits.shape[1]
        for i in range(cuda.blockIdx.x, logits.shape[0], cuda.gridDim.x):
            t = target[i]
            picked = (one - smoothing) * weight[t] if t != ignore_index else zero
            mass = (picked + smoothing / real(classes) * total_weight) * scale[i]
            spread = smoothing / real(classes) * scale[i]
            for c in range(cuda.threadIdx.x, classes, cuda.blockDim.x):
                if t == ignore_index:
                    out[i, c] = zero
                else:
                    value = math.exp(logits[i, c] - lse[i]) * mass - spread * weight[c]
                    out[i, c] = value - picked * scale[i] if c == t else value

    return SimpleNamespace(softmax_rows=softmax_rows, log_softmax_rows=log_softmax_rows,
                           softmax_backward_rows=softmax_backward_rows,
                           log_softmax_backward_rows=log_softmax_backward_rows,
                           cross_entropy_rows=cross_entropy_rows,
                           cross_entropy_backward_rows=cross_entropy_backward_rows)


# -- wrappers: any layout and dtype in, the same out ------------------------------------------------


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; float32 and narrower floats are computed in float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def as_rows(x: CudaArray, dim: int) -> CudaArray:
    """``x`` with ``dim`` moved last, as a contiguous float32/float64 (rows, cols) CudaArray."""
    moved = x if dim == x.ndim - 1 else x.transpose([d for d in range(x.ndim) if d != dim] + [dim])
    rows = moved.astype(compute_dtype(x.dtype), copy=False)
    return rows.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def from_rows(rows: CudaArray, like: CudaArray, dim: int) -> CudaArray:
    """Undo ``as_rows``: back to ``like``'s shape (a view with ``dim`` in place) and dtype."""
    if dim == like.ndim - 1:
        out = rows.reshape(like.shape)
    else:
        moved_shape = like.shape[:dim] + like.shape[dim + 1:] + like.shape[dim:dim + 1]
        order = list(range(like.ndim - 1))
        order.insert(dim, like.ndim - 1)
        out = rows.reshape(moved_shape).transpose(order)
    return out.astype(like.dtype, copy=False)


def _launch(kernel, rows: int, *arrays) -> None:
    kernel[blocks_for(rows, 1), THREADS](*arrays)


def _rowwise(name: str, dim: int, *arrays: CudaArray) -> CudaArray:
    """Run row kernel ``name(*rows, out)`` over ``dim`` of same-shaped arrays."""
    first = arrays[0]
    if first.ndim == 0:
        return _rowwise(name, 0, *[a.reshape(1) for a in arrays]).reshape(())
    if first.size == 0:
        return CudaArray.empty(first.shape, first.dtype)
    rows = [as_rows(a, dim) for a in arrays]
    out = CudaArray.empty(rows[0].shape, rows[0].dtype)
    _launch(getattr(kernels(out.dtype), name), out.shape[0], *[r.device_array() for r in rows], out.device_array())
    return from_rows(out, first, dim)


def softmax(x: CudaArray, dim: int) -> CudaArray:
    """``exp(x) / sum(exp(x))`` along ``dim``."""
    return _rowwise("softmax_rows", dim, x)


def log_softmax(x: CudaArray, dim: int) -> CudaArray:
    """``x - logsumexp(x)`` along ``dim``."""
    return _rowwise("log_softmax_rows", dim, x)


def softmax_backward(y: CudaArray, grad: CudaArray, dim: int) -> CudaArray:
    """Input gradient of softmax along ``dim``, given its output ``y``."""
    return _rowwise("softmax_backward_rows", dim, y, grad)


def log_softmax_backward(y: CudaArray, grad: CudaArray, dim: int) -> CudaArray:
    """Input gradient of log_softmax along ``dim``, given its output ``y``."""
    return _rowwise("log_softmax_backward_rows", dim, y, grad)


def cross_entropy_forward(logits: CudaArray, target: CudaArray, weight, ignore_index: int,
                          label_smoothing: float) -> tuple[CudaArray, CudaArray]:
    """Per-row losses and log-sum-exps of (rows, classes) ``logits`` (float32 or float64).

    ``target`` holds int64 class indices (or ``ignore_index``), ``weight`` one weight per class
    in the dtype of ``logits``.
    """
    real = logits.dtype.type
    loss, lse = CudaArray.empty((len(logits),), logits.dtype), CudaArray.empty((len(logits),), logits.dtype)
    if len(logits):
        _launch(kernels(logits.dtype).cross_entropy_rows, len(logits), logits.device_array(),
                numpy_api.on_device(target, np.int64).device_array(),
                numpy_api.on_device(weight, logits.dtype).device_array(), ignore_index, real(label_smoothing),
                loss.device_array(), lse.device_array())
    return loss, lse


def cross_entropy_backward(logits: CudaArray, lse: CudaArray, target: CudaArray, weight, ignore_index: int,
                           label_smoothing: float, scale) -> CudaArray:
    """Gradient of the per-row losses with respect to ``logits``, row ``i`` scaled by ``scale[i]``."""
    real = logits.dtype.type
    out = CudaArray.empty(logits.shape, logits.dtype)
    if len(logits):
        weight = numpy_api.on_device(weight, logits.dtype)
        total_weight = real(weight.sum().item())
        _launch(kernels(logits.dtype).cross_entropy_backward_rows, len(logits), logits.device_array(),
                lse.device_array(), numpy_api.on_device(target, np.int64).device_array(), weight.device_array(),
                total_weight, ignore_index, real(label_smoothing),
                numpy_api.on_device(scale, logits.dtype).device_array(), out.device_array())
    return out
