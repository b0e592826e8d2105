"""``dslearn.nn.functional`` (``F``): the neural-network ops as plain functions, as ``torch.nn.functional``.

Layers hold parameters and call these. Each op lives (forward and backward side by side) in a
``dslearn.ops`` module; this file gathers them under PyTorch's names and adds the few that are
compositions of other ops (``silu``, ``elu``) or not differentiable (``one_hot``).

May import: numpy, dslearn.tensor, dslearn.ops.

>>> import dslearn as ds
>>> import dslearn.nn.functional as F
>>> F.relu(ds.tensor([-1.0, 2.0])), F.one_hot(ds.tensor([0, 2]), 3)
(tensor([0., 2.]), tensor([[1, 0, 0],
        [0, 0, 1]]))
"""

from __future__ import annotations

import numpy as np

from dslearn.ops.arguments import check_integer, to_tensor
from dslearn.ops.conv import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, conv2d, max_pool2d
from dslearn.ops.dropout import dropout
from dslearn.ops.elementwise import clamp, exp, gelu, leaky_relu, relu, sigmoid, softplus, tanh, where
from dslearn.ops.embedding import embedding
from dslearn.ops.linalg import linear
from dslearn.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from dslearn.ops.normalization import batch_norm, group_norm, layer_norm
from dslearn.ops.shape import pad
from dslearn.ops.softmax import log_softmax, softmax
from dslearn.tensor import Tensor


def silu(input: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (also called swish).

    >>> import dslearn as ds
    >>> silu(ds.tensor([0.0, 1.0]))
    tensor([0.    , 0.7311])
    """
    return input * sigmoid(input)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    >>> import dslearn as ds
    >>> elu(ds.tensor([-1.0, 2.0]))
    tensor([-0.6321,  2.    ])
    """
    input = to_tensor(input, "elu")
    negative = (exp(clamp(input, max=0.0)) - 1) * alpha  # clamped so exp never overflows on the unused branch
    return where(input > 0, input, negative)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """Class indices to one-hot rows (int64): shape ``(*tensor.shape, num_classes)``.

    ``num_classes=-1`` uses ``max + 1``.

    >>> import dslearn as ds
    >>> one_hot(ds.tensor([1, 0]), 2)
    tensor([[0, 1],
            [1, 0]])
    """
    tensor = to_tensor(tensor, "one_hot")
    check_integer("one_hot", "tensor", tensor)
    labels = tensor._data
    if num_classes == -1:
        if labels.size == 0:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
        num_classes = int(labels.max()) + 1
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: class values must lie in [0, {num_classes}), got values from {labels.min()} "
                         f"to {labels.max()}")
    out = np.zeros(labels.shape + (num_classes,), dtype=np.int64)
    np.put_along_axis(out, labels[..., None].astype(np.int64), 1, axis=-1)
    return Tensor._make(out)


__all__ = ["relu", "leaky_relu", "gelu", "sigmoid", "tanh", "softplus", "silu", "elu", "softmax", "log_softmax",
           "linear", "conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "dropout",
           "layer_norm", "batch_norm", "group_norm", "embedding", "pad", "one_hot", "cross_entropy", "nll_loss",
           "mse_loss", "l1_loss", "smooth_l1_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "kl_div"]
