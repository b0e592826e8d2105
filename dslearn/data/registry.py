"""The dataset registry: named datasets with their files, MD5 checksums and mirrors; ``TsinghuaDataset``.

``TsinghuaDataset('MNIST', split='train')`` (the seed document's name) looks the name up here,
finds or downloads the files (``dslearn.data.cache``) and builds the dataset with the entry's
loader. MNIST, FashionMNIST and KMNIST are registered; ``register_dataset`` adds more.
When MNIST's 60,000 training images are not available, MNIST is MNIST-10k (see
``dslearn.data.mnist``) and says so.

May import: the standard library, dslearn.data.mnist.

>>> import dslearn as ds
>>> ds.data.list_datasets()
['FashionMNIST', 'KMNIST', 'MNIST']
>>> ds.data.dataset_info('MNIST').files['t10k-labels-idx1-ubyte.gz']
'ec29112dd5afa0611ce80d1b7f02629c'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dslearn.data.mnist import load_idx_classification

_MD5 = re.compile(r"[0-9a-f]{32}")
_registry: dict[str, DatasetInfo] = {}


@dataclass(frozen=True)
class DatasetInfo:
    """A registry entry: where a dataset's files come from and how to make a dataset of them.

    ``files`` maps each file name to its MD5; ``mirrors`` are URL prefixes tried in order;
    ``splits`` maps a split name to its (images file, labels file) and ``sizes`` (optional) to its
    number of samples, which loading checks; ``loader(info, split, root,
    download, transform, target_transform)`` builds the dataset; ``offline_fallback`` lets the
    loader use the MNIST-10k split of the test files when the training files are missing.
    """

    name: str
    folder: str
    files: Mapping[str, str]
    mirrors: tuple[str, ...]
    splits: Mapping[str, tuple[str, str]]
    classes: tuple[str, ...]
    sizes: Mapping[str, int] = field(default_factory=dict)
    homepage: str = ""
    offline_fallback: bool = False
    loader: Callable = field(default=load_idx_classification, repr=False)


def register_dataset(name: str, *, folder: str, files: Mapping[str, str], mirrors: Sequence[str],
                     splits: Mapping[str, Sequence[str]], classes: Sequence[str],
                     sizes: Mapping[str, int] | None = None, homepage: str = "",
                     offline_fallback: bool = False, loader: Callable = load_idx_classification,
                     overwrite: bool = False) -> DatasetInfo:
    """Add a dataset to the registry (``overwrite=True`` replaces an entry of the same name).

    >>> info = register_dataset("Tiny", folder="tiny", files={"x.gz": "0" * 32, "y.gz": "1" * 32},
    ...                         mirrors=["http://127.0.0.1:8000/tiny"], splits={"train": ("x.gz", "y.gz")},
    ...                         classes=["no", "yes"])
    >>> info.mirrors, "Tiny" in list_datasets()
    (('http://127.0.0.1:8000/tiny/',), True)
    >>> unregister_dataset("Tiny")
    """
    unknown_sizes = set(sizes or {}) - set(splits)
    if unknown_sizes:
        raise ValueError(f"register_dataset: {name}: sizes name splits {sorted(unknown_sizes)} that are not in splits")
    if name.lower() in {known.lower() for known in _registry} and not overwrite:
        raise ValueError(f"register_dataset: {name!r} is already registered; pass overwrite=True to replace it")
    for filename, md5 in files.items():
        if not _MD5.fullmatch(md5):
            raise ValueError(f"register_dataset: {name}: MD5 of {filename!r} must be 32 lowercase hex digits, "
                             f"got {md5!r}")
    for split, split_files in splits.items():
        unknown = [f for f in split_files if f not in files]
        if len(split_files) != 2 or unknown:
            raise ValueError(f"register_dataset: {name}: split {split!r} must name an (images, labels) pair of "
                             f"registered files, got {tuple(split_files)}")
    info = DatasetInfo(name=name, folder=folder, files=dict(files),
                       mirrors=tuple(m if m.endswith("/") else m + "/" for m in mirrors),
                       splits={split: tuple(pair) for split, pair in splits.items()}, classes=tuple(classes),
                       sizes=dict(sizes or {}), homepage=homepage, offline_fallback=offline_fallback, loader=loader)
    unregister_dataset(name)
    _registry[name] = info
    return info


def unregister_dataset(name: str) -> None:
    """Remove a dataset from the registry (nothing happens if it is not there)."""
    for known in [k for k in _registry if k.lower() == name.lower()]:
        del _registry[known]


def list_datasets() -> list[str]:
    """The names of the registered datasets, sorted."""
    return sorted(_registry)


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name`` (case does not matter)."""
    for known, info in _registry.items():
        if known.lower() == name.lower():
            return info
    raise KeyError(f"unknown dataset {name!r}; registered: {list_datasets()} (add one with register_dataset)")


def TsinghuaDataset(name: str, split: str = "train", root=None, download: bool | None = None,  # noqa: N802
                    transform: Callable | None = None, target_transform: Callable | None = None):
    """The ``split`` of the registered dataset ``name``, from the local cache or a mirror.

    ``root``: the folder that holds ``<dataset-folder>/`` (default: ``$DSLEARN_DATA``, then
    ``~/.cache/dslearn``). ``download``: None downloads missing files unless ``DSLEARN_OFFLINE``
    is set, True insists on the full files, False never touches the network. ``transform`` and
    ``target_transform`` apply to each image (a uint8 H x W array) and label.

    MNIST samples are ``(image, label)``: a float32 (1, 28, 28) tensor in [0, 1] and an int.
    Without the 60,000 training images (as in offline classrooms), MNIST is MNIST-10k: an
    8,000/2,000 split of the official test set, and its ``repr`` says so.

    >>> import tempfile, dslearn as ds
    >>> try:
    ...     ds.data.TsinghuaDataset('MNIST', split='train', root=tempfile.mkdtemp(), download=False)
    ... except ds.data.DatasetNotFoundError as error:
    ...     print(str(error).splitlines()[0])
    MNIST: file 't10k-images-idx3-ubyte.gz' (MD5 9fb629c4189551a2d022fa330f9573f3) not found. Looked in:
    """
    return dataset_info(name).loader(dataset_info(name), split=split, root=root, download=download,
                                     transform=transform, target_transform=target_transform)


_MNIST_SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_MNIST_SIZES = {"train": 60_000, "test": 10_000}

register_dataset(
    "MNIST", folder="mnist", splits=_MNIST_SPLITS, sizes=_MNIST_SIZES, classes=[str(digit) for digit in range(10)],
    files={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
           "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
           "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
           "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    # The official site (last) often refuses scripted downloads; the mirrors hold identical files.
    mirrors=["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
             "http://yann.lecun.com/exdb/mnist/"],
    homepage="http://yann.lecun.com/exdb/mnist/", offline_fallback=True)

register_dataset(
    "FashionMNIST", folder="fashion-mnist", splits=_MNIST_SPLITS, sizes=_MNIST_SIZES,
    classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    files={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
           "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
           "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
           "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    mirrors=["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    homepage="https://github.com/zalandoresearch/fashion-mnist")

register_dataset(
    "KMNIST", folder="kmnist", splits=_MNIST_SPLITS, sizes=_MNIST_SIZES,
    classes=["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
    files={"train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
           "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
           "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
           "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134"},
    mirrors=["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
    homepage="https://github.com/rois-codh/kmnist")
