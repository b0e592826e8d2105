"""Scalar math for the kernels that ``ds.jit`` generates: one function per formula and dtype.

Generated fused kernels compute one element at a time and call these functions on scalars;
Numba inlines them, so a whole chain stays in registers and the loop can be vectorised.
Each formula exists in a float32 and a float64 version whose constants have the argument's
dtype (a Python float would turn float32 arithmetic into float64, 2-4x slower).

``erf_f32`` is a rational approximation (the minimax one Eigen and XLA use for float32):
``x * P(x^2) / Q(x^2)`` on [-4, 4], clamped outside, maximum error about 4e-7. It is plain
arithmetic, so LLVM vectorises it with AVX; ``math.erf`` is a scalar library call per element
and made the eager GELU kernel the slowest op of an MLP. float64 keeps ``math.erf``.

Performance contract: no allocation, no branches beyond selects; every function inlines.

>>> import numpy as np
>>> round(float(erf_f32(np.float32(0.5))), 6), round(float(gelu_f32(np.float32(1.0))), 6)
(0.5205, 0.841345)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_F = np.float32
_ERF_P = tuple(_F(c) for c in (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                -1.60960333262415e-02))
_ERF_Q = tuple(_F(c) for c in (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                -7.37332916720468e-03, -1.42647390514189e-02))
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _ERF_P
_Q0, _Q1, _Q2, _Q3, _Q4 = _ERF_Q
_FOUR32, _HALF32, _ONE32, _ZERO32 = _F(4.0), _F(0.5), _F(1.0), _F(0.0)
_SQRT_HALF32, _INV_SQRT_2PI32 = _F(1.0 / math.sqrt(2.0)), _F(1.0 / math.sqrt(2.0 * math.pi))
_TANH_C32, _TANH_K32, _TANH_3K32 = _F(math.sqrt(2.0 / math.pi)), _F(0.044715), _F(3.0 * 0.044715)
_SQRT_HALF64, _INV_SQRT_2PI64 = 1.0 / math.sqrt(2.0), 1.0 / math.sqrt(2.0 * math.pi)
_TANH_C64 = math.sqrt(2.0 / math.pi)


@njit(inline="always")
def erf_f32(x):
    """The error function in float32 (rational approximation, |error| < 5e-7)."""
    v = min(max(x, -_FOUR32), _FOUR32)
    v2 = v * v
    p = (((((_P0 * v2 + _P1) * v2 + _P2) * v2 + _P3) * v2 + _P4) * v2 + _P5) * v2 + _P6
    q = (((_Q0 * v2 + _Q1) * v2 + _Q2) * v2 + _Q3) * v2 + _Q4
    return v * p / q


@njit(inline="always")
def erf_f64(x):
    return math.erf(x)


@njit(inline="always")
def gelu_f32(x):
    """x * Phi(x), the exact GELU."""
    return _HALF32 * x * (_ONE32 + erf_f32(x * _SQRT_HALF32))


@njit(inline="always")
def gelu_f64(x):
    return 0.5 * x * (1.0 + math.erf(x * _SQRT_HALF64))


@njit(inline="always")
def gelu_grad_f32(x):
    """GELU'(x) = Phi(x) + x phi(x)."""
    return _HALF32 * (_ONE32 + erf_f32(x * _SQRT_HALF32)) + x * _INV_SQRT_2PI32 * math.exp(-_HALF32 * x * x)


@njit(inline="always")
def gelu_grad_f64(x):
    return 0.5 * (1.0 + math.erf(x * _SQRT_HALF64)) + x * _INV_SQRT_2PI64 * math.exp(-0.5 * x * x)


@njit(inline="always")
def gelu_tanh_f32(x):
    """The tanh approximation of GELU."""
    return _HALF32 * x * (_ONE32 + math.tanh(_TANH_C32 * (x + _TANH_K32 * x * x * x)))


@njit(inline="always")
def gelu_tanh_f64(x):
    return 0.5 * x * (1.0 + math.tanh(_TANH_C64 * (x + 0.044715 * x * x * x)))


@njit(inline="always")
def gelu_tanh_grad_f32(x):
    t = math.tanh(_TANH_C32 * (x + _TANH_K32 * x * x * x))
    return _HALF32 * (_ONE32 + t) + _HALF32 * x * (_ONE32 - t * t) * _TANH_C32 * (_ONE32 + _TANH_3K32 * x * x)


@njit(inline="always")
def gelu_tanh_grad_f64(x):
    t = math.tanh(_TANH_C64 * (x + 0.044715 * x * x * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _TANH_C64 * (1.0 + 3.0 * 0.044715 * x * x)


@njit(inline="always")
def sigmoid_f32(x):
    """1 / (1 + exp(-x)) without overflow."""
    if x >= _ZERO32:
        return _ONE32 / (_ONE32 + math.exp(-x))
    e = math.exp(x)
    return e / (_ONE32 + e)


@njit(inline="always")
def sigmoid_f64(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@njit(inline="always")
def softplus_f32(x, beta, threshold):
    """log(1 + exp(beta x)) / beta, and x itself above the threshold (as PyTorch)."""
    z = beta * x
    if z > threshold:
        return x
    return (max(z, _ZERO32) + math.log1p(math.exp(-abs(z)))) / beta


@njit(inline="always")
def softplus_f64(x, beta, threshold):
    z = beta * x
    if z > threshold:
        return x
    return (max(z, 0.0) + math.log1p(math.exp(-abs(z)))) / beta
