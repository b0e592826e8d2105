"""Elementwise activation kernels on the GPU, twins of ``dslearn.kernels.cpu.activations``.

Same functions, same signatures: ``sigmoid(x)``, ``gelu(x)``, ``gelu_grad(x)``, ``gelu_tanh(x)``,
``gelu_tanh_grad(x)``, ``softplus(x, beta, threshold)`` and ``erf(x)`` take a ``CudaArray`` and
return a new one. Each kernel is one grid-stride loop over a flat contiguous array. The
constants (sqrt(1/2), 1/sqrt(2 pi), ...) are frozen into the kernel in the array's own dtype, so
float32 stays float32 on the GPU (Numba would compute ``v * 0.5`` in float64: a Python float is a
double); the kernels are therefore built once per dtype, float32 or float64. float16 inputs are
computed in float32 and rounded back.

Performance contract: one read and one write of each element, coalesced; grid-stride loop.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from dslearn.kernels.cuda.array import CudaArray
>>> gelu(CudaArray.from_numpy(np.array([0.0, 1.0], dtype=np.float32))).to_numpy().round(4)
array([0.    , 0.8413], dtype=float32)
"""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
from dslearn.kernels.cuda.array import CudaArray
from dslearn.kernels.cuda.runtime import THREADS, blocks_for
from numba import cuda


@functools.cache
def kernels(dtype: np.dtype) -> SimpleNamespace:
    """The activation kernels for float32 or float64 flat device arrays ``(x, out)``."""
    real = dtype.type
    zero, one, half = real(0), real(1), real(0.5)
    sqrt_half, inv_sqrt_2pi = real(1 / math.sqrt(2)), real(1 / math.sqrt(2 * math.pi))
    tanh_c, cubic = real(math.sqrt(2 / math.pi)), real(0.044715)

    @cuda.jit
    def sigmoid_kernel(x, out):
        """1 / (1 + exp(-x)), computed without overflow for large |x|."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            if v >= zero:
                out[i] = one / (one + math.exp(-v))
            else:
                e = math.exp(v)
                out[i] = e / (one + e)

    @cuda.jit
    def gelu_kernel(x, out):
        """x * Phi(x), Phi the standard normal CDF (the exact GELU)."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            out[i] = half * v * (one + math.erf(v * sqrt_half))

    @cuda.jit
    def gelu_grad_kernel(x, out):
        """d/dx GELU(x) = Phi(x) + x * phi(x)."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            out[i] = half * (one + math.erf(v * sqrt_half)) + v * inv_sqrt_2pi * math.exp(-half * v * v)

    @cuda.jit
    def gelu_tanh_kernel(x, out):
        """The tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            out[i] = half * v * (one + math.tanh(tanh_c * (v + cubic * v * v * v)))

    @cuda.jit
    def gelu_tanh_grad_kernel(x, out):
        """Derivative of the tanh-approximated GELU."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            v = x[i]
            t = math.tanh(tanh_c * (v + cubic * v * v * v))
            out[i] = half * (one + t) + half * v * (one - t * t) * tanh_c * (one + real(3) * cubic * v * v)

    @cuda.jit
    def softplus_kernel(x, out, beta, threshold):
        """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            z = beta * x[i]
            if z > threshold:
                out[i] = x[i]
            else:
                out[i] = (max(z, zero) + math.log1p(math.exp(-abs(z)))) / beta

    @cuda.jit
    def erf_kernel(x, out):
        """The error function."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = math.erf(x[i])

    return SimpleNamespace(sigmoid=sigmoid_kernel, gelu=gelu_kernel, gelu_grad=gelu_grad_kernel,
                           gelu_tanh=gelu_tanh_kernel, gelu_tanh_grad=gelu_tanh_grad_kernel,
                           softplus=softplus_kernel, erf=erf_kernel)


def _elementwise(name: str):
    """``f(x, *params) -> new CudaArray`` running kernel ``name`` over ``x`` in its compute dtype."""

    def run(x: CudaArray, *params) -> CudaArray:
        work_dtype = np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
        work = x.astype(work_dtype, copy=False)
        work = work if work.is_contiguous() else work.copy()
        out = CudaArray.empty(x.shape, work_dtype)
        if out.size:
            kernel = getattr(kernels(work_dtype), name)
            kernel[blocks_for(out.size), THREADS](work.storage[:out.size], out.storage,
                                                  *(work_dtype.type(p) for p in params))
        return out.astype(x.dtype, copy=False)

    run.__name__ = name
    run.__doc__ = f"``{name}`` of every element of a CudaArray, in a new one (see ``kernels``)."
    return run


sigmoid = _elementwise("sigmoid")
gelu = _elementwise("gelu")
gelu_grad = _elementwise("gelu_grad")
gelu_tanh = _elementwise("gelu_tanh")
gelu_tanh_grad = _elementwise("gelu_tanh_grad")
softplus = _elementwise("softplus")
erf = _elementwise("erf")
