"""2-D convolution on the GPU, direct kernels: twins of ``dslearn.kernels.cpu.conv``'s three operations.

``conv2d_forward(x, weight, bias, stride, padding, dilation, groups)``, ``conv2d_input_grad(grad,
weight, input_shape, ...)`` and ``conv2d_weight_grad(x, grad, kernel_size, ...)`` have the CPU
signatures (``padding`` per side, ``((top, bottom), (left, right))``) and take ``CudaArray`` NCHW
arrays. Each is written as a *gather*: one thread computes one output value from everything
that contributes to it, so no two threads write the same place and no atomics are needed.

* forward: thread (n, o, oh, ow) sums x[n, c, oh*s - pad + i*d, ...] * w[o, c, i, j] over the
  channels of its group and the kernel taps that land inside the input;
* input gradient (a transposed convolution): thread (n, c, h, w) sums grad[n, o, oh, ow] * w[o, c, i, j]
  over the outputs whose window covers pixel (h, w): oh = (h + pad - i*d) / s where that divides;
* weight gradient: one *block* per weight (o, c, i, j): its threads share out the N * OH * OW
  products and add them up with a block reduction.

Performance contract: no atomics, no shared-memory tiling: every operand is read from global
memory (the tiled matmul of ``kernels.cuda.matmul`` shows how shared memory would cut that).
Consecutive threads take consecutive output columns, so reads of ``x`` and writes are coalesced.
float16 is computed in float32.

May import: numpy, numba, dslearn.kernels.cuda.

>>> import numpy as np
>>> from dslearn.kernels.cuda.array import CudaArray
>>> x = CudaArray.from_numpy(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
>>> w = CudaArray.from_numpy(np.ones((1, 1, 2, 2), np.float32))
>>> conv2d_forward(x, w, None, (2, 2), ((0, 0), (0, 0)), (1, 1), 1).to_numpy()
array([[[[10., 18.],
         [42., 50.]]]], dtype=float32)
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
from dslearn.kernels.cuda import numpy_api
from dslearn.kernels.cuda.array import CudaArray
from dslearn.kernels.cuda.runtime import THREADS, blocks_for
from dslearn.kernels.cuda.softmax import block_sum, compute_dtype
from numba import cuda
from numba.np import numpy_support

Pair = tuple[int, int]
Padding = tuple[Pair, Pair]


@functools.cache
def kernels(dtype: np.dtype) -> SimpleNamespace:
    """The three direct convolution kernels for float32 or float64 NCHW device arrays."""
    item, zero = numpy_support.from_dtype(dtype), dtype.type(0)

    @cuda.jit
    def forward_kernel(x, weight, bias, stride_h, stride_w, top, left, dilation_h, dilation_w, out):
        images, out_channels, out_h, out_w = out.shape
        per_group_in, per_group_out = weight.shape[1], out_channels // (x.shape[1] // weight.shape[1])
        for ordinal in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            ow, rest = ordinal % out_w, ordinal // out_w
            oh, rest = rest % out_h, rest // out_h
            o, n = rest % out_channels, rest // out_channels
            first_channel = (o // per_group_out) * per_group_in
            total = bias[o]
            for c in range(per_group_in):
                for i in range(weight.shape[2]):
                    h = oh * stride_h - top + i * dilation_h
                    if 0 <= h < x.shape[2]:
                        for j in range(weight.shape[3]):
                            w = ow * stride_w - left + j * dilation_w
                            if 0 <= w < x.shape[3]:
                                total += x[n, first_channel + c, h, w] * weight[o, c, i, j]
            out[n, o, oh, ow] = total

    @cuda.jit
    def input_grad_kernel(grad, weight, stride_h, stride_w, top, left, dilation_h, dilation_w, dx):
        images, channels, height, width = dx.shape
        per_group_in = weight.shape[1]
        per_group_out = grad.shape[1] // (channels // per_group_in)
        for ordinal in range(cuda.grid(1), dx.size, cuda.gridsize(1)):
            w, rest = ordinal % width, ordinal // width
            h, rest = rest % height, rest // height
            c, n = rest % channels, rest // channels
            group, c_in_group = c // per_group_in, c % per_group_in
            total = zero
            for o in range(group * per_group_out, (group + 1) * per_group_out):
                for i in range(weight.shape[2]):
                    reach_h = h + top - i * dilation_h
                    oh = reach_h // stride_h
                    if reach_h % stride_h == 0 and 0 <= oh < grad.shape[2]:
                        for j in range(weight.shape[3]):
                            reach_w = w + left - j * dilation_w
                            ow = reach_w // stride_w
                            if reach_w % stride_w == 0 and 0 <= ow < grad.shape[3]:
                                total += grad[n, o, oh, ow] * weight[o, c_in_group, i, j]
            dx[n, c, h, w] = total

    @cuda.jit
    def weight_grad_kernel(x, grad, stride_h, stride_w, top, left, dilation_h, dilation_w, dw):
        partial = cuda.shared.array(THREADS, item)
        out_channels, per_group_in, kernel_h, kernel_w = dw.shape
        per_group_out = out_channels // (x.shape[1] // per_group_in)
        images, _, out_h, out_w = grad.shape
        for ordinal in range(cuda.blockIdx.x, dw.size, cuda.gridDim.x):  # one block per weight
            j, rest = ordinal % kernel_w, ordinal // kernel_w
            i, rest = rest % kernel_h, rest // kernel_h
            c_in_group, o = rest % per_group_in, rest // per_group_in
            c = (o // per_group_out) * per_group_in + c_in_group
            total = zero
            for k in range(cuda.threadIdx.x, images * out_h * out_w, cuda.blockDim.x):
                ow, rest2 = k % out_w, k // out_w
                oh, n = rest2 % out_h, rest2 // out_h
                h, w = oh * stride_h - top + i * dilation_h, ow * stride_w - left + j * dilation_w
                if 0 <= h < x.shape[2] and 0 <= w < x.shape[3]:
                    total += x[n, c, h, w] * grad[n, o, oh, ow]
            total = block_sum(total, partial)
            if cuda.threadIdx.x == 0:
                dw[o, c_in_group, i, j] = total

    return SimpleNamespace(forward=forward_kernel, input_grad=input_grad_kernel, weight_grad=weight_grad_kernel)


def output_size(size: int, kernel: int, stride: int, padding: Pair, dilation: int) -> int:
    """How many positions a dilated kernel takes along one padded axis."""
    return (size + padding[0] + padding[1] - dilation * (kernel - 1) - 1) // stride + 1


def _as_compute(a, dtype: np.dtype | None = None):
    """``a`` as a C-contiguous Numba device array in its compute dtype (or ``dtype``)."""
    a = numpy_api.on_device(a)
    return a.astype(dtype or compute_dtype(a.dtype), copy=False).device_array()


def _geometry(stride: Pair, padding: Padding, dilation: Pair) -> tuple[int, ...]:
    return stride[0], stride[1], padding[0][0], padding[1][0], dilation[0], dilation[1]


def conv2d_forward(x: CudaArray, weight: CudaArray, bias: CudaArray | None, stride: Pair, padding: Padding,
                   dilation: Pair, groups: int) -> CudaArray:
    """Cross-correlate an NCHW ``x`` with ``weight`` (O, C / groups, KH, KW) and add ``bias`` (O,)."""
    dtype = compute_dtype(x.dtype)
    out_hw = [output_size(x.shape[2 + d], weight.shape[2 + d], stride[d], padding[d], dilation[d]) for d in (0, 1)]
    out = CudaArray.empty((x.shape[0], weight.shape[0], *out_hw), dtype)
    shift = np.zeros(weight.shape[0], dtype) if bias is None else bias
    if out.size:
        kernels(dtype).forward[blocks_for(out.size), THREADS](
            _as_compute(x), _as_compute(weight, dtype), _as_compute(shift, dtype),
            *_geometry(stride, padding, dilation), out.device_array())
    return out.astype(x.dtype, copy=False)


def conv2d_input_grad(grad: CudaArray, weight: CudaArray, input_shape: tuple[int, ...], stride: Pair,
                      padding: Padding, dilation: Pair, groups: int) -> CudaArray:
    """Gradient of ``conv2d_forward`` with respect to ``x`` (a transposed convolution of ``grad``)."""
    dtype = compute_dtype(grad.dtype)
    dx = CudaArray.empty(tuple(input_shape), dtype)
    if dx.size:
        kernels(dtype).input_grad[blocks_for(dx.size), THREADS](
            _as_compute(grad), _as_compute(weight, dtype), *_geometry(stride, padding, dilation), dx.device_array())
    return dx.astype(grad.dtype, copy=False)


def conv2d_weight_grad(x: CudaArray, grad: CudaArray, kernel_size: Pair, stride: Pair, padding: Padding,
                       dilation: Pair, groups: int) -> CudaArray:
    """Gradient of ``conv2d_forward`` with respect to ``weight``, shape (O, C / groups, KH, KW)."""
    dtype = compute_dtype(x.dtype)
    dw = CudaArray.empty((grad.shape[1], x.shape[1] // groups, *kernel_size), dtype)
    if dw.size:
        kernels(dtype).weight_grad[blocks_for(dw.size, 1), THREADS](
            _as_compute(x), _as_compute(grad, dtype), *_geometry(stride, padding, dilation), dw.device_array())
    return dw.astype(x.dtype, copy=False)
