"""Normalisation kernels: layer norm, batch norm and group norm, forward and backward.

All three compute x_hat = (x - mean) * rstd, rstd = 1 / sqrt(var + eps), over different
elements, then y = x_hat * weight + bias; they differ in what a "group" of statistics is:

* layer norm: each row of a (rows, D) array;
* batch norm: each channel of an (N, C, S) array, across N and S;
* group norm: each (sample, group) block of an (N, G, K, S) array (K channels per group).

Every backward uses the same identity, with gw = grad * weight and means over the group:
dx = rstd * (gw - mean(gw) - x_hat * mean(gw * x_hat)), dweight = sum(grad * x_hat), dbias = sum(grad).

Performance contract: groups in parallel (``prange``) once there are enough elements to pay for
threads; two passes over a group for the statistics (mean, then squared deviations: exact
even when the mean is large) and one to write; reductions across groups (dweight, dbias, batch
statistics) accumulate per chunk of rows, so threads never share an accumulator. Inputs are
computed in float32 or float64 (narrower floats in float32) and results come back in the
input's dtype; statistics stay in the compute dtype.

May import: numpy, numba, dslearn.kernels.cpu.softmax.

>>> import numpy as np
>>> out, mean, rstd = layer_norm_forward(np.array([[1.0, 3.0]]), None, None, 0.0)
>>> out, mean, rstd
(array([[-1.,  1.]]), array([2.]), array([1.]))
"""

from __future__ import annotations

import math

import numpy as np
from dslearn.kernels.cpu.softmax import FASTMATH, PARALLEL_MIN_ELEMENTS, compute_dtype

# No fused multiply-adds here: g * w - mean(g * w) must be exactly 0 for a group of one element
# (an FMA would subtract a rounded product from an unrounded one, and rstd can be 1 / sqrt(eps)).
EXACT_FASTMATH = FASTMATH - {"contract"}
from numba import get_num_threads, njit, prange

# -- one group ------------------------------------------------------------------------------------


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _mean_rstd(values, eps):
    """Mean and 1 / sqrt(biased variance + eps) of a 1-D array, in two passes.

    The sum runs over values - values[0]: small numbers whose float32 sum stays accurate even
    when the mean is large compared with the spread.
    """
    real = values.dtype.type
    count = real(values.shape[0])
    shift = values[0]
    total = real(0)
    for j in range(values.shape[0]):
        total += values[j] - shift
    mean = shift + total / count
    squares = real(0)
    for j in range(values.shape[0]):
        d = values[j] - mean
        squares += d * d
    return mean, real(1 / math.sqrt(squares / count + eps))


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _layer_norm_row(x, weight, bias, eps, out):
    """Normalise one row into ``out``; returns its (mean, rstd)."""
    mean, rstd = _mean_rstd(x, eps)
    for j in range(x.shape[0]):
        out[j] = (x[j] - mean) * rstd * weight[j] + bias[j]
    return mean, rstd


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _layer_norm_backward_row(grad, x, mean, rstd, weight, dx, dweight, dbias):
    """dx of one row; adds the row's share of dweight and dbias into the given accumulators."""
    real = x.dtype.type
    sum_gw = real(0)
    sum_gw_xhat = real(0)
    for j in range(x.shape[0]):
        xhat = (x[j] - mean) * rstd
        gw = grad[j] * weight[j]
        sum_gw += gw
        sum_gw_xhat += gw * xhat
        dweight[j] += grad[j] * xhat
        dbias[j] += grad[j]
    mean_gw, mean_gw_xhat = sum_gw / real(x.shape[0]), sum_gw_xhat / real(x.shape[0])
    for j in range(x.shape[0]):
        xhat = (x[j] - mean) * rstd
        dx[j] = rstd * (grad[j] * weight[j] - mean_gw - xhat * mean_gw_xhat)


# -- layer norm: rows of (rows, D) ------------------------------------------------------------------


@njit(parallel=True, cache=True)
def layer_norm_rows(x, weight, bias, eps, out, mean, rstd):
    """Layer norm of every row of ``x``; saves each row's mean and rstd."""
    if x.size < PARALLEL_MIN_ELEMENTS:
        for i in range(x.shape[0]):
            mean[i], rstd[i] = _layer_norm_row(x[i], weight, bias, eps, out[i])
    else:
        for i in prange(x.shape[0]):
            mean[i], rstd[i] = _layer_norm_row(x[i], weight, bias, eps, out[i])


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _layer_norm_backward_chunk(grad, x, mean, rstd, weight, dx, dweight, dbias, start, stop):
    for i in range(start, stop):
        _layer_norm_backward_row(grad[i], x[i], mean[i], rstd[i], weight, dx[i], dweight, dbias)


