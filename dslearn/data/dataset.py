"""Datasets: the map-style ``Dataset`` (``len`` and ``[i]``), the streaming ``IterableDataset``,
and the usual building blocks: ``TensorDataset``, ``Subset``, ``ConcatDataset``, ``random_split``.

A dataset may also define ``__getitems__(indices)``: the whole batch at once, already collated
(what ``default_collate([ds[i] for i in indices])`` would give). ``DataLoader`` then fetches a
batch with one fancy-indexing call instead of one ``__getitem__`` per sample. (torch 2.x uses the
same name for a list of samples that still goes through ``collate_fn``; here it is the batch.)

May import: numpy, dslearn.tensor, dslearn.random, dslearn.data.collate.

>>> import dslearn as ds
>>> data = TensorDataset(ds.arange(10.0).reshape(5, 2), ds.arange(5))
>>> len(data), data[1]
(5, (tensor([2., 3.]), tensor(1)))
>>> train, test = random_split(data, [0.6, 0.4], generator=ds.Generator().manual_seed(0))
>>> len(train), len(test)
(3, 2)
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from dslearn.data.collate import default_collate
from dslearn.random import Generator, numpy_generator
from dslearn.tensor import Tensor


class Dataset:
    """A map-style dataset: subclasses define ``__getitem__(index)`` and ``__len__()``.

    >>> class Squares(Dataset):
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i): return i * i
    >>> [Squares()[i] for i in range(4)], len(Squares() + Squares())
    ([0, 1, 4, 9], 8)
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset:
    """A stream of samples: subclasses define ``__iter__``. DataLoader batches it in order.

    With ``num_workers > 1`` every worker iterates its own copy; use ``get_worker_info()`` to
    give each worker a different shard, as in PyTorch.

    >>> class Countdown(IterableDataset):
    ...     def __iter__(self): return iter(range(3, 0, -1))
    >>> list(Countdown())
    [3, 2, 1]
    """

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension: ``(x[i], y[i], ...)``.

    >>> import dslearn as ds
    >>> data = TensorDataset(ds.zeros(3, 2), ds.arange(3))
    >>> data.__getitems__([2, 0])[1]
    tensor([2, 0])
    """

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        for position, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {position} is a {type(t).__name__}, not a Tensor")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {position} is a 0-d tensor; samples are rows of dim 0")
        lengths = [t.shape[0] for t in tensors]
        if len(set(lengths)) > 1:
            shapes = ", ".join(str(t.shape) for t in tensors)
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions {lengths} "
                             f"(shapes {shapes}) must all be equal")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> list[Tensor]:
        """The batch ``[x[indices], y[indices], ...]`` in one fancy-indexing read per tensor."""
        index = np.asarray(indices, dtype=np.int64)
        return [t[index] for t in self.tensors]

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    >>> Subset(list("abcde"), [4, 0])[0]
    'e'
    """

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices: Sequence[int]):
        """The batch, through the parent's ``__getitems__`` when it has one."""
        mapped = [self.indices[i] for i in indices]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(mapped)
        return default_collate([self.dataset[i] for i in mapped])

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after the other.

    >>> data = ConcatDataset([[1, 2], [3, 4, 5]])
    >>> len(data), data[2], data[-1]
    (5, 3, 5)
    """

    def __init__(self, datasets: Iterable) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset: does not support IterableDataset (it has no length)")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index: int):
        length = len(self)
        if not -length <= index < length:
            raise IndexError(f"ConcatDataset: index {index} is out of range for {length} samples")
        index %= length
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def random_split(dataset, lengths: Sequence[int | float], generator: Generator | None = None) -> list[Subset]:
    """Split ``dataset`` at random into non-overlapping subsets of the given lengths.

    ``lengths`` are sample counts that add up to ``len(dataset)``, or fractions that add up to 1
    (each gets ``floor(fraction * n)`` and the leftover samples go round-robin to the first ones,
    as in PyTorch).

    >>> import dslearn as ds
    >>> parts = random_split(range(10), [3, 7], generator=ds.Generator().manual_seed(1))
    >>> sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    True
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        lengths = _counts_from_fractions(lengths, n)
    if not all(isinstance(x, numbers.Integral) and x >= 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions that sum to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths {sum(lengths)} does not equal the length of the "
                         f"input dataset ({n})")
    order = numpy_generator(generator).permutation(n).tolist()
    bounds = np.cumsum([0, *lengths]).tolist()
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]


def _counts_from_fractions(fractions: list[float], n: int) -> list[int]:
    if any(f < 0 or f > 1 for f in fractions):
        raise ValueError(f"random_split: fractions must lie in [0, 1], got {fractions}")
    counts = [int(math.floor(n * f)) for f in fractions]
    for i in range(n - sum(counts)):
        counts[i % len(counts)] += 1
    return counts
