"""MNIST and the datasets stored like it (Fashion-MNIST, KMNIST): 28x28 grayscale images in IDX files.

``IdxImageDataset`` holds the images (uint8) and labels of one split. A sample is
``(image, label)``: a float32 (1, 28, 28) tensor with values in [0, 1] (or whatever
``transform`` makes of the uint8 (28, 28) array) and the label as a Python int. Its
``__getitems__`` returns a whole batch with one fancy-indexing read, which ``DataLoader`` uses.

``load_idx_classification`` builds the dataset of a registry entry. For an entry with
``offline_fallback`` (MNIST), when the 60,000 training images cannot be found or downloaded,
it uses **MNIST-10k**: the official 10,000 test images split once and for all into 8,000 for
training and 2,000 for testing, stratified by class (``mnist10k_split``). Every printout of such
a dataset says so.

May import: numpy, the standard library, dslearn.tensor, dslearn.data.{dataset, collate, cache, idx}.

>>> import numpy as np
>>> images, labels = np.zeros((4, 28, 28), np.uint8), np.array([0, 1, 1, 0])
>>> data = IdxImageDataset(images, labels, classes=("a", "b"), name="toy", split="train", title="toy images")
>>> image, label = data[1]
>>> image.shape, image.dtype, label
((1, 28, 28), dslearn.float32, 1)
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np

from dslearn.data.cache import DatasetNotFoundError, cache_dirs, downloads_allowed, find_file
from dslearn.data.collate import default_collate
from dslearn.data.dataset import Dataset
from dslearn.data.idx import read_idx
from dslearn.tensor import Tensor

MNIST10K_SEED = 2024  # fixes the MNIST-10k split forever (see mnist10k_split)
MNIST10K_TRAIN_FRACTION = 0.8
_announced: set[str] = set()


class IdxImageDataset(Dataset):
    """One split of an image classification dataset: uint8 images (N, H, W) and integer labels (N,).

    ``title`` is the line that names what this is (printed by ``repr`` and ``describe``);
    ``variant`` names the data source, e.g. ``'mnist-60k'`` or ``'mnist-10k'``; ``indices``
    are the positions of the samples in the source files; ``files`` the verified files read.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, classes: Sequence[str], name: str, split: str,
                 title: str, variant: str = "", indices: np.ndarray | None = None, files: Sequence[str] = (),
                 transform: Callable | None = None, target_transform: Callable | None = None) -> None:
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{name}: images must be a uint8 array (N, H, W), got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"{name}: labels must be a 1-d integer array, got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{name}: {len(images)} images but {len(labels)} labels in {list(files)}")
        outside = np.flatnonzero((labels < 0) | (labels >= len(classes)))
        if outside.size:
            raise ValueError(f"{name}: label {labels[outside[0]]} at position {outside[0]} is outside "
                             f"0..{len(classes) - 1} ({outside.size} labels out of range) in {list(files)}")
        self.images, self.labels = images, labels.astype(np.int64)
        self.classes, self.name, self.split, self.title, self.variant = tuple(classes), name, split, title, variant
        self.indices = np.arange(len(labels)) if indices is None else indices
        self.files = tuple(files)
        self.transform, self.target_transform = transform, target_transform

    @property
    def data(self) -> Tensor:
        """The raw images as a uint8 tensor (N, H, W), as torchvision's ``MNIST.data``."""
        return Tensor._make(self.images)

    @property
    def targets(self) -> Tensor:
        """The labels as an int64 tensor (N,)."""
        return Tensor._make(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image, label = self.images[index], int(self.labels[index])
        image = self.transform(image) if self.transform is not None else _to_float(image[None])
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The batch ``[images (B, 1, H, W) float32, labels (B,) int64]``; per sample when transforms are set."""
        if self.transform is not None or self.target_transform is not None:
            return default_collate([self[i] for i in indices])
        index = np.asarray(indices, dtype=np.int64)
        return [_to_float(self.images[index][:, None]), Tensor._make(self.labels[index])]

    def __repr__(self) -> str:
        extras = "".join(f", {name}={value!r}" for name, value in
                         (("transform", self.transform), ("target_transform", self.target_transform)) if value)
        return f"{self.title}: split={self.split!r}, {len(self):,} samples{extras}"

    def describe(self) -> str:
        """What this dataset is, where it came from, and what is in it."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        per_class = ", ".join(f"{c}: {n}" for c, n in zip(self.classes, counts))
        height, width = self.images.shape[1:]
        lines = [self.title,
                 f"  split {self.split!r}: {len(self):,} samples; images 1x{height}x{width} (uint8 on disk, float32 in "
                 f"[0, 1] as samples), {len(self.classes)} classes",
                 f"  samples per class: {per_class}",
                 "  files (MD5 verified):", *(f"    {path}" for path in self.files)]
        return "\n".join(lines)


def _to_float(images: np.ndarray) -> Tensor:
    """uint8 pixels as float32 in [0, 1] (divided by 255, as torchvision's ToTensor)."""
    return Tensor._make(np.divide(images, np.float32(255), dtype=np.float32))


def mnist10k_split(labels: np.ndarray, train_fraction: float = MNIST10K_TRAIN_FRACTION,
                   seed: int = MNIST10K_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..len(labels)-1`` into sorted (train, test) index arrays, stratified by class.

    Each class gives its share of ``round(train_fraction * n)`` training samples (largest
    remainders settle the rounding); within a class, the samples whose ``splitmix64(seed + i)``
    keys are smallest go to training. The keys depend on nothing but the seed, so the split is
    the same on every machine and every NumPy version.

    >>> import numpy as np
    >>> train, test = mnist10k_split(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), train_fraction=0.5)
    >>> len(train), len(test), np.bincount(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])[train]).tolist()
    (5, 5, [2, 3])
    """
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * train_fraction
    quotas = np.floor(exact).astype(np.int64)
    leftover = int(round(train_fraction * len(labels))) - int(quotas.sum())
    quotas[np.argsort(-(exact - quotas), kind="stable")[:leftover]] += 1
    keys = _splitmix64(np.arange(len(labels), dtype=np.uint64) + np.uint64(seed))
    train = []
    for label, quota in zip(classes, quotas):
        members = np.flatnonzero(labels == label)
        train.append(members[np.argsort(keys[members], kind="stable")[:quota]])
    train = np.sort(np.concatenate(train))
    return train, np.setdiff1d(np.arange(len(labels)), train)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 mixing function on uint64 arrays (wrapping arithmetic): a fixed pseudo-random key."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@functools.lru_cache(maxsize=8)
def _read_verified(path: str, md5: str) -> np.ndarray:
    """Decode a verified IDX file once per process (the key includes its MD5); read-only."""
    array = read_idx(path)
    array.flags.writeable = False
    return array


def load_idx_classification(info, split: str = "train", root=None, download: bool | None = None,
                            transform: Callable | None = None,
                            target_transform: Callable | None = None) -> IdxImageDataset:
    """The ``split`` of the registry entry ``info`` (see ``dslearn.data.registry``) as an ``IdxImageDataset``."""
    if split not in info.splits:
        raise ValueError(f"{info.name}: unknown split {split!r}; choose one of {sorted(info.splits)}")
    options = dict(classes=info.classes, name=info.name, split=split, transform=transform,
                   target_transform=target_transform)
    if not info.offline_fallback:
        paths, images, labels = _read_split(info, split, root, download)
        return IdxImageDataset(images, labels, title=f"{info.name} (official {split} split)", variant=info.folder,
                               files=paths, **options)
    for filename in info.splits["train"]:  # the full training set decides which variant this is
        try:
            _find(info, filename, root, download)
        except DatasetNotFoundError:
            if download is True:
                raise
            return _small_variant(info, split, root, download, filename, options)
    paths, images, labels = _read_split(info, split, root, download)
    train_size, test_size = (_thousands(len(_read_split(info, s, root, download)[2])) for s in ("train", "test"))
    return IdxImageDataset(images, labels, title=f"{info.name} (official {train_size}/{test_size} split)",
                           variant=f"{info.folder}-{train_size}", files=paths, **options)


def _small_variant(info, split: str, root, download: bool | None, missing_file: str,
                   options: dict) -> IdxImageDataset:
    """MNIST-10k: the official test files, split 8,000/2,000; announced once per process."""
    paths, images, labels = _read_split(info, "test", root, download)
    train, test = mnist10k_split(labels)
    size = _thousands(len(labels))
    missing = f"{_thousands(info.sizes['train'])} " if "train" in info.sizes else ""
    missing += "training " + ("images" if "images" in missing_file else "labels")
    looked = ", ".join(os.path.join(directory, info.folder, "") for directory in cache_dirs(root))
    unreachable = " and could not be downloaded" if downloads_allowed(download) else ""
    title = (f"{info.name}-{size} (offline default: {len(train):,}/{len(test):,} split of the official {size} test "
             f"set; the {missing} were not found in {looked}{unreachable})")
    if info.name not in _announced:
        _announced.add(info.name)
        print(f"Note: using {title}", file=sys.stderr)
    indices = train if split == "train" else test
    return IdxImageDataset(images[indices], labels[indices], title=title, variant=f"{info.folder}-{size}",
                           indices=indices, files=paths, **options)


def _read_split(info, split: str, root, download: bool | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The verified paths, images and labels of one split's (images, labels) files."""
    paths = [_find(info, filename, root, download) for filename in info.splits[split]]
    images, labels = (_read_verified(path, info.files[filename]) for path, filename in zip(paths, info.splits[split]))
    expected = info.sizes.get(split)
    if expected is not None and not len(images) == len(labels) == expected:
        raise ValueError(f"{info.name}: split {split!r} should have {expected:,} samples; {paths[0]} holds "
                         f"{len(images):,} images and {paths[1]} {len(labels):,} labels")
    return paths, images, labels


def _find(info, filename: str, root, download: bool | None) -> str:
    return find_file(info.name, info.folder, filename, info.files[filename], info.mirrors, root=root,
                     download=download)


def _thousands(n: int) -> str:
    """60000 -> '60k' (sizes under a thousand stay as they are)."""
    return f"{n // 1000}k" if n >= 1000 else str(n)
