"""``Flatten`` and ``Unflatten``: reshape between image-like and vector-like layers.

May import: dslearn.nn.module, dslearn.tensor.

>>> import dslearn as ds
>>> Flatten()(ds.ones(8, 1, 28, 28)).shape, Unflatten(1, (1, 28, 28))(ds.ones(8, 784)).shape
((8, 784), (8, 1, 28, 28))
"""

from __future__ import annotations

from dslearn.nn.module import Module
from dslearn.ops.arguments import normalize_dim
from dslearn.tensor import Tensor


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` into one (by default all but the batch dimension).

    >>> import dslearn as ds
    >>> Flatten(0, -1)(ds.ones(2, 3, 4)).shape
    (24,)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size`` (one entry may be -1).

    >>> import dslearn as ds
    >>> Unflatten(-1, (2, -1))(ds.ones(5, 6)).shape
    (5, 2, 3)
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...]) -> None:
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)) or not all(isinstance(s, int) for s in unflattened_size):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, got {unflattened_size!r}")
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        dim = normalize_dim(self.dim, input.ndim, "Unflatten")
        return input.reshape(input.shape[:dim] + self.unflattened_size + input.shape[dim + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
