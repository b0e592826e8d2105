"""Dropout: zero each element with probability p during training, scale the rest by 1 / (1 - p).

The scaling ("inverted dropout") keeps every element's expected value unchanged, so nothing
needs rescaling at evaluation time, when dropout is the identity. The mask comes from
``dslearn.random`` (repeatable under ``ds.manual_seed`` or with a ``Generator``) and the op is
an ordinary multiplication by it: its backward multiplies the gradient by the same mask, and
it can be differentiated any number of times.

May import: numpy, dslearn.tensor, dslearn.random, dslearn.ops.arguments.

>>> import dslearn as ds
>>> _ = ds.manual_seed(5)
>>> dropout(ds.ones(8), p=0.5)
tensor([2., 2., 0., 2., 0., 2., 2., 0.])
"""

from __future__ import annotations

import numpy as np

from dslearn.ops.arguments import check_floating, to_tensor
from dslearn.random import Generator, numpy_generator
from dslearn.tensor import Tensor


def dropout(input, p: float = 0.5, training: bool = True, generator: Generator | None = None) -> Tensor:
    """Zero elements of ``input`` with probability ``p`` and scale the others by ``1 / (1 - p)``.

    Returns ``input`` itself when ``training`` is False or ``p`` is 0; zeros when ``p`` is 1.

    >>> import dslearn as ds
    >>> x = ds.ones(2, 3)
    >>> dropout(x, p=0.5, training=False) is x, dropout(x, p=1.0)
    (True, tensor([[0., 0., 0.],
            [0., 0., 0.]]))
    """
    x = to_tensor(input, "dropout")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability p must be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return x
    check_floating("dropout", x)
    if p == 1.0:
        return x * 0.0
    keep = numpy_generator(generator).random(x.shape, dtype=np.float32) >= p
    mask = keep.astype(x._data.dtype) * x._data.dtype.type(1.0 / (1.0 - p))
    return x * Tensor._make(mask)
