"""Fused Adam and AdamW on the GPU: the twin of ``dslearn.kernels.cpu.optim``, one thread per element.

``adam_update`` has the CPU kernel's signature, with flat contiguous ``CudaArray`` buffers (a
parameter's storage, updated in place) instead of NumPy arrays. Each thread reads its element
of the parameter, gradient and moments once, updates them in registers and writes them back
once: a dozen whole-array NumPy operations become one pass over memory, which on a GPU also
means one kernel launch instead of a dozen. The scalars that are the same for every element
(bias corrections, step size) are computed by the caller and passed in the arrays' dtype, so
float32 arithmetic stays float32.

Performance contract: one read of grad, one read and write of param, exp_avg, exp_avg_sq (and
max_exp_avg_sq with amsgrad), coalesced; grid-stride loop; no allocation.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from dslearn.kernels.cuda.array import CudaArray
>>> w, g = CudaArray.from_numpy(np.array([1.0])), CudaArray.from_numpy(np.array([0.5]))
>>> m, v, vmax = CudaArray.from_numpy(np.zeros(1)), CudaArray.from_numpy(np.zeros(1)), CudaArray.empty((0,), np.float64)
>>> adam_update(w, g, m, v, vmax, 1.0, 0.0, 0.9, 0.999, 0.1 / (1 - 0.9), (1 - 0.999) ** 0.5, 1e-8, False, False)
>>> w.to_numpy().round(6)   # the first Adam step moves every weight by lr = 0.1
array([0.9])
"""

from __future__ import annotations

import math

import numpy as np
from dslearn.kernels.cuda.array import CudaArray
from dslearn.kernels.cuda.runtime import THREADS, blocks_for
from numba import cuda


@cuda.jit
def adam_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, param_decay, grad_decay, one_minus_beta1, beta2,
                one_minus_beta2, step_size, inv_bias_correction2_sqrt, eps, amsgrad, maximize):
    """PyTorch's Adam/AdamW step for every element, in place (see ``kernels.cpu.optim`` for the formulas)."""
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
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
        param[i] = w - step_size * (m / (math.sqrt(v) * inv_bias_correction2_sqrt + eps))


def _flat(array: CudaArray):
    """The flat device storage of a contiguous CudaArray (its first ``size`` elements)."""
    if not array.is_contiguous():
        raise ValueError(f"adam_update: buffers must be contiguous, got shape {array.shape} strides {array.strides}")
    return array.storage[:array.size]


def adam_update(param: CudaArray, grad: CudaArray, exp_avg: CudaArray, exp_avg_sq: CudaArray,
                max_exp_avg_sq: CudaArray, param_decay: float, grad_decay: float, beta1: float, beta2: float,
                step_size: float, bias_correction2_sqrt: float, eps: float, amsgrad: bool, maximize: bool) -> None:
    """One Adam/AdamW step, in place, PyTorch's formulas element by element (arguments as on the CPU).

    ``max_exp_avg_sq`` is only read with ``amsgrad`` (pass an empty array otherwise).
    """
    if grad.dtype != param.dtype or not grad.is_contiguous():
        grad = grad.astype(param.dtype)  # a contiguous copy in the parameter's dtype
    real = np.dtype(param.dtype).type
    if param.size:
        adam_kernel[blocks_for(param.size), THREADS](
            _flat(param), _flat(grad), _flat(exp_avg), _flat(exp_avg_sq), _flat(max_exp_avg_sq), real(param_decay),
            real(grad_decay), real(1.0 - beta1), real(beta2), real(1.0 - beta2), real(step_size),
            real(1.0 / bias_correction2_sqrt), real(eps), amsgrad, maximize)
