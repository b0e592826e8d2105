"""Fused optimizer updates: Adam and AdamW in one pass over memory.

NumPy spells one Adam step as about a dozen whole-array operations, each reading and
writing every element; the kernel below reads each element of the parameter, gradient and
moment buffers once, updates them in registers and writes them back once, in parallel.
The scalars that are the same for every element (bias corrections, step size) are computed
by the caller. Arrays are flat and contiguous, float32 or float64, all of one dtype, and the
arithmetic stays in that dtype (Numba would promote ``1 - float32`` or ``math.sqrt`` to float64,
which costs 2-4x here).

Performance contract: one read of grad, one read and write of param, exp_avg, exp_avg_sq
(and max_exp_avg_sq with amsgrad); main loop in parallel for large arrays (a serial loop for
small ones, where starting threads costs more than the work); no allocation.

>>> import numpy as np
>>> w, g = np.array([1.0]), np.array([0.5])
>>> m, v, vmax = np.zeros(1), np.zeros(1), np.zeros(0)
>>> adam_update(w, g, m, v, vmax, 1.0, 0.0, 0.9, 0.999, 0.1 / (1 - 0.9), (1 - 0.999) ** 0.5, 1e-8, False, False)
>>> w.round(6)   # the first Adam step moves every weight by lr = 0.1
array([0.9])
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

PARALLEL_MIN_SIZE = 16384  # below this, starting threads costs more than it saves


def adam_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray,
                max_exp_avg_sq: np.ndarray, param_decay: float, grad_decay: float, beta1: float, beta2: float,
                step_size: float, bias_correction2_sqrt: float, eps: float, amsgrad: bool, maximize: bool) -> None:
    """One Adam/AdamW step, in place, PyTorch's formulas element by element.

    ``param_decay`` multiplies the parameter first (AdamW's ``1 - lr * weight_decay``, else 1);
    ``grad_decay`` is Adam's L2 weight decay added to the gradient (0 for AdamW).
    ``max_exp_avg_sq`` is only read with ``amsgrad`` (pass an empty array otherwise).
    Arrays of at least ``PARALLEL_MIN_SIZE`` elements are updated in parallel.
    """
    kernel = _adam_parallel if param.size >= PARALLEL_MIN_SIZE else _adam_serial
    real = param.dtype.type  # every scalar in the array's dtype: mixing float32 with float64 stops vectorisation
    kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, real(param_decay), real(grad_decay), real(1.0 - beta1),
           real(beta2), real(1.0 - beta2), real(step_size), real(1.0 / bias_correction2_sqrt), real(eps), amsgrad,
           maximize)


@njit(inline="always")
def _adam_element(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, param_decay, grad_decay, one_minus_beta1,
                  beta2, one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, amsgrad, maximize):
    g = -grad[i] if maximize else grad[i]
    w = param[i] * param_decay
    if grad_decay != 0:
        g += grad_decay * w
    m = exp_avg[i] + one_minus_beta1 * (g - exp_avg[i])  # torch's lerp(exp_avg, g, 1 - beta1)
    v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g
    exp_avg[i] = m
    exp_avg_sq[i] = v
    if amsgrad:
        v = max(max_exp_avg_sq[i], v)
        max_exp_avg_sq[i] = v
    param[i] = w - step_size * (m / (np.sqrt(v) * inv_bias_correction2_sqrt + eps))  # np.sqrt keeps float32


@njit(parallel=True, cache=True)
def _adam_parallel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, param_decay, grad_decay, one_minus_beta1,
                   beta2, one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, amsgrad, maximize):
    for i in prange(param.size):
        _adam_element(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, param_decay, grad_decay, one_minus_beta1,
                      beta2, one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, amsgrad, maximize)


@njit(cache=True)
def _adam_serial(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, param_decay, grad_decay, one_minus_beta1,
                 beta2, one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, amsgrad, maximize):
    for i in range(param.size):
        _adam_element(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, param_decay, grad_decay, one_minus_beta1,
                      beta2, one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, amsgrad, maximize)
