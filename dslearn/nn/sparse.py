"""``Embedding``: a lookup table from integer ids (words, items, classes) to learned vectors.

``Embedding(n, d)(ids)`` returns row ``ids[i]`` of an ``(n, d)`` weight for every id; the
gradient of a row is the sum of the gradients of its lookups. ``padding_idx`` names a row that
stays zero and gets no gradient (for padded sequences).

May import: dslearn.creation, dslearn.nn.module, dslearn.nn.parameter, dslearn.nn.init,
dslearn.nn.functional.

>>> import dslearn as ds
>>> emb = Embedding(100, 8, padding_idx=0)
>>> emb(ds.tensor([[5, 0, 7]])).shape, emb(ds.tensor([0])).abs().sum().item()
((1, 3, 8), 0.0)
"""

from __future__ import annotations

from dslearn.autograd.grad_mode import no_grad
from dslearn.creation import empty
from dslearn.nn import functional as F
from dslearn.nn import init
from dslearn.nn.module import Module
from dslearn.nn.parameter import Parameter
from dslearn.tensor import Tensor


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, initialised N(0, 1).

    >>> Embedding(10, 3, padding_idx=-1)
    Embedding(10, 3, padding_idx=9)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, device=None,
                 dtype=None) -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within [-{num_embeddings}, "
                                 f"{num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype, device=device))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fresh N(0, 1) rows; the padding row (if any) zero."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None) -> Embedding:
        """An Embedding holding a copy of ``embeddings`` (trained elsewhere); frozen unless ``freeze=False``.

        >>> import dslearn as ds
        >>> Embedding.from_pretrained(ds.eye(3))(ds.tensor([2]))
        tensor([[0., 0., 1.]])
        """
        if embeddings.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {embeddings.shape}")
        rows, dim = embeddings.shape
        layer = cls(rows, dim, padding_idx=padding_idx, dtype=embeddings.dtype)
        with no_grad():
            layer.weight.copy_(embeddings)
        layer.weight.requires_grad_(not freeze)
        return layer
