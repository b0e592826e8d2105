"""NumPy references for the softmax, log-softmax and cross-entropy kernels (``kernels.cpu.softmax``).

Same signatures as the kernels; written for clarity, one formula per line, and computed in
float64 (the result comes back in the input's dtype).

May import: numpy.

>>> import numpy as np
>>> softmax(np.array([0.0, np.log(3.0)]), 0)
array([0.25, 0.75])
"""

from __future__ import annotations

import numpy as np


def _logsumexp(x: np.ndarray, dim: int) -> np.ndarray:
    peak = np.max(x, axis=dim, keepdims=True)
    return peak + np.log(np.sum(np.exp(x - peak), axis=dim, keepdims=True))


def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    wide = x.astype(np.float64)
    return np.exp(wide - _logsumexp(wide, dim)).astype(x.dtype)


def log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    wide = x.astype(np.float64)
    return (wide - _logsumexp(wide, dim)).astype(x.dtype)


def softmax_backward(y: np.ndarray, grad: np.ndarray, dim: int) -> np.ndarray:
    y64, g64 = y.astype(np.float64), grad.astype(np.float64)
    return (y64 * (g64 - np.sum(g64 * y64, axis=dim, keepdims=True))).astype(y.dtype)


def log_softmax_backward(y: np.ndarray, grad: np.ndarray, dim: int) -> np.ndarray:
    y64, g64 = y.astype(np.float64), grad.astype(np.float64)
    return (g64 - np.exp(y64) * np.sum(g64, axis=dim, keepdims=True)).astype(y.dtype)


def _target_distribution(target, weight, ignore_index, label_smoothing, classes) -> np.ndarray:
    """q[i, c] = (1 - e) w[t] [c == t] + e/C w[c]; zero rows where the target is ignored."""
    kept = target != ignore_index
    onehot = np.zeros((len(target), classes))
    onehot[np.flatnonzero(kept), target[kept]] = 1.0
    q = (1 - label_smoothing) * onehot * weight + label_smoothing / classes * weight
    return q * kept[:, None]


def cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    wide = logits.astype(np.float64)
    lse = _logsumexp(wide, 1)
    q = _target_distribution(target, weight.astype(np.float64), ignore_index, label_smoothing, logits.shape[1])
    loss = np.sum(q * (lse - wide), axis=1)
    lse = np.where(target != ignore_index, lse[:, 0], 0.0)
    return loss.astype(logits.dtype), lse.astype(logits.dtype)


def cross_entropy_backward(logits, lse, target, weight, ignore_index, label_smoothing, scale):
    wide = logits.astype(np.float64)
    q = _target_distribution(target, weight.astype(np.float64), ignore_index, label_smoothing, logits.shape[1])
    p = np.exp(wide - lse.astype(np.float64)[:, None])
    grad = (p * q.sum(axis=1, keepdims=True) - q) * scale.astype(np.float64)[:, None]
    return grad.astype(logits.dtype)
