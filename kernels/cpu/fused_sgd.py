"""Fused SGD update for compiled training steps: momentum, dampening, Nesterov and weight decay in one pass.

``dslearn.optim.SGD`` spells a step as NumPy whole-array operations (scale the momentum buffer,
add the gradient, scale by the learning rate, subtract): four or five trips through memory per
parameter. The compiled training step of ``ds.jit(..., optimizer=SGD(...))`` calls this kernel
instead: each element of the gradient, the buffer and the parameter is read once and written
once. The arithmetic is the optimizer's, operation for operation and in the parameter's dtype
(no fused multiply-add), so the result is the same, bit for bit, as ``SGD.step()`` once the
momentum buffer exists (the optimizer's own first step creates it)::

    d = -g if maximize else g;  d += weight_decay * w
    b = momentum * b + (1 - dampening) * d        (when momentum != 0)
    d = d + momentum * b if nesterov else b
    w -= lr * d

Performance contract: one read of grad, one read and write of param and buffer; main loop in
parallel for arrays of at least ``PARALLEL_MIN_SIZE`` elements, serial below; no allocation.

>>> import numpy as np
>>> w, g, b = np.array([1.0]), np.array([0.5]), np.array([2.0])
>>> sgd_update(w, g, b, lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False)
>>> w.round(6), b  # b = 0.9 * 2 + 0.5; w = 1 - 0.1 * 2.3
(array([0.77]), array([2.3]))
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

PARALLEL_MIN_SIZE = 16384  # below this, starting threads costs more than it saves


def sgd_update(param: np.ndarray, grad: np.ndarray, buffer: np.ndarray, lr: float, momentum: float,
               dampening: float, weight_decay: float, nesterov: bool, maximize: bool) -> None:
    """One SGD step in place on flat-able contiguous arrays of one dtype (``buffer`` unused without momentum)."""
    kernel = _sgd_parallel if param.size >= PARALLEL_MIN_SIZE else _sgd_serial
    real = param.dtype.type
    kernel(param.reshape(-1), grad.reshape(-1), buffer.reshape(-1), real(lr), real(momentum), real(1.0 - dampening),
           dampening != 0.0, real(weight_decay), nesterov, maximize)


@njit(inline="always")
def _sgd_element(i, param, grad, buffer, lr, momentum, keep, damped, weight_decay, nesterov, maximize):
    d = -grad[i] if maximize else grad[i]
    if weight_decay != 0:
        d = d + weight_decay * param[i]
    if momentum != 0:
        b = buffer[i] * momentum
        b = b + (d * keep if damped else d)
        buffer[i] = b
        d = d + b * momentum if nesterov else b
    param[i] = param[i] - d * lr


@njit(parallel=True, cache=True)
def _sgd_parallel(param, grad, buffer, lr, momentum, keep, damped, weight_decay, nesterov, maximize):
    for i in prange(param.size):
        _sgd_element(i, param, grad, buffer, lr, momentum, keep, damped, weight_decay, nesterov, maximize)


@njit(cache=True)
def _sgd_serial(param, grad, buffer, lr, momentum, keep, damped, weight_decay, nesterov, maximize):
    for i in range(param.size):
        _sgd_element(i, param, grad, buffer, lr, momentum, keep, damped, weight_decay, nesterov, maximize)
