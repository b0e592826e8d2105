"""Data: datasets, samplers, DataLoader, collation, transforms, and the dataset registry with MNIST.

The seed document's usage works as written::

    from dslearn.data import TsinghuaDataset
    mnist = TsinghuaDataset('MNIST', split='train')
    loader = ds.data.DataLoader(mnist, batch_size=64, collate_fn=ds.data.pad_sequence)

Layers, bottom up: ``idx`` (the IDX file format), ``cache`` (finding, checking and downloading
files), ``dataset``/``sampler``/``collate`` (PyTorch's building blocks), ``worker``/``prefetch``
(background batches), ``dataloader``, ``transforms``, ``mnist`` (MNIST-like datasets and the
MNIST-10k offline default), ``registry`` (named datasets and ``TsinghuaDataset``).

May import: everything under dslearn.data, dslearn.tensor, dslearn.random, dslearn.creation, dslearn.ops.

>>> import dslearn as ds
>>> loader = ds.data.DataLoader(ds.data.TensorDataset(ds.zeros(10, 3), ds.arange(10)), batch_size=4)
>>> [tuple(x.shape) for x, _ in loader]
[(4, 3), (4, 3), (2, 3)]
"""

from dslearn.data import transforms
from dslearn.data.cache import ChecksumError, DatasetNotFoundError
from dslearn.data.collate import default_collate, default_convert, pad_sequence
from dslearn.data.dataloader import DataLoader
from dslearn.data.dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from dslearn.data.idx import IdxFormatError, read_idx, write_idx
from dslearn.data.mnist import IdxImageDataset, mnist10k_split
from dslearn.data.registry import (
    DatasetInfo,
    TsinghuaDataset,
    dataset_info,
    list_datasets,
    register_dataset,
    unregister_dataset,
)
from dslearn.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from dslearn.data.worker import WorkerInfo, get_worker_info

__all__ = [name for name in dir() if not name.startswith("_")]
