"""Fused softmax, log-softmax and cross-entropy kernels, forward and backward.

Every kernel works on the rows of a C-contiguous 2-D array: the wrappers at the bottom move
the softmax dimension last, compute float16/bfloat16 inputs in float32, and put the result
back in the caller's layout and dtype. Row ``i`` is one independent softmax, so rows run in
parallel.

Performance contract: rows in parallel (``prange``) once there are enough of them; a row is
read from memory once and stays in L1 for the kernel's few passes over it; no allocation
inside the loops. Two details make the float32 passes fast: ``exp_nonpositive`` replaces the
C library's ``exp`` (a call the compiler cannot turn into SIMD) with a branch-free polynomial,
and ``row_max`` keeps eight running maxima instead of one.

May import: numpy, numba.

>>> import numpy as np
>>> softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]], dtype=np.float32), 1).round(4)
array([[0.5 , 0.5 ],
       [0.25, 0.75]], dtype=float32)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

# Let the compiler reorder sums and fuse multiply-adds, but keep NaN and infinity semantics.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


# -- scalar helpers ------------------------------------------------------------------------------


def exp_nonpositive(v):
    """``exp(v)`` for ``v <= 0`` (every exponent a softmax takes); see ``_exp_float32``."""
    return math.exp(v)


@njit(fastmath=FASTMATH, cache=True)
def _exp_float32(v):
    """float32 ``exp(v)`` for ``v <= 0`` with no library call, so a loop of them vectorises.

    Write v = n ln2 + r with n an integer and |r| <= ln2/2; then exp(v) = 2^n exp(r), with
    exp(r) from a degree-7 polynomial (Cephes' expf, within 2 ulp) and 2^n built directly
    from its bits (exponent field n + 127). Below about -87.5 the field reaches 0 and so does
    the result (float32's smallest normal number is exp(-87.3)). No branches: the two clamps
    below are selects, which keeps a loop of ``_exp_float32`` vectorisable even inside a sum.
    """
    for_n = v if v > np.float32(-88.0) else np.float32(-88.0)  # -inf and NaN give n = -127: defined
    for_r = np.float32(-88.0) if v < np.float32(-88.0) else v  # but a NaN stays NaN in r
    n = math.floor(for_n * np.float32(1.44269504) + np.float32(0.5))
    r = for_r - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)  # ln2 split in two parts
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    two_to_n = np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)
    return p * two_to_n


@overload(exp_nonpositive, jit_options={"fastmath": FASTMATH})
def _exp_nonpositive_typed(v):
    if v == types.float32:
        return lambda v: _exp_float32(v)
    return lambda v: math.exp(v)  # float64 keeps the C library's exp: full double precision


@njit(cache=True)
def row_max(row):
    """Largest element of a non-empty 1-D array.

    Eight independent running maxima: a single one is a chain of dependent compares the
    compiler will not vectorise. (A NaN may be skipped here; it still poisons the row's sum.)
    """
    n = row.shape[0]
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = row[0]
    k = 0
    while k + 8 <= n:
        m0, m1, m2, m3 = max(m0, row[k]), max(m1, row[k + 1]), max(m2, row[k + 2]), max(m3, row[k + 3])
        m4, m5, m6, m7 = max(m4, row[k + 4]), max(m5, row[k + 5]), max(m6, row[k + 6]), max(m7, row[k + 7])
        k += 8
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for j in range(k, n):
        m = max(m, row[j])
    return m


@njit(fastmath=FASTMATH, cache=True)
def row_logsumexp(row):
    """``log(sum(exp(row)))`` without overflow: shift by the row's maximum first."""
    m = row_max(row)
    total = row.dtype.type(0)
    for j in range(row.shape[0]):
        total += exp_nonpositive(row[j] - m)
    return row.dtype.type(m + math.log(total))


# -- one row ---------------------------------------------------------------------------------------


@njit(fastmath=FASTMATH, cache=True)
def _softmax_row(row, out):
    """out = exp(row - max) / sum(exp(row - max)): four short passes over a row that sits in L1.

    (Summing in a pass of its own is faster than summing while computing the exponentials.)
    """
    m = row_max(row)
    for j in range(row.shape[0]):
        out[j] = exp_nonpositive(row[j] - m)
    total = row.dtype.type(0)
    for j in range(row.shape[0]):
        total += out[j]
    scale = row.dtype.type(1) / total
    for j in range(row.shape[0]):
        out[j] *= scale


@njit(fastmath=FASTMATH, cache=True)
def _log_softmax_row(row, out):
    """out = row - logsumexp(row), with ``out`` holding the exponentials meanwhile (as in ``_softmax_row``)."""
    m = row_max(row)
    for j in range(row.shape[0]):
        out[j] = exp_nonpositive(row[j] - m)
    total = row.dtype.type(0)
    for j in range(row.shape[0]):
        total += out[j]
    lse = row.dtype.type(m + math.log(total))
    for j in range(row.shape[0]):
        out[j] = row[j] - lse


@njit(fastmath=FASTMATH, cache=True)
def _softmax_backward_row(y, grad, out):
    """For y = softmax(x): out = y * (grad - sum(grad * y))."""
    dot = y.dtype.type(0)
    for j in range(y.shape[0]):
        dot += grad[j] * y[j]
    for j in range(y.shape[0]):
        out[j] = y[j] * (grad[j] - dot)


@njit(fastmath=FASTMATH, cache=True)
def _log_softmax_backward_row(y, grad, out):
    """For y = log_softmax(x): out = grad - exp(y) * sum(grad)."""
    total = y.dtype.type(0)
    for j in range(y.shape[0]):
        total += grad[j]
    for j in range(y.shape[0]):
        out[j] = grad[j] - exp_nonpositive(y[j]) * total


# -- kernels on (rows, cols) arrays -----------------------------------------------------------------
#
# Rows go to threads only when there are enough elements to pay for waking them (the grain
# PyTorch uses too); a small batch such as MNIST's (64, 10) logits runs on the calling thread.

PARALLEL_MIN_ELEMENTS = 32768


@njit(parallel=True, cache=True)
def softmax_rows(x, out):
    """Softmax of every row of ``x`` into ``out``."""
    if x.size < PARALLEL_MIN_ELEMENTS:
        for i in range(x.shape[0]):
            _softmax_row(x[i], out[i])
    else:
        for i in prange(x.shape[0]):
            _softmax_row(x[i], out[i])


@njit(parallel=True, cache=True)
def log_softmax_rows(x, out):
    """Log-softmax of every row of ``x`` into ``out``."""
    if x.size < PARALLEL_MIN_ELEMENTS:
        for i in range(x.shape[0]):
            _log_softmax_row(x[i], out[i])
    else:
        for i in prange(x.shape[0]):
            _log_softmax_row(x[i], out[i])


@njit(parallel=True, cache=True)
def softmax_backward_rows(y, grad, out):
    """Softmax's input gradient, row by row, from its output ``y`` and the output gradient."""
    if y.size < PARALLEL_MIN_ELEMENTS:
        for i in range(y.shape[0]):
            _softmax_backward_row(y[i], grad[i], out[i])
    else:
        for i in prange(y.shape[0]):
            _softmax_backward_row(y[i], grad[i], out[i])


@njit(parallel=True, cache=True)
def log_softmax_backward_rows(y, grad, out):
    """Log-softmax's input gradient, row by row, from its output ``y`` and the output gradient."""
    if y.size < PARALLEL_MIN_ELEMENTS:
        for i in range(y.shape[0]):
            _log_softmax_backward_row(y[i], grad[i], out[i])
    else:
        for i in prange(y.shape[0]):
            _log_softmax_backward_row(y[i], grad[i], out[i])


@njit(fastmath=FASTMATH, cache=True)
def _cross_entropy_row(row, t, weight, smoothing):
    """(loss, lse) of one row with target class ``t``, lse = logsumexp(row), e the smoothing:

    loss = (1 - e) w[t] (lse - row[t]) + e/C sum_c w[c] (lse - row[c]).
    """
    lse = row_logsumexp(row)
    nll = weight[t] * (lse - row[t])
    if smoothing == 0:
        return nll, lse
    spread = row.dtype.type(0)
    for c in range(row.shape[0]):
        spread += weight[c] * (lse - row[c])
    return (1 - smoothing) * nll + smoothing / row.shape[0] * spread, lse


@njit(parallel=True, cache=True)
def cross_entropy_rows(logits, target, weight, ignore_index, smoothing, loss, lse):
    """Per-row cross-entropy with class indices, label smoothing and class weights.

    Rows whose target is ``ignore_index`` get loss 0 (and lse 0). ``lse`` is saved for the
    backward kernel.
    """
    if logits.size < PARALLEL_MIN_ELEMENTS:
        for i in range(logits.shape[0]):
            if target[i] == ignore_index:
                loss[i], lse[i] = 0, 0
            else:
                loss[i], lse[i] = _cross_entropy_row(logits[i], target[i], weight, smoothing)
    else:
        for i in prange(logits.shape[0]):
            if target[i] == ignore_index:
                loss[i], lse[i] = 0, 0
            else:
                loss[i], lse[i] = _cross_entropy_row(logits[i], target[i], weight, smoothing)


@njit(fastmath=FASTMATH, cache=True)
def _cross_entropy_backward_row(row, lse, t, weight, total_weight, ignore_index, smoothing, scale, out):
    """out = scale * (softmax(row) * sum_c q[c] - q), q[c] = (1 - e) w[t] [c == t] + e/C w[c]; 0 if ignored."""
    if t == ignore_index:
        out[:] = 0
        return
    real = row.dtype.type  # keep the inner loop in the logits' precision
    classes = row.shape[0]
    picked = real((1 - smoothing) * weight[t])
    mass = real((picked + smoothing / classes * total_weight) * scale)
    spread = real(smoothing / classes * scale)
    for c in range(classes):
        out[c] = exp_nonpositive(row[c] - lse) * mass - spread * weight[c]
    out[t] -= picked * scale


@njit(parallel=True, cache=True)
def cross_entropy_backward_rows(logits, lse, target, weight, total_weight, ignore_index, smoothing, scale, out):
    """Gradient of ``cross_entropy_rows``, row ``i`` scaled by ``scale[i]``; ignored rows get 0.

    (No whole-array expressions here: under ``parallel=True`` each would become its own
    parallel loop, and waking threads for it costs more than the work on a small batch.)
    """
    if logits.size < PARALLEL_MIN_ELEMENTS:
        for i in range(logits.shape[0]):
            _cross_entropy_backward_row(logits[i], lse[i], target[i], weight, total_weight, ignore_index, smoothing,
                                        scale[i], out[i])
    else:
        for i in prange(logits.shape[0]):
            _cross_entropy_backward_row(logits[i], lse[i], target[i], weight, total_weight, ignore_index, smoothing,
                                        scale[i], out[i])


# -- wrappers: any layout and dtype in, the same out ------------------------------------------------


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; float32 and narrower floats are computed in float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def as_rows(x: np.ndarray, dim: int) -> np.ndarray:
    """``x`` with ``dim`` moved last, as a C-contiguous float32/float64 (rows, cols) array.

    No copy when ``dim`` is already last and ``x`` is contiguous in its compute dtype.
    """
    moved = x if dim == x.ndim - 1 else np.moveaxis(x, dim, -1)
    rows = np.ascontiguousarray(moved, dtype=compute_dtype(x.dtype))
    return rows.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])


def from_rows(rows: np.ndarray, like: np.ndarray, dim: int) -> np.ndarray:
    """Undo ``as_rows``: back to ``like``'s shape (a view with ``dim`` in place) and dtype."""
    if dim == like.ndim - 1:
        out = rows.reshape(like.shape)
    else:
        moved_shape = like.shape[:dim] + like.shape[dim + 1:] + like.shape[dim:dim + 1]
        out = np.moveaxis(rows.reshape(moved_shape), -1, dim)
    return out.astype(like.dtype, copy=False)


def _rowwise(kernel, dim: int, *arrays: np.ndarray) -> np.ndarray:
    """Run a row kernel ``kernel(*rows, out)`` over ``dim`` of same-shaped arrays."""
    first = arrays[0]
    if first.ndim == 0:
        return _rowwise(kernel, 0, *[a.reshape(1) for a in arrays]).reshape(())
    if first.size == 0:
        return np.empty_like(first)
    rows = [as_rows(a, dim) for a in arrays]
    out = np.empty_like(rows[0])
    kernel(*rows, out)
    return from_rows(out, first, dim)


def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """``exp(x) / sum(exp(x))`` along ``dim``."""
    return _rowwise(softmax_rows, dim, x)


def log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    """``x - logsumexp(x)`` along ``dim``."""
    return _rowwise(log_softmax_rows, dim, x)


def softmax_backward(y: np.ndarray, grad: np.ndarray, dim: int) -> np.ndarray:
    """Input gradient of softmax along ``dim``, given its output ``y``."""
    return _rowwise(softmax_backward_rows, dim, y, grad)


def log_softmax_backward(y: np.ndarray, grad: np.ndarray, dim: int) -> np.ndarray:
    """Input gradient of log_softmax along ``dim``, given its output ``y``."""
    return _rowwise(log_softmax_backward_rows, dim, y, grad)


def cross_entropy_forward(logits: np.ndarray, target: np.ndarray, weight: np.ndarray, ignore_index: int,
                          label_smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-row losses and log-sum-exps of (rows, classes) ``logits`` (float32 or float64).

    ``target`` holds int64 class indices (or ``ignore_index``), ``weight`` one weight per class
    in the dtype of ``logits``.
    """
    loss, lse = np.empty(len(logits), logits.dtype), np.empty(len(logits), logits.dtype)
    if len(logits):
        cross_entropy_rows(logits, target, weight, ignore_index, label_smoothing, loss, lse)
    return loss, lse


def cross_entropy_backward(logits: np.ndarray, lse: np.ndarray, target: np.ndarray, weight: np.ndarray,
                           ignore_index: int, label_smoothing: float, scale: np.ndarray) -> np.ndarray:
    """Gradient of the per-row losses with respect to ``logits``, row ``i`` scaled by ``scale[i]``."""
    out = np.empty_like(logits)
    if len(logits):
        cross_entropy_backward_rows(logits, lse, target, weight, weight.sum(), ignore_index, label_smoothing, scale,
                                    out)
    return out
