"""Weight initialisation, as ``torch.nn.init``: fill a tensor in place with well-scaled random values.

A layer's output variance depends on how many inputs feed each unit (``fan_in``) and how many
units each input feeds (``fan_out``). Xavier/Glorot keeps the variance of activations and of
gradients roughly constant for linear and tanh layers; Kaiming/He corrects for ReLU halving it.
Every function writes into the tensor under ``no_grad`` and returns it; random draws come from
``dslearn.random`` (pass ``generator=`` for a private stream).

May import: math, numpy, dslearn.tensor, dslearn.autograd, dslearn.random.

>>> import dslearn as ds
>>> w = ds.empty(256, 784)
>>> _ = kaiming_uniform_(w, nonlinearity="relu")
>>> bound = math.sqrt(2.0) * math.sqrt(3.0 / 784)
>>> bool(w.abs().max() <= bound)
True
"""

from __future__ import annotations

import math

import numpy as np

from dslearn.autograd.grad_mode import no_grad
from dslearn.random import Generator, numpy_generator
from dslearn.tensor import Tensor

_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' standard deviation stable through ``nonlinearity``.

    >>> calculate_gain("relu") == math.sqrt(2.0), calculate_gain("tanh")
    (True, 1.6666666666666667)
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: ``(in, out)`` times the kernel size for convolutions.

    A weight is laid out ``(out_features, in_features, *kernel)``.

    >>> import dslearn as ds
    >>> calculate_fan_in_and_fan_out(ds.empty(16, 3, 5, 5))
    (75, 400)
    """
    if tensor.ndim < 2:
        raise ValueError(f"calculate_fan_in_and_fan_out: fan in and fan out cannot be computed for a tensor with "
                         f"fewer than 2 dimensions, got shape {tensor.shape}")
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out  # PyTorch's spelling, which ported code calls


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode {mode!r} is not supported; use 'fan_in' or 'fan_out'")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with values drawn uniformly from ``[a, b)``.

    >>> import dslearn as ds
    >>> bool((uniform_(ds.empty(100), -1, 1).abs() <= 1).all())
    True
    """
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with values drawn from N(mean, std^2).

    >>> import dslearn as ds
    >>> normal_(ds.empty(2, 3)).shape
    (2, 3)
    """
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std^2) values conditioned on lying in ``[a, b]`` (redrawing those outside).

    >>> import dslearn as ds
    >>> bool((trunc_normal_(ds.empty(1000), std=1.0, a=-0.5, b=0.5).abs() <= 0.5).all())
    True
    """
    if not a < b:
        raise ValueError(f"trunc_normal_: the interval [a, b] = [{a}, {b}] is empty")
    rng = numpy_generator(generator)
    values = rng.normal(mean, std, size=tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, size=int(outside.sum()))
        outside = (values < a) | (values > b)
    return _write(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    >>> import dslearn as ds
    >>> constant_(ds.empty(3), 0.5)
    tensor([0.5, 0.5, 0.5])
    """
    with no_grad():
        return tensor.fill_(val)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros.

    >>> import dslearn as ds
    >>> zeros_(ds.ones(2))
    tensor([0., 0.])
    """
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones.

    >>> import dslearn as ds
    >>> ones_(ds.zeros(2))
    tensor([1., 1.])
    """
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot: U(-b, b) with ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    >>> import dslearn as ds
    >>> bool(xavier_uniform_(ds.empty(30, 20)).abs().max() <= math.sqrt(6 / 50))
    True
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot: N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    >>> import dslearn as ds
    >>> xavier_normal_(ds.empty(30, 20)).shape
    (30, 20)
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Tensor:
    """He: U(-b, b) with ``b = gain * sqrt(3 / fan)``; ``a`` is leaky_relu's negative slope.

    >>> import dslearn as ds
    >>> bool(kaiming_uniform_(ds.empty(8, 50), a=math.sqrt(5)).abs().max() <= 1 / math.sqrt(50))
    True
    """
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Tensor:
    """He: N(0, std^2) with ``std = gain / sqrt(fan)``.

    >>> import dslearn as ds
    >>> kaiming_normal_(ds.empty(8, 50), nonlinearity="relu").shape
    (8, 50)
    """
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix, scaled by ``gain``; dimensions past the first are flattened.

    >>> import dslearn as ds
    >>> w = orthogonal_(ds.empty(3, 5)).numpy()
    >>> bool(np.allclose(w @ w.T, np.eye(3), atol=1e-6))
    True
    """
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got shape {tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = numpy_generator(generator).normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # makes the distribution uniform over orthogonal matrices
    if rows < cols:
        q = q.T
    return _write(tensor, gain * q.reshape(tensor.shape))


def _write(tensor: Tensor, values: np.ndarray) -> Tensor:
    with no_grad():
        return tensor.copy_(Tensor._make(values.astype(tensor._data.dtype)))
