"""Image transforms, as in torchvision: ``Compose``, ``ToTensor``, ``Normalize``, ``RandomCrop``,
``RandomHorizontalFlip`` and ``Lambda``.

Images are tensors of shape (C, H, W) (or (..., C, H, W)); ``ToTensor`` makes one from a uint8
H x W or H x W x C array. Random transforms draw from their ``generator``, or, when it is None,
from ``worker_generator()``: the DataLoader worker's own seeded stream inside a loader, the
default generator outside one. Either way ``ds.manual_seed`` makes them repeatable.

May import: numpy, dslearn.tensor, dslearn.dtypes, dslearn.ops, dslearn.random, dslearn.data.worker.

>>> import numpy as np
>>> to_input = Compose([ToTensor(), Normalize(mean=[0.5], std=[0.5])])
>>> to_input(np.array([[0, 255]], dtype=np.uint8))
tensor([[[-1.,  1.]]])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np

from dslearn import dtypes
from dslearn.data.worker import worker_generator
from dslearn.ops.arguments import describe
from dslearn.ops.shape import pad
from dslearn.random import Generator
from dslearn.tensor import Tensor


class Compose:
    """Apply transforms one after the other.

    >>> Compose([Lambda(lambda x: x + 1), Lambda(lambda x: 2 * x)])(3)
    8
    """

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image):
        for transform in self.transforms:
            image = transform(image)
        return image

    def __repr__(self) -> str:
        return "Compose(" + "".join(f"\n    {t!r}," for t in self.transforms) + "\n)"


class ToTensor:
    """A uint8 image (H x W or H x W x C, NumPy array, uint8 tensor or PIL image) as a float tensor
    (C, H, W) with values in [0, 1]; images of other dtypes keep their values and dtype.

    >>> import numpy as np
    >>> ToTensor()(np.full((2, 3, 3), 255, dtype=np.uint8)).shape
    (3, 2, 3)
    """

    def __call__(self, image) -> Tensor:
        array = image._host_array() if isinstance(image, Tensor) else np.asarray(image)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"ToTensor: expected an H x W or H x W x C image, got an array of shape {array.shape}")
        array = array.transpose(2, 0, 1)
        if array.dtype == np.uint8:
            default = dtypes.get_default_dtype().np
            return Tensor._make(np.divide(array, default.type(255), dtype=default))
        return Tensor._make(np.ascontiguousarray(array))

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """``(image - mean) / std`` per channel of a float (..., C, H, W) tensor.

    >>> import dslearn as ds
    >>> Normalize(mean=[1.0, 2.0], std=[2.0, 4.0])(ds.ones(2, 1, 1) * 3).flatten()
    tensor([1.  , 0.25])
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(m) for m in np.atleast_1d(mean))
        self.std = tuple(float(s) for s in np.atleast_1d(std))
        if any(s == 0 for s in self.std):
            raise ValueError(f"Normalize: std {self.std} contains a zero, which would divide by zero")

    def __call__(self, image: Tensor) -> Tensor:
        if not isinstance(image, Tensor) or image.ndim < 3:
            shape = image.shape if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"Normalize: expected a tensor image of shape (..., C, H, W), got {shape}")
        if not image.dtype.is_floating_point:
            raise TypeError(f"Normalize: expected a float tensor, got {describe(image)}; apply ToTensor() first")
        channels = image.shape[-3]
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(f"Normalize: {len(self.mean)} means and {len(self.std)} stds for an image with "
                             f"{channels} channels")
        mean = Tensor._make(np.array(self.mean, dtype=image.dtype.np).reshape(-1, 1, 1))
        std = Tensor._make(np.array(self.std, dtype=image.dtype.np).reshape(-1, 1, 1))
        return (image - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class RandomCrop:
    """A random ``size`` crop of a (..., H, W) tensor, after padding it by ``padding`` if given.

    ``size`` is an int (square) or ``(h, w)``; ``padding`` an int (all sides), ``(left/right,
    top/bottom)`` or ``(left, top, right, bottom)``; ``padding_mode`` as ``ds.pad``'s ``mode``.

    >>> import dslearn as ds
    >>> RandomCrop(28, padding=4, generator=ds.Generator().manual_seed(0))(ds.ones(1, 28, 28)).shape
    (1, 28, 28)
    """

    def __init__(self, size: int | Sequence[int], padding: int | Sequence[int] | None = None, fill: float = 0.0,
                 padding_mode: str = "constant", generator: Generator | None = None) -> None:
        self.size = _pair(size, "size")
        self.padding = _padding(padding)
        self.fill, self.padding_mode, self.generator = fill, padding_mode, generator

    def __call__(self, image: Tensor) -> Tensor:
        if not isinstance(image, Tensor) or image.ndim < 2:
            raise ValueError(f"RandomCrop: expected a tensor image of shape (..., H, W), got {image!r:.60}")
        left, top, right, bottom = self.padding
        if any(self.padding):
            image = pad(image, (left, right, top, bottom), mode=self.padding_mode, value=self.fill)
        (height, width), (h, w) = image.shape[-2:], self.size
        if h > height or w > width:
            raise ValueError(f"RandomCrop: crop size {(h, w)} is larger than the (padded) image size "
                             f"{(height, width)}")
        rng = (self.generator or worker_generator()).numpy
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        return image[..., top : top + h, left : left + w]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror a (..., H, W) tensor left to right with probability ``p``.

    >>> import dslearn as ds
    >>> RandomHorizontalFlip(p=1.0)(ds.tensor([[[1, 2, 3]]]))
    tensor([[[3, 2, 1]]])
    """

    def __init__(self, p: float = 0.5, generator: Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def __call__(self, image: Tensor) -> Tensor:
        if not isinstance(image, Tensor) or image.ndim < 2:
            raise ValueError(f"RandomHorizontalFlip: expected a tensor image of shape (..., H, W), got {image!r:.60}")
        if (self.generator or worker_generator()).numpy.random() < self.p:
            return image[..., ::-1]
        return image

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Lambda:
    """A transform made from any function.

    >>> Lambda(str.upper)("mnist")
    'MNIST'
    """

    def __init__(self, function: Callable) -> None:
        if not callable(function):
            raise TypeError(f"Lambda: argument should be callable, got {type(function).__name__}")
        self.function = function

    def __call__(self, image):
        return self.function(image)

    def __repr__(self) -> str:
        return f"Lambda({getattr(self.function, '__name__', self.function)!r})"


def _pair(size, name: str) -> tuple[int, int]:
    if isinstance(size, numbers.Integral):
        size = (int(size), int(size))
    size = tuple(size)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in size):
        raise ValueError(f"RandomCrop: {name} must be a positive int or a pair (h, w) of them, got {size}")
    return size


def _padding(padding) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` from torchvision's three ways of writing padding."""
    if padding is None:
        return (0, 0, 0, 0)
    values = (padding,) if isinstance(padding, numbers.Integral) else tuple(padding)
    if len(values) not in (1, 2, 4) or not all(isinstance(v, numbers.Integral) and v >= 0 for v in values):
        raise ValueError(f"RandomCrop: padding must be a non-negative int or a sequence of 1, 2 or 4 of them, "
                         f"got {padding}")
    if len(values) == 1:
        return values * 4
    if len(values) == 2:
        return values * 2
    return values
