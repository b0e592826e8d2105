"""Plain NumPy references for convolution and pooling: slow, obvious, what the kernel tests trust.

Convolutions pad the input with ``np.pad`` and add one kernel tap at a time (a strided slice
of the padded input times one column of weights); pooling loops over output positions. None of
it shares code with ``kernels/cpu``. ``padding`` for convolutions is per side,
``((top, bottom), (left, right))``; for pooling it is symmetric, ``(ph, pw)``, as in PyTorch.

May import: numpy.

>>> import numpy as np
>>> x = np.arange(16.0).reshape(1, 1, 4, 4)
>>> conv2d(x, np.ones((1, 1, 2, 2)), None, (2, 2), ((0, 0), (0, 0)), (1, 1), 1)
array([[[[10., 18.],
         [42., 50.]]]])
>>> max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)[0]
array([[[[ 5.,  7.],
         [13., 15.]]]])
"""

from __future__ import annotations

import math

import numpy as np


def _tap(offset: int, stride: int, count: int) -> slice:
    """Positions ``offset, offset + stride, ...`` (``count`` of them) as a slice."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def _conv_out_hw(x_hw, kernel_hw, stride, padding, dilation) -> tuple[int, int]:
    return tuple((x_hw[d] + sum(padding[d]) - dilation[d] * (kernel_hw[d] - 1) - 1) // stride[d] + 1 for d in (0, 1))


def _taps(kernel_hw, out_hw, stride, dilation):
    """Every kernel tap ``(i, j)`` with the slices of the padded input it reads."""
    for i in range(kernel_hw[0]):
        for j in range(kernel_hw[1]):
            yield i, j, _tap(i * dilation[0], stride[0], out_hw[0]), _tap(j * dilation[1], stride[1], out_hw[1])


def im2col(x, kernel_size, stride, padding, dilation) -> np.ndarray:
    """Rows (c, i, j), columns (n, oh, ow): the input pixel each kernel tap sees."""
    n, c = x.shape[:2]
    out_hw = _conv_out_hw(x.shape[2:], kernel_size, stride, padding, dilation)
    padded = np.pad(x, ((0, 0), (0, 0), *padding))
    cols = np.zeros((c, *kernel_size, n, *out_hw), x.dtype)
    for i, j, rows, columns in _taps(kernel_size, out_hw, stride, dilation):
        cols[:, i, j] = padded[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(c * kernel_size[0] * kernel_size[1], -1)


def col2im(cols, input_shape, kernel_size, out_size, stride, padding, dilation) -> np.ndarray:
    """The adjoint of ``im2col``: add every column entry back onto the pixel it came from."""
    n, c, h, w = input_shape
    blocks = cols.reshape(c, *kernel_size, n, *out_size)
    padded = np.zeros((n, c, h + sum(padding[0]), w + sum(padding[1])), cols.dtype)
    for i, j, rows, columns in _taps(kernel_size, out_size, stride, dilation):
        padded[:, :, rows, columns] += blocks[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, padding[0][0]:padding[0][0] + h, padding[1][0]:padding[1][0] + w]


def conv2d(x, weight, bias, stride, padding, dilation, groups) -> np.ndarray:
    """``out[n, o] = bias[o] + sum over c, i, j of weight[o, c, i, j] * x_padded[n, c, oh*s + i*d, ow*s + j*d]``."""
    n, c = x.shape[:2]
    o = weight.shape[0]
    out_hw = _conv_out_hw(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    padded = np.pad(x, ((0, 0), (0, 0), *padding))
    out = np.zeros((n, o, *out_hw), x.dtype)
    ci, co = c // groups, o // groups
    for g in range(groups):
        ins, outs = slice(g * ci, (g + 1) * ci), slice(g * co, (g + 1) * co)
        for i, j, rows, columns in _taps(weight.shape[2:], out_hw, stride, dilation):
            out[:, outs] += np.einsum("nchw,oc->nohw", padded[:, ins, rows, columns], weight[outs, :, i, j])
    return out if bias is None else out + bias.reshape(1, o, 1, 1)


def conv2d_input_grad(grad, weight, input_shape, stride, padding, dilation, groups) -> np.ndarray:
    """d(sum(conv2d(x) * grad)) / dx: each tap's weights carry ``grad`` back to the pixels they read."""
    o = weight.shape[0]
    ci, co = input_shape[1] // groups, o // groups
    h, w = input_shape[2:]
    padded = np.zeros((input_shape[0], input_shape[1], h + sum(padding[0]), w + sum(padding[1])), grad.dtype)
    for g in range(groups):
        ins, outs = slice(g * ci, (g + 1) * ci), slice(g * co, (g + 1) * co)
        for i, j, rows, columns in _taps(weight.shape[2:], grad.shape[2:], stride, dilation):
            padded[:, ins, rows, columns] += np.einsum("nohw,oc->nchw", grad[:, outs], weight[outs, :, i, j])
    return padded[:, :, padding[0][0]:padding[0][0] + h, padding[1][0]:padding[1][0] + w]


