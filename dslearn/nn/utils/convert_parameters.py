"""Flatten parameters into one vector and back: what second-order methods and Fisher estimates need.

May import: numpy, dslearn.tensor, dslearn.ops.

>>> import dslearn as ds
>>> layer = ds.nn.Linear(3, 2)
>>> vec = parameters_to_vector(layer.parameters()); vec.shape
(8,)
>>> vector_to_parameters(ds.zeros(8), layer.parameters()); layer.bias
Parameter containing:
tensor([0., 0.], requires_grad=True)
"""

from __future__ import annotations

from collections.abc import Iterable

from dslearn.ops.shape import cat
from dslearn.tensor import Tensor


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated, in order (differentiable).

    >>> import dslearn as ds
    >>> parameters_to_vector([ds.ones(2, 2), ds.zeros(1)])
    tensor([1., 1., 1., 1., 0.])
    """
    params = list(parameters)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"parameters_to_vector: expected Tensors, got {type(p).__name__}")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Point each parameter's data at its slice of ``vec`` (shared memory, as in PyTorch).

    >>> import dslearn as ds
    >>> a, b = ds.zeros(2), ds.zeros(1)
    >>> vector_to_parameters(ds.tensor([1.0, 2.0, 3.0]), [a, b]); a, b
    (tensor([1., 2.]), tensor([3.]))
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector, got shape {vec.shape}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if total != vec.numel():
        raise ValueError(f"vector_to_parameters: the vector has {vec.numel()} elements but the parameters "
                         f"need {total}")
    offset = 0
    for p in params:
        if p._data.dtype != vec._data.dtype:
            raise TypeError(f"vector_to_parameters: vector dtype {vec.dtype} differs from a parameter's {p.dtype}")
        p._data = vec._data[offset:offset + p.numel()].reshape(p.shape)
        offset += p.numel()
