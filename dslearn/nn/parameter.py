"""``Parameter``: a Tensor that a Module registers as one of its learnable weights.

Assigning a Parameter to a Module attribute (``self.weight = Parameter(...)``) is what puts it
into ``module.parameters()``, ``state_dict()`` and the optimizer's reach. It shares the memory
of the tensor it wraps and requires grad by default.

May import: numpy, dslearn.tensor, dslearn.dtypes.

>>> import dslearn as ds
>>> w = Parameter(ds.zeros(2))
>>> w.requires_grad, w.is_leaf
(True, True)
"""

from __future__ import annotations

import numpy as np

from dslearn import dtypes
from dslearn.tensor import Tensor


class Parameter(Tensor):
    """A learnable tensor: shares ``data``'s memory, requires grad unless told otherwise.

    >>> import dslearn as ds
    >>> Parameter(ds.tensor([1.0, 2.0]))
    Parameter containing:
    tensor([1., 2.], requires_grad=True)
    """

    __slots__ = ()

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True) -> None:
        if data is None:
            array = np.empty((0,), dtype=dtypes.get_default_dtype().np)
        elif isinstance(data, Tensor):
            array = data._data
        else:
            raise TypeError(f"Parameter: data must be a Tensor, got {type(data).__name__}")
        self._data, self._ctx, self.requires_grad, self.grad = array, None, False, None
        self._version, self._hooks, self._retains_grad = 0, None, False
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
