"""Normalisation on the GPU: layer norm kernels, and batch and group norm in array operations.

Twins of ``dslearn.kernels.cpu.norm``, same functions and signatures, ``CudaArray`` in and out.
All compute x_hat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), then y = x_hat * weight + bias;
every backward uses dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat)), gw = grad * weight.

Layer norm has kernels of its own. Forward: one block per row, two block reductions for the
statistics (the mean, then the squared deviations: exact even when the mean is large), one pass
to write. Backward: one block per row for dx, and a second kernel for dweight and dbias, one
thread per column summing down the rows, so that no two threads add into the same value.
Batch norm and group norm are written with NumPy calls on CudaArrays (each call a map, zip or
reduce kernel): more passes over memory than a fused kernel, in code that reads like the
formulas.

Performance contract (layer norm): forward, per element 2 global reads and 1 write, 2 block
reductions per row; backward, 3 reads and 1 write for dx, then 3 reads per element for the
parameter gradients; no atomics.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from dslearn.kernels.cuda.array import CudaArray
>>> out, mean, rstd = layer_norm_forward(CudaArray.from_numpy(np.array([[1.0, 3.0]])), None, None, 0.0)
>>> out.to_numpy(), mean.to_numpy(), rstd.to_numpy()
(array([[-1.,  1.]]), array([2.]), array([1.]))
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from dslearn.kernels.cuda import numpy_api
from dslearn.kernels.cuda.array import CudaArray
from dslearn.kernels.cuda.runtime import THREADS, blocks_for
from dslearn.kernels.cuda.softmax import block_sum, compute_dtype
from numba import cuda
from numba.np import numpy_support


@functools.cache
def kernels(dtype: np.dtype) -> SimpleNamespace:
    """The layer norm kernels for float32 or float64 (rows, D) device arrays."""
    item, real = numpy_support.from_dtype(dtype), dtype.type
    zero, one = real(0), real(1)

    @cuda.jit
    def layer_norm_rows(x, weight, bias, eps, out, mean, rstd):
        """Normalise each row of ``x``; record its mean and rstd."""
        partial = cuda.shared.array(THREADS, item)
        width = x.shape[1]
        for i in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            total = zero
            for j in range(cuda.threadIdx.x, width, cuda.blockDim.x):
                total += x[i, j]
            row_mean = block_sum(total, partial) / real(width)
            squares = zero
            for j in range(cuda.threadIdx.x, width, cuda.blockDim.x):
                squares += (x[i, j] - row_mean) * (x[i, j] - row_mean)
            row_rstd = one / math.sqrt(block_sum(squares, partial) / real(width) + eps)
            for j in range(cuda.threadIdx.x, width, cuda.blockDim.x):
                out[i, j] = (x[i, j] - row_mean) * row_rstd * weight[j] + bias[j]
            if cuda.threadIdx.x == 0:
                mean[i], rstd[i] = row_mean, row_rstd

    @cuda.jit
    def layer_norm_backward_rows(grad, x, mean, rstd, weight, dx):
        """dx of each row: rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat))."""
        partial = cuda.shared.array(THREADS, item)
        width = x.shape[1]
        for i in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            sum_gw, sum_gw_xhat = zero, zero
            for j in range(cuda.threadIdx.x, width, cuda.blockDim.x):
                gw = grad[i, j] * weight[j]
                sum_gw += gw
                sum_gw_xhat += gw * (x[i, j] - mean[i]) * rstd[i]
            mean_gw = block_sum(sum_gw, partial) / real(width)
            mean_gw_xhat = block_sum(sum_gw_xhat, partial) / real(width)
            for j in range(cuda.threadIdx.x, width, cuda.blockDim.x):
                x_hat = (x[i, j] - mean[i]) * rstd[i]
                dx[i, j] = rstd[i] * (grad[i, j] * weight[j] - mean_gw - x_hat * mean_gw_xhat)

    @cuda.jit
    def layer_norm_parameter_grads(grad, x, mean, rstd, dweight, dbias):
        """dweight[j] = sum_i grad[i, j] x_hat[i, j] and dbias[j] = sum_i grad[i, j]: one thread per column."""
        for j in range(cuda.grid(1), x.shape[1], cuda.gridsize(1)):
            sum_weight, sum_bias = zero, zero
            for i in range(x.shape[0]):  # consecutive threads read consecutive columns: coalesced
                sum_weight += grad[i, j] * (x[i, j] - mean[i]) * rstd[i]
                sum_bias += grad[i, j]
            dweight[j], dbias[j] = sum_weight, sum_bias

    return SimpleNamespace(layer_norm_rows=layer_norm_rows, layer_norm_backward_rows=layer_norm_backward_rows,
                           layer_norm_parameter_grads=layer_norm_parameter_grads)


# -- wrappers: CudaArrays of any float dtype in, results in the input's dtype out ------------------------


def _work(x, dtype: np.dtype | None = None) -> CudaArray:
    """``x`` as a contiguous CudaArray in its compute dtype (or ``dtype``)."""
    x = numpy_api.on_device(x)
    x = x.astype(dtype or compute_dtype(x.dtype), copy=False)
    return x if x.is_contiguous() else x.copy()


def _affine_or_default(values, shape, fill: float, dtype: np.dtype) -> CudaArray:
    if values is None:
        return numpy_api.copy_into(CudaArray.empty(shape, dtype), fill)
    return _work(values, dtype).reshape(shape)


def layer_norm_forward(x: CudaArray, weight, bias, eps: float):
    """Layer norm of each row of a 2-D ``x``: (out, mean, rstd). ``weight``/``bias`` may be None."""
    work = _work(x)
    rows, width = work.shape
    out = CudaArray.empty(work.shape, work.dtype)
    mean, rstd = CudaArray.empty((rows,), work.dtype), CudaArray.empty((rows,), work.dtype)
    if work.size:
        kernels(work.dtype).layer_norm_rows[blocks_for(rows, 1), THREADS](
            work.device_array(), _affine_or_default(weight, (width,), 1.0, work.dtype).device_array(),
            _affine_or_default(bias, (width,), 0.0, work.dtype).device_array(), work.dtype.type(eps),
            out.device_array(), mean.device_array(), rstd.device_array())
    return out.astype(x.dtype, copy=False), mean, rstd


def layer_norm_backward(grad: CudaArray, x: CudaArray, mean: CudaArray, rstd: CudaArray, weight):
    """Gradients (dx, dweight, dbias) of ``layer_norm_forward`` for a 2-D ``x``."""
    work = _work(x)
    rows, width = work.shape
    dx = CudaArray.empty(work.shape, work.dtype)
    dweight, dbias = CudaArray.empty((width,), work.dtype), CudaArray.empty((width,), work.dtype)
    if work.size:
        found = kernels(work.dtype)
        g, statistics = _work(grad, work.dtype).device_array(), (mean.device_array(), rstd.device_array())
        found.layer_norm_backward_rows[blocks_for(rows, 1), THREADS](
            g, work.device_array(), *statistics, _affine_or_default(weight, (width,), 1.0, work.dtype).device_array(),
            dx.device_array())
        found.layer_norm_parameter_grads[blocks_for(width), THREADS](g, work.device_array(), *statistics,
                                                                     dweight.device_array(), dbias.device_array())
    else:
        dweight[...], dbias[...] = 0, 0
    return dx.astype(x.dtype, copy=False), dweight, dbias


def batch_norm_statistics(x: CudaArray) -> tuple[CudaArray, CudaArray]:
    """Per-channel mean and biased variance of an (N, C, S) ``x``, over N and S."""
    work = _work(x)
    mean = work.mean(axis=(0, 2))
    centered = work - mean.reshape(1, -1, 1)
    return mean, (centered * centered).mean(axis=(0, 2))


def channel_affine(x: CudaArray, scale, center, shift) -> CudaArray:
    """``scale * (x - center) + shift`` per channel of an (N, C, S) ``x``; the others have shape (C,)."""
    work = _work(x)
    per_channel = [_work(v, work.dtype).reshape(1, -1, 1) for v in (scale, center, shift)]
    return (per_channel[0] * (work - per_channel[1]) + per_channel[2]).astype(x.dtype, copy=False)


def batch_norm_backward(grad: CudaArray, x: CudaArray, mean, rstd, weight):
    """Gradients (dx, dweight, dbias) of training-mode batch norm of an (N, C, S) ``x``."""
    work = _work(x)
    samples, channels, size = work.shape
    g, count = _work(grad, work.dtype), samples * size
    centered = work - _work(mean, work.dtype).reshape(1, -1, 1)
    sum_grad, sum_grad_centered = g.sum(axis=(0, 2)), (g * centered).sum(axis=(0, 2))
    weight, rstd = _affine_or_default(weight, (channels,), 1.0, work.dtype), _work(rstd, work.dtype)
    # dx = w rstd (g - mean(g)) - w rstd^3 mean(g (x - mean)) (x - mean), per channel
    scale = (weight * rstd).reshape(1, -1, 1)
    slope = (weight * rstd * rstd * rstd * sum_grad_centered / count).reshape(1, -1, 1)
    dx = scale * (g - (sum_grad / count).reshape(1, -1, 1)) - slope * centered
    return dx.astype(x.dtype, copy=False), sum_grad_centered * rstd, sum_grad


def group_norm_forward(x: CudaArray, weight, bias, eps: float):
    """Group norm of an (N, G, K, S) ``x``: (out, mean, rstd) with statistics of shape (N, G)."""
    work = _work(x)
    _, groups, per_group, _ = work.shape
    mean = work.mean(axis=(2, 3), keepdims=True)
    centered = work - mean
    rstd = 1 / np.sqrt((centered * centered).mean(axis=(2, 3), keepdims=True) + work.dtype.type(eps))
    shape = (1, groups, per_group, 1)
    out = (centered * rstd * _affine_or_default(weight, shape, 1.0, work.dtype)
           + _affine_or_default(bias, shape, 0.0, work.dtype))
    return out.astype(x.dtype, copy=False), mean.reshape(mean.shape[:2]), rstd.reshape(rstd.shape[:2])


def group_norm_backward(grad: CudaArray, x: CudaArray, mean, rstd, weight):
    """Gradients (dx, dweight, dbias) of ``group_norm_forward``; dweight and dbias per channel."""
    work = _work(x)
    samples, groups, per_group, _ = work.shape
    g = _work(grad, work.dtype)
    rstd = _work(rstd, work.dtype).reshape(samples, groups, 1, 1)
    x_hat = (work - _work(mean, work.dtype).reshape(samples, groups, 1, 1)) * rstd
    gw = g * _affine_or_default(weight, (1, groups, per_group, 1), 1.0, work.dtype)
    dx = rstd * (gw - gw.mean(axis=(2, 3), keepdims=True) - x_hat * (gw * x_hat).mean(axis=(2, 3), keepdims=True))
    return (dx.astype(x.dtype, copy=False), (g * x_hat).sum(axis=(0, 3)).reshape(-1),
            g.sum(axis=(0, 3)).reshape(-1))