def conv2d_weight_grad(x, grad, kernel_size, stride, padding, dilation, groups) -> np.ndarray:
    """d(sum(conv2d(x) * grad)) / dweight: each tap correlates ``grad`` with the pixels it read."""
    c, o = x.shape[1], grad.shape[1]
    ci, co = c // groups, o // groups
    padded = np.pad(x, ((0, 0), (0, 0), *padding))
    dw = np.zeros((o, ci, *kernel_size), x.dtype)
    for g in range(groups):
        ins, outs = slice(g * ci, (g + 1) * ci), slice(g * co, (g + 1) * co)
        for i, j, rows, columns in _taps(kernel_size, grad.shape[2:], stride, dilation):
            dw[outs, :, i, j] = np.einsum("nohw,nchw->oc", grad[:, outs], padded[:, ins, rows, columns])
    return dw


# -- pooling --------------------------------------------------------------------------------------


def pool_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size; in ceil_mode the last window must start inside the input or left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode) -> tuple[np.ndarray, np.ndarray]:
    """Max over each window and the flat index ``h * W + w`` of the first maximum."""
    h, w = x.shape[-2:]
    out_hw = [pool_out_size(x.shape[2 + d], kernel_size[d], stride[d], padding[d], dilation[d], ceil_mode)
              for d in (0, 1)]
    out = np.empty(x.shape[:2] + tuple(out_hw), x.dtype)
    indices = np.empty(out.shape, np.int64)
    for oh in range(out_hw[0]):
        for ow in range(out_hw[1]):
            rows = [oh * stride[0] - padding[0] + a * dilation[0] for a in range(kernel_size[0])]
            cols = [ow * stride[1] - padding[1] + b * dilation[1] for b in range(kernel_size[1])]
            flat = np.array([r * w + c for r in rows if 0 <= r < h for c in cols if 0 <= c < w])
            values = x.reshape(*x.shape[:2], -1)[:, :, flat]
            winner = np.argmax(values, axis=2)
            out[:, :, oh, ow] = np.take_along_axis(values, winner[..., None], 2)[..., 0]
            indices[:, :, oh, ow] = flat[winner]
    return out, indices


def avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override) -> np.ndarray:
    """Mean over each window, divided the way PyTorch divides (see ``count_include_pad``)."""
    h, w = x.shape[-2:]
    out_hw = [pool_out_size(x.shape[2 + d], kernel_size[d], stride[d], padding[d], 1, ceil_mode) for d in (0, 1)]
    out = np.empty(x.shape[:2] + tuple(out_hw), x.dtype)
    for oh in range(out_hw[0]):
        for ow in range(out_hw[1]):
            r0, c0 = oh * stride[0] - padding[0], ow * stride[1] - padding[1]
            r1, c1 = min(r0 + kernel_size[0], h + padding[0]), min(c0 + kernel_size[1], w + padding[1])
            window = x[:, :, max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)]
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:
                divisor = (r1 - r0) * (c1 - c0)
            else:
                divisor = window.shape[2] * window.shape[3]
            out[:, :, oh, ow] = window.sum(axis=(2, 3)) / divisor
    return out


def _adaptive_bins(size: int, out_size: int) -> list[tuple[int, int]]:
    return [(o * size // out_size, -(-(o + 1) * size // out_size)) for o in range(out_size)]


def adaptive_avg_pool2d(x, out_hw) -> np.ndarray:
    """Mean over PyTorch's adaptive bins ``[floor(o * H / OH), ceil((o + 1) * H / OH))``."""
    out = np.empty(x.shape[:2] + tuple(out_hw), x.dtype)
    for oh, (r0, r1) in enumerate(_adaptive_bins(x.shape[2], out_hw[0])):
        for ow, (c0, c1) in enumerate(_adaptive_bins(x.shape[3], out_hw[1])):
            out[:, :, oh, ow] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


def adaptive_max_pool2d(x, out_hw) -> tuple[np.ndarray, np.ndarray]:
    """Max over the adaptive bins, with flat indices as in ``max_pool2d``."""
    w = x.shape[3]
    out = np.empty(x.shape[:2] + tuple(out_hw), x.dtype)
    indices = np.empty(out.shape, np.int64)
    for oh, (r0, r1) in enumerate(_adaptive_bins(x.shape[2], out_hw[0])):
        for ow, (c0, c1) in enumerate(_adaptive_bins(x.shape[3], out_hw[1])):
            window = x[:, :, r0:r1, c0:c1].reshape(*x.shape[:2], -1)
            winner = np.argmax(window, axis=2)
            out[:, :, oh, ow] = window.max(axis=2)
            indices[:, :, oh, ow] = (r0 + winner // (c1 - c0)) * w + c0 + winner % (c1 - c0)
    return out, indices


def max_pool2d_backward(grad, indices, input_hw) -> np.ndarray:
    """Each output's gradient added onto the pixel its index names."""
    planes = grad.shape[0] * grad.shape[1]
    out = np.zeros((planes, input_hw[0] * input_hw[1]), grad.dtype)
    np.add.at(out, (np.arange(planes)[:, None], indices.reshape(planes, -1)), grad.reshape(planes, -1))
    return out.reshape(*grad.shape[:2], *input_hw)
