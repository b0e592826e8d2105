"""``Dropout``: zero each element with probability ``p`` while training (scaling the rest by 1/(1-p)).

In eval mode it is the identity, so a trained model's outputs are deterministic.

May import: dslearn.tensor, dslearn.ops.inplace, dslearn.nn.module, dslearn.nn.functional.

>>> import dslearn as ds
>>> drop = Dropout(0.5).eval()
>>> drop(ds.ones(3))
tensor([1., 1., 1.])
"""

from __future__ import annotations

from dslearn.nn import functional as F
from dslearn.nn.module import Module
from dslearn.ops.inplace import inplace as run_inplace
from dslearn.tensor import Tensor


class Dropout(Module):
    """Randomly zero elements with probability ``p`` in training mode; identity in eval mode.

    >>> Dropout(0.1)
    Dropout(p=0.1, inplace=False)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: probability has to be between 0 and 1, got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        if self.inplace:
            return run_inplace(input, F.dropout, self.p, self.training)
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
