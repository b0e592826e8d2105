"""What a piece of data-loading code knows about the loader running it: worker info and its random stream.

Every ``iter(loader)`` draws one base seed from the loader's generator (or the default one), in
the main thread. Worker ``w`` then draws its random choices (random crops, flips...) from its own
``Generator`` seeded with ``base_seed + w``, so an epoch is repeatable under ``ds.manual_seed``
whether batches are made in the main thread, in a prefetch thread or in several workers, and
whatever else the main thread draws meanwhile. Random transforms given no generator call
``worker_generator()`` to get that stream.

May import: the standard library, dslearn.random.

>>> get_worker_info() is None          # not inside a DataLoader worker
True
>>> with loading_context(WorkerInfo(id=0, num_workers=2, seed=7, dataset=None)):
...     get_worker_info().id, worker_generator().initial_seed()
(0, 7)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dslearn.random import Generator, default_generator


@dataclass(frozen=True)
class WorkerInfo:
    """Which worker this is (``id`` of ``num_workers``), its ``seed``, its copy of the ``dataset``."""

    id: int
    num_workers: int
    seed: int
    dataset: object
    generator: Generator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "generator", Generator().manual_seed(self.seed))


class _LoadingState(threading.local):
    info: WorkerInfo | None = None
    generator: Generator | None = None


_state = _LoadingState()


def get_worker_info() -> WorkerInfo | None:
    """The ``WorkerInfo`` of the DataLoader worker running this code, or None outside workers.

    As in PyTorch, loaders with ``num_workers=0`` have no workers, so this is None there too.
    """
    return _state.info


def worker_generator() -> Generator:
    """The generator for random choices made while loading data: the current loader worker's own
    stream, or the default generator when no loader is running this code.

    >>> import dslearn as ds
    >>> worker_generator() is ds.random.default_generator
    True
    """
    return _state.generator or default_generator


@contextmanager
def loading_context(info: WorkerInfo, public: bool = True) -> Iterator[None]:
    """Run the block as worker ``info``; ``public=False`` keeps ``get_worker_info()`` None
    (a loader with ``num_workers=0`` uses the worker's random stream but has no workers)."""
    previous = _state.info, _state.generator
    _state.info, _state.generator = (info if public else None), info.generator
    try:
        yield
    finally:
        _state.info, _state.generator = previous
