"""``DataLoader``: batches from a dataset, in a (seeded) order, made ahead of time.

A loader turns a dataset into an iterable of batches. For a map-style dataset it asks a
sampler for the order of indices (sequential, or a fresh permutation each epoch with
``shuffle=True``), groups them with a ``BatchSampler``, and makes each batch either with one
``dataset.__getitems__(indices)`` call (the fast path: fancy indexing, no per-sample Python) or
by fetching samples one by one and calling ``collate_fn``. Arguments and their conflicts are
PyTorch's. Batches are made ahead in a background thread (``prefetch=True``) or in
``num_workers`` threads; see ``dslearn.data.prefetch`` and ``dslearn.data.worker``.

May import: numpy, dslearn.random, dslearn.data.{dataset, sampler, collate, prefetch, worker}.

>>> import dslearn as ds
>>> data = ds.data.TensorDataset(ds.arange(10.0).reshape(5, 2), ds.arange(5))
>>> loader = DataLoader(data, batch_size=2, shuffle=True, generator=ds.Generator().manual_seed(0))
>>> len(loader), [y.tolist() for _, y in loader]
(3, [[2, 4], [3, 0], [1]])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator

from dslearn.data.collate import default_collate, default_convert
from dslearn.data.dataset import IterableDataset
from dslearn.data.prefetch import BackgroundBatches
from dslearn.data.sampler import BatchSampler, RandomSampler, SequentialSampler
from dslearn.data.worker import WorkerInfo, loading_context
from dslearn.random import Generator, numpy_generator


class DataLoader:
    """Iterate over ``dataset`` in batches.

    Args:
        dataset: a map-style ``Dataset`` (``len`` and ``[i]``) or an ``IterableDataset``.
        batch_size: samples per batch; None turns batching off (samples come one by one).
        shuffle: a new random order every epoch, drawn from ``generator`` (or the default one,
            so ``ds.manual_seed`` fixes it).
        sampler, batch_sampler: a custom order of indices, or of lists of indices.
        num_workers: threads that make batches (0: the main thread, plus the prefetch thread).
        collate_fn: turns a list of samples into a batch (``default_collate``).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        generator: the ``ds.Generator`` for shuffling and for the workers' seeds.
        prefetch: with ``num_workers=0``, make batches ahead in a background thread.
        prefetch_factor: how many batches each thread keeps ready.

    >>> import dslearn as ds
    >>> [batch.tolist() for batch in DataLoader(list(range(5)), batch_size=2, drop_last=True)]
    [[0, 1], [2, 3]]
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn: Callable | None = None, *,
                 drop_last: bool = False, generator: Generator | None = None, prefetch: bool = True,
                 prefetch_factor: int = 2) -> None:
        _check_arguments(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, drop_last, generator,
                         prefetch_factor)
        self.dataset, self.num_workers, self.generator = dataset, num_workers, generator
        self.prefetch, self.prefetch_factor = prefetch, prefetch_factor
        self._iterable = isinstance(dataset, IterableDataset)
        if batch_sampler is not None:
            batch_size, drop_last = None, False
        elif not self._iterable:
            if sampler is None:
                sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
            if batch_size is not None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.sampler, self.batch_sampler = sampler, batch_sampler
        batching = batch_sampler is not None or (self._iterable and batch_size is not None)
        self.collate_fn = collate_fn or (default_collate if batching else default_convert)
        self._batched_fetch = (batch_sampler is not None and self.collate_fn is default_collate
                               and hasattr(dataset, "__getitems__"))

    def __len__(self) -> int:
        if self._iterable:
            length = len(self.dataset)  # TypeError when the stream has no length, as in PyTorch
            if self.batch_size is None:
                return length
            return length // self.batch_size if self.drop_last else -(-length // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self) -> Iterator:
        base_seed = int(numpy_generator(self.generator).integers(2**62))
        workers = max(self.num_workers, 1)
        infos = [WorkerInfo(id=w, num_workers=workers, seed=base_seed + w, dataset=self.dataset)
                 for w in range(workers)]
        if self._iterable:
            jobs = [self._stream_batches() for _ in range(workers)]
        else:
            index_batches = list(self.batch_sampler if self.batch_sampler is not None else self.sampler)
            jobs = [self._map_batches(index_batches[w::workers]) for w in range(workers)]
        if self.num_workers == 0 and not self.prefetch:
            return _InMainThread(jobs[0], infos[0])
        return BackgroundBatches(jobs, infos, depth=self.prefetch_factor, public_info=self.num_workers > 0)

    def _map_batches(self, index_batches: list) -> Iterator:
        dataset, collate = self.dataset, self.collate_fn
        if self._batched_fetch:
            for indices in index_batches:
                yield dataset.__getitems__(indices)
        elif self.batch_sampler is not None:
            for indices in index_batches:
                yield collate([dataset[i] for i in indices])
        else:
            for index in index_batches:
                yield collate(dataset[index])

    def _stream_batches(self) -> Iterator:
        """Batches from an IterableDataset; ``iter(dataset)`` runs inside the worker."""
        if self.batch_size is None:
            for sample in self.dataset:
                yield self.collate_fn(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)


class _InMainThread:
    """Batches made on demand in the calling thread, with the worker's random stream."""

    def __init__(self, job: Iterator, info: WorkerInfo) -> None:
        self._job, self._info = job, info

    def __iter__(self) -> _InMainThread:
        return self

    def __next__(self):
        with loading_context(self._info, public=False):
            return next(self._job)


def _check_arguments(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, drop_last, generator,
                     prefetch_factor) -> None:
    """PyTorch's checks, with PyTorch's messages."""
    if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
        raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
    if not isinstance(prefetch_factor, numbers.Integral) or prefetch_factor < 1:
        raise ValueError(f"prefetch_factor option should be a positive integer, got {prefetch_factor!r}")
    if generator is not None and not isinstance(generator, Generator):
        raise TypeError(f"DataLoader: generator must be a ds.Generator, got {type(generator).__name__}")
    if isinstance(dataset, IterableDataset):
        for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value not in (None, False):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, "
                                 f"but got {name}={value}")
    if sampler is not None and shuffle:
        raise ValueError("sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                             "and drop_last")
    elif batch_size is None and drop_last:
        raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
    if batch_size is not None and (not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool)
                                   or batch_size <= 0):
        raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
    for name, value in (("sampler", sampler), ("batch_sampler", batch_sampler)):
        if value is not None and not hasattr(value, "__iter__"):
            raise TypeError(f"DataLoader: {name} must be iterable, got {type(value).__name__}")