@njit(parallel=True, cache=True)
def layer_norm_backward_rows(grad, x, mean, rstd, weight, dx, dweight_parts, dbias_parts):
    """dx row by row; chunk c of the rows adds its dweight and dbias into ``*_parts[c]``."""
    chunks, rows = dweight_parts.shape[0], x.shape[0]
    if chunks == 1:
        _layer_norm_backward_chunk(grad, x, mean, rstd, weight, dx, dweight_parts[0], dbias_parts[0], 0, rows)
    else:
        for c in prange(chunks):
            _layer_norm_backward_chunk(grad, x, mean, rstd, weight, dx, dweight_parts[c], dbias_parts[c],
                                       c * rows // chunks, (c + 1) * rows // chunks)


# -- batch norm: channels of (N, C, S) ----------------------------------------------------------------


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _channel_sums_chunk(u, u_center, v, v_center, sums, products, start, stop):
    """Over samples start..stop, per channel: add sum(u - u_c) into sums, sum((u - u_c)(v - v_c)) into products."""
    for n in range(start, stop):
        for ch in range(u.shape[1]):
            total, total_product = sums[ch], products[ch]
            for s in range(u.shape[2]):
                du = u[n, ch, s] - u_center[ch]
                total += du
                total_product += du * (v[n, ch, s] - v_center[ch])
            sums[ch], products[ch] = total, total_product


@njit(parallel=True, cache=True)
def channel_sum_parts(u, u_center, v, v_center, sums, products):
    """Per chunk c of the samples of (N, C, S) arrays, per channel: sums[c] = sum(u - u_center) and
    products[c] = sum((u - u_center) * (v - v_center)).

    With u = v = x these are the moments of x about the centers (batch statistics); with u = grad,
    v = x, they are the two sums batch norm's backward needs.
    """
    chunks, samples = sums.shape[0], u.shape[0]
    if chunks == 1:
        _channel_sums_chunk(u, u_center, v, v_center, sums[0], products[0], 0, samples)
    else:
        for c in prange(chunks):
            _channel_sums_chunk(u, u_center, v, v_center, sums[c], products[c], c * samples // chunks,
                                (c + 1) * samples // chunks)


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _combine_sample(u, v, a, u_center, b, v_center, offset, out):
    """out[ch] = a[ch] (u[ch] - u_center[ch]) + b[ch] (v[ch] - v_center[ch]) + offset[ch], one (C, S) sample."""
    for ch in range(v.shape[0]):
        a_ch, u_ch, b_ch, v_ch, offset_ch = a[ch], u_center[ch], b[ch], v_center[ch], offset[ch]
        for s in range(v.shape[1]):
            out[ch, s] = a_ch * (u[ch, s] - u_ch) + b_ch * (v[ch, s] - v_ch) + offset_ch


@njit(parallel=True, cache=True)
def channel_combine_samples(u, v, a, u_center, b, v_center, offset, out):
    """``_combine_sample`` for every sample of (N, C, S) arrays, in parallel over samples.

    Batch norm's backward is this map of (grad, x); its forward is the special case a = 0.
    """
    if v.size < PARALLEL_MIN_ELEMENTS:
        for n in range(v.shape[0]):
            _combine_sample(u[n], v[n], a, u_center, b, v_center, offset, out[n])
    else:
        for n in prange(v.shape[0]):
            _combine_sample(u[n], v[n], a, u_center, b, v_center, offset, out[n])


# -- group norm: (sample, group) blocks of (N, G, K, S) -------------------------------------------------


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _group_norm_block(x, weight, bias, eps, out):
    """Normalise one (K, S) block with per-channel weight and bias; returns (mean, rstd)."""
    mean, rstd = _mean_rstd(x.reshape(-1), eps)
    for k in range(x.shape[0]):
        scale, shift = rstd * weight[k], bias[k]
        for s in range(x.shape[1]):
            out[k, s] = (x[k, s] - mean) * scale + shift
    return mean, rstd


@njit(parallel=True, cache=True)
def group_norm_blocks(x, weight, bias, eps, out, mean, rstd):
    """Group norm of every (sample, group) block; saves each block's mean and rstd."""
    samples, groups = x.shape[0], x.shape[1]
    if x.size < PARALLEL_MIN_ELEMENTS:
        for i in range(samples * groups):
            n, g = i // groups, i % groups
            mean[n, g], rstd[n, g] = _group_norm_block(x[n, g], weight[g], bias[g], eps, out[n, g])
    else:
        for i in prange(samples * groups):
            n, g = i // groups, i % groups
            mean[n, g], rstd[n, g] = _group_norm_block(x[n, g], weight[g], bias[g], eps, out[n, g])


@njit(fastmath=EXACT_FASTMATH, cache=True)
def _group_norm_backward_block(grad, x, mean, rstd, weight, dx, dweight, dbias):
    """dx of one (K, S) block; writes the block's per-channel sums of grad * x_hat and grad."""
    real = x.dtype.type
    sum_gw = real(0)
    sum_gw_xhat = real(0)
    for k in range(x.shape[0]):
        channel_gxhat = real(0)
        channel_g = real(0)
        for s in range(x.shape[1]):
            xhat = (x[k, s] - mean) * rstd
            channel_gxhat += grad[k, s] * xhat
            channel_g += grad[k, s]
        dweight[k], dbias[k] = channel_gxhat, channel_g
        sum_gw += weight[k] * channel_g
        sum_gw_xhat += weight[k] * channel_gxhat
    count = real(x.shape[0] * x.shape[1])
    mean_gw, mean_gw_xhat = sum_gw / count, sum_gw_xhat / count
    for k in range(x.shape[0]):
        for s in range(x.shape[1]):
            xhat = (x[k, s] - mean) * rstd
            dx[k, s] = rstd * (grad[k, s] * weight[k] - mean_gw - xhat * mean_gw_xhat)


@njit(parallel=True, cache=True)
def group_norm_backward_blocks(grad, x, mean, rstd, weight, dx, dweight_parts, dbias_parts):
    """dx block by block; the (N, G, K) ``*_parts`` get each sample's per-channel sums."""
    samples, groups = x.shape[0], x.shape[1]
    if x.size < PARALLEL_MIN_ELEMENTS:
        for i in range(samples * groups):
            n, g = i // groups, i % groups
            _group_norm_backward_block(grad[n, g], x[n, g], mean[n, g], rstd[n, g], weight[g], dx[n, g],
                                       dweight_parts[n, g], dbias_parts[n, g])
    else:
        for i in prange(samples * groups):
            n, g = i // groups, i % groups
            _group_norm_backward_block(grad[n, g], x[n, g], mean[n, g], rstd[n, g], weight[g], dx[n, g],
                                       dweight_parts[n, g], dbias_parts[n, g])


# -- wrappers: arrays of any float dtype in, results in the input's dtype out --------------------------


def _work(x: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
    """``x`` as a C-contiguous array in its compute dtype (or ``dtype``)."""
    return np.ascontiguousarray(x, dtype=dtype or compute_dtype(x.dtype))


def _affine_or_default(values: np.ndarray | None, shape, fill: float, dtype: np.dtype) -> np.ndarray:
    return np.full(shape, fill, dtype=dtype) if values is None else _work(values, dtype).reshape(shape)


def _chunks(rows: int, size: int) -> int:
    """How many row chunks a reduction across rows uses: 1 (serial) for small inputs."""
    return 1 if size < PARALLEL_MIN_ELEMENTS or rows < 2 else min(rows, 4 * get_num_threads())


def layer_norm_forward(x: np.ndarray, weight, bias, eps: float):
    """Layer norm of each row of a 2-D ``x``: (out, mean, rstd). ``weight``/``bias`` may be None."""
    work = _work(x)
    width = work.shape[1]
    out = np.empty_like(work)
    mean, rstd = np.empty(len(work), work.dtype), np.empty(len(work), work.dtype)
    if work.size:
        layer_norm_rows(work, _affine_or_default(weight, width, 1.0, work.dtype),
                        _affine_or_default(bias, width, 0.0, work.dtype), eps, out, mean, rstd)
    return out.astype(x.dtype, copy=False), mean, rstd


def layer_norm_backward(grad: np.ndarray, x: np.ndarray, mean: np.ndarray, rstd: np.ndarray, weight):
    """Gradients (dx, dweight, dbias) of ``layer_norm_forward`` for a 2-D ``x``."""
    work = _work(x)
    rows, width = work.shape
    dx = np.empty_like(work)
    chunks = _chunks(rows, work.size)
    dweight_parts, dbias_parts = np.zeros((chunks, width), work.dtype), np.zeros((chunks, width), work.dtype)
    if work.size:
        layer_norm_backward_rows(_work(grad, work.dtype), work, mean, rstd,
                                 _affine_or_default(weight, width, 1.0, work.dtype), dx, dweight_parts, dbias_parts)
    return dx.astype(x.dtype, copy=False), dweight_parts.sum(0), dbias_parts.sum(0)


def batch_norm_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance of an (N, C, S) ``x``, over N and S."""
    work = _work(x)
    samples, channels, size = work.shape
    count = samples * size
    chunks = _chunks(samples, work.size)
    sums, squares = np.zeros((chunks, channels), work.dtype), np.zeros((chunks, channels), work.dtype)
    shift = work[0, :, 0].copy()  # summing x - shift keeps float32 sums accurate (see _mean_rstd)
    channel_sum_parts(work, shift, work, shift, sums, squares)
    mean = shift + sums.sum(0) / count
    sums[:], squares[:] = 0, 0
    channel_sum_parts(work, mean, work, mean, sums, squares)
    return mean, squares.sum(0) / count


def channel_affine(x: np.ndarray, scale: np.ndarray, center: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``scale * (x - center) + shift`` per channel of an (N, C, S) ``x``; the others have shape (C,)."""
    work = _work(x)
    out = np.empty_like(work)
    zero = np.zeros(work.shape[1], work.dtype)
    channel_combine_samples(work, work, zero, zero, _work(scale, work.dtype), _work(center, work.dtype),
                            _work(shift, work.dtype), out)
    return out.astype(x.dtype, copy=False)


def batch_norm_backward(grad: np.ndarray, x: np.ndarray, mean: np.ndarray, rstd: np.ndarray, weight):
    """Gradients (dx, dweight, dbias) of training-mode batch norm of an (N, C, S) ``x``."""
    work = _work(x)
    samples, channels, size = work.shape
    g = _work(grad, work.dtype)
    chunks = _chunks(samples, work.size)
    sum_grad = np.zeros((chunks, channels), work.dtype)
    sum_grad_centered = np.zeros((chunks, channels), work.dtype)
    channel_sum_parts(g, np.zeros(channels, work.dtype), work, mean, sum_grad, sum_grad_centered)
    sum_grad, sum_grad_centered = sum_grad.sum(0), sum_grad_centered.sum(0)
    weight = _affine_or_default(weight, channels, 1.0, work.dtype)
    count = samples * size
    # dx = w rstd (g - mean(g)) - w rstd^3 mean(g (x - mean)) (x - mean), per channel
    dx = np.empty_like(work)
    channel_combine_samples(g, work, weight * rstd, sum_grad / count, -weight * rstd ** 3 * sum_grad_centered / count,
                            mean, np.zeros(channels, work.dtype), dx)
    return dx.astype(x.dtype, copy=False), sum_grad_centered * rstd, sum_grad


def group_norm_forward(x: np.ndarray, weight, bias, eps: float):
    """Group norm of an (N, G, K, S) ``x``: (out, mean, rstd) with statistics of shape (N, G).

    ``weight`` and ``bias`` have one entry per channel (G * K), or are None.
    """
    work = _work(x)
    samples, groups, per_group, _ = work.shape
    out = np.empty_like(work)
    mean, rstd = np.empty((samples, groups), work.dtype), np.empty((samples, groups), work.dtype)
    if work.size:
        group_norm_blocks(work, _affine_or_default(weight, (groups, per_group), 1.0, work.dtype),
                          _affine_or_default(bias, (groups, per_group), 0.0, work.dtype), eps, out, mean, rstd)
    return out.astype(x.dtype, copy=False), mean, rstd


def group_norm_backward(grad: np.ndarray, x: np.ndarray, mean: np.ndarray, rstd: np.ndarray, weight):
    """Gradients (dx, dweight, dbias) of ``group_norm_forward``; dweight and dbias per channel."""
    work = _work(x)
    samples, groups, per_group, _ = work.shape
    dx = np.empty_like(work)
    dweight_parts = np.zeros((samples, groups, per_group), work.dtype)
    dbias_parts = np.zeros((samples, groups, per_group), work.dtype)
    if work.size:
        group_norm_backward_blocks(_work(grad, work.dtype), work, mean, rstd,
                                   _affine_or_default(weight, (groups, per_group), 1.0, work.dtype), dx,
                                   dweight_parts, dbias_parts)
    return dx.astype(x.dtype, copy=False), dweight_parts.sum(0).reshape(-1), dbias_parts.sum(0).reshape(-1)
