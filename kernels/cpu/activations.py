"""Elementwise activation kernels whose NumPy spelling would be slow or unstable.

Each kernel reads a contiguous array and writes a new one in a single parallel pass
(``prange``), so a GELU costs one trip through memory instead of NumPy's five or six
temporaries. Inputs narrower than float32 are computed in float32.

Performance contract: one read and one write of each element; main loop in parallel.

>>> import numpy as np
>>> gelu(np.array([0.0, 1.0], dtype=np.float32)).round(4)
array([0.    , 0.8413], dtype=float32)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_C = math.sqrt(2.0 / math.pi)


def _elementwise(kernel):
    """Wrap a flat kernel ``kernel(x_flat, out_flat)`` as ``f(x) -> new array``."""

    def run(x: np.ndarray, *params) -> np.ndarray:
        dtype = x.dtype
        work = np.ascontiguousarray(x, dtype=np.float32 if dtype.itemsize < 4 else dtype)
        out = np.empty_like(work)
        kernel(work.reshape(-1), out.reshape(-1), *params)
        out = out.reshape(x.shape)  # ascontiguousarray turns 0-d arrays into 1-d ones
        return out if out.dtype == dtype else out.astype(dtype)

    run.__name__, run.__doc__ = kernel.__name__.removesuffix("_kernel"), kernel.__doc__
    return run


@njit(parallel=True, cache=True)
def _sigmoid_kernel(x, out):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    for i in prange(x.size):
        v = x[i]
        if v >= 0:
            out[i] = 1.0 / (1.0 + math.exp(-v))
        else:
            e = math.exp(v)
            out[i] = e / (1.0 + e)


@njit(parallel=True, cache=True)
def _gelu_kernel(x, out):
    """x * Phi(x), Phi the standard normal CDF (the exact GELU)."""
    for i in prange(x.size):
        v = x[i]
        out[i] = 0.5 * v * (1.0 + math.erf(v * _SQRT_HALF))


@njit(parallel=True, cache=True)
def _gelu_grad_kernel(x, out):
    """d/dx GELU(x) = Phi(x) + x * phi(x)."""
    for i in prange(x.size):
        v = x[i]
        out[i] = 0.5 * (1.0 + math.erf(v * _SQRT_HALF)) + v * _INV_SQRT_2PI * math.exp(-0.5 * v * v)


@njit(parallel=True, cache=True)
def _gelu_tanh_kernel(x, out):
    """The tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    for i in prange(x.size):
        v = x[i]
        out[i] = 0.5 * v * (1.0 + math.tanh(_TANH_C * (v + 0.044715 * v * v * v)))


@njit(parallel=True, cache=True)
def _gelu_tanh_grad_kernel(x, out):
    """Derivative of the tanh-approximated GELU."""
    for i in prange(x.size):
        v = x[i]
        t = math.tanh(_TANH_C * (v + 0.044715 * v * v * v))
        out[i] = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * _TANH_C * (1.0 + 3.0 * 0.044715 * v * v)


@njit(parallel=True, cache=True)
def _softplus_kernel(x, out, beta, threshold):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""
    for i in prange(x.size):
        z = beta * x[i]
        if z > threshold:
            out[i] = x[i]
        else:
            out[i] = (max(z, 0.0) + math.log1p(math.exp(-abs(z)))) / beta


@njit(parallel=True, cache=True)
def _erf_kernel(x, out):
    """The error function."""
    for i in prange(x.size):
        out[i] = math.erf(x[i])


sigmoid = _elementwise(_sigmoid_kernel)
gelu = _elementwise(_gelu_kernel)
gelu_grad = _elementwise(_gelu_grad_kernel)
gelu_tanh = _elementwise(_gelu_tanh_kernel)
gelu_tanh_grad = _elementwise(_gelu_tanh_grad_kernel)
softplus = _elementwise(_softplus_kernel)
erf = _elementwise(_erf_kernel)
