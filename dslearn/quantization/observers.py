"""Observers: modules that watch tensors go by and turn the range they saw into a scale and a zero point.

An observer's ``forward`` records the range of its input (per tensor, or per channel along
``ch_axis``) and returns the input unchanged; ``calculate_qparams()`` maps the recorded
``[min_val, max_val]`` to ``(scale, zero_point)`` for the integers ``[quant_min, quant_max]``
with ``qparams_from_range``. They differ in how a new batch updates the range:

* ``MinMaxObserver``: the extremes of everything seen;
* ``MovingAverageMinMaxObserver``: a moving average of each batch's extremes, which forgets
  early outliers (and the large activations of an untrained network);
* ``PercentileObserver``: a moving average of each batch's low and high percentiles, which
  ignores the rarest values entirely and spends the levels on the bulk of the distribution;
* ``FixedRangeObserver``: a range given in advance (``QATConfig.quant_min/quant_max``).

The range always includes 0, so that a real 0 (padding, a ReLU's output) is exactly representable.

May import: numpy, dslearn.tensor, dslearn.creation, dslearn.nn, dslearn.quantization.config.

>>> import dslearn as ds
>>> observer = MinMaxObserver(quant_min=-7, quant_max=7)
>>> _ = observer(ds.tensor([-1.0, 0.5, 3.5]))
>>> observer.calculate_qparams()
(tensor(0.5), tensor(0, dtype=dslearn.int32))
"""

from __future__ import annotations

import numpy as np

from dslearn.creation import full, tensor
from dslearn.nn.module import Module
from dslearn.tensor import Tensor

EPS = np.finfo(np.float32).eps  # the smallest scale, as PyTorch: a constant tensor still gets a usable scale


def representable_scale(scale, dtype=np.float32) -> np.ndarray:
    """``scale`` (at least ``EPS``) rounded to the nearest ``dtype`` number inside that type's normal range, as float32.

    Integer layers store weight scales in float16; quantizers that compute with the rounded
    scale make the integer model compute exactly what training saw.

    >>> representable_scale(np.float32(0.1), np.float16)
    array(0.09997559, dtype=float32)
    """
    scale = np.asarray(np.maximum(scale, EPS), dtype=np.float32)
    if np.dtype(dtype) == np.float32:
        return scale
    finfo = np.finfo(dtype)
    return np.asarray(np.clip(scale, finfo.tiny, finfo.max), dtype=dtype).astype(np.float32)


def qparams_from_range(min_val, max_val, quant_min: int, quant_max: int, symmetric: bool,
                       scale_dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, zero_point)`` (float32, int32 arrays) that map ``[min_val, max_val]`` onto ``[quant_min, quant_max]``.

    The range is first widened to include 0. Symmetric: zero point 0 and
    ``scale = max(|min|, |max|) / ((quant_max - quant_min) // 2)`` for a signed range; for an
    unsigned one, zero point 0 and ``scale = max / quant_max`` when nothing is negative, else
    the middle integer ``(quant_min + quant_max + 1) // 2`` (the ``// 2`` then leaves the
    positive side, one integer shorter, room for the largest value). Asymmetric (affine):
    ``scale = (max - min) / (quant_max - quant_min)`` and ``zero_point = quant_min - round(min / scale)``.
    The scale is rounded to ``scale_dtype`` (see ``representable_scale``) before the zero point is found.

    >>> qparams_from_range(-1.0, 3.0, 0, 15, symmetric=False)
    (array(0.26666668, dtype=float32), array(4, dtype=int32))
    >>> qparams_from_range(0.0, 3.0, 0, 15, symmetric=True)
    (array(0.2, dtype=float32), array(0, dtype=int32))
    """
    low = np.minimum(np.asarray(min_val, dtype=np.float32), 0)
    high = np.maximum(np.asarray(max_val, dtype=np.float32), 0)
    levels = np.float32(quant_max - quant_min)
    zero_point = np.zeros(low.shape, np.int32)
    if symmetric and (quant_min < 0 or np.any(low < 0)):
        scale = representable_scale(np.maximum(-low, high) / ((quant_max - quant_min) // 2), scale_dtype)
        if quant_min >= 0:  # unsigned integers for signed values: 0 sits in the middle
            zero_point += (quant_min + quant_max + 1) // 2
    elif symmetric:
        scale = representable_scale(high / levels, scale_dtype)
        zero_point += quant_min
    else:
        scale = representable_scale((high - low) / levels, scale_dtype)
        zero_point = np.clip(quant_min - np.rint(low / scale), quant_min, quant_max).astype(np.int32)
    return scale, np.asarray(zero_point, dtype=np.int32)


class Observer(Module):
    """Base class: records a range per tensor (``ch_axis=None``) or per channel; subclasses say how it updates.

    ``channels`` is the size of ``ch_axis`` (needed up front so that the state dict has fixed
    shapes); ``scale_dtype`` the type the scales must be representable in (float16 for weights).

    >>> import dslearn as ds
    >>> observer = Observer(-7, 7, ch_axis=0, channels=2)
    >>> _ = observer(ds.tensor([[1.0, -3.5], [0.1, 0.2]]))
    >>> observer.max_val, observer.calculate_qparams()[0]
    (tensor([1. , 0.2]), tensor([0.5   , 0.0286]))
    """

    def __init__(self, quant_min: int, quant_max: int, symmetric: bool = True, ch_axis: int | None = None,
                 channels: int = 1, scale_dtype=np.float32) -> None:
        super().__init__()
        self.set_range(quant_min, quant_max)
        self.symmetric, self.ch_axis, self.scale_dtype = symmetric, ch_axis, np.dtype(scale_dtype)
        shape = () if ch_axis is None else (channels,)
        self.register_buffer("min_val", full(shape, float("inf")))
        self.register_buffer("max_val", full(shape, float("-inf")))

    def set_range(self, quant_min: int, quant_max: int) -> None:
        """Change the integer range (a progressive schedule lowers the bits this way)."""
        if not (isinstance(quant_min, int) and isinstance(quant_max, int)) or quant_min >= quant_max:
            raise ValueError(f"{type(self).__name__}: quant_min < quant_max must be integers, got {quant_min!r} "
                             f"and {quant_max!r}")
        self.quant_min, self.quant_max = quant_min, quant_max

    @property
    def has_data(self) -> bool:
        """Whether a range has been recorded."""
        return bool(np.all(self.min_val._data <= self.max_val._data))

    def forward(self, x: Tensor) -> Tensor:
        low, high = self.batch_range(np.asarray(x.detach()._data))
        self.update(low.astype(np.float32), high.astype(np.float32))
        return x

    def _reduction_axes(self, x: np.ndarray) -> tuple[int, ...]:
        if self.ch_axis is None:
            return tuple(range(x.ndim))
        if not -x.ndim <= self.ch_axis < x.ndim or x.shape[self.ch_axis] != self.min_val.shape[0]:
            raise ValueError(f"{type(self).__name__}: expected {self.min_val.shape[0]} channels along axis "
                             f"{self.ch_axis}, got an input of shape {x.shape}")
        axis = self.ch_axis % x.ndim
        return tuple(d for d in range(x.ndim) if d != axis)

    def batch_range(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The range one batch shows (per channel along ``ch_axis``): its min and max."""
        if x.size == 0:
            raise ValueError(f"{type(self).__name__}: cannot observe an empty tensor of shape {x.shape}")
        axes = self._reduction_axes(x)
        return x.min(axis=axes), x.max(axis=axes)

    def update(self, low: np.ndarray, high: np.ndarray) -> None:
        """Fold a batch's range into the recorded one (here: keep the extremes)."""
        self.min_val = tensor(np.minimum(self.min_val._data, low))
        self.max_val = tensor(np.maximum(self.max_val._data, high))

    def reset_min_max(self) -> None:
        """Forget everything observed."""
        self.min_val = full(self.min_val.shape, float("inf"))
        self.max_val = full(self.max_val.shape, float("-inf"))

    def calculate_qparams(self) -> tuple[Tensor, Tensor]:
        """``(scale, zero_point)`` for the recorded range (float32 and int32 tensors)."""
        if not self.has_data:
            raise RuntimeError(f"{type(self).__name__}: no data observed yet; run calibration data (or a training "
                               "step) through the model first")
        scale, zero_point = qparams_from_range(self.min_val._data, self.max_val._data, self.quant_min,
                                               self.quant_max, self.symmetric, self.scale_dtype)
        return tensor(scale), tensor(zero_point)

    def extra_repr(self) -> str:
        axis = "per tensor" if self.ch_axis is None else f"ch_axis={self.ch_axis}"
        kind = "symmetric" if self.symmetric else "affine"
        scale = "" if self.scale_dtype == np.float32 else f", {self.scale_dtype.name} scales"
        return f"quant_min={self.quant_min}, quant_max={self.quant_max}, {kind}, {axis}{scale}"


class MinMaxObserver(Observer):
    """The extremes of everything observed.

    >>> import dslearn as ds
    >>> observer = MinMaxObserver(0, 255, symmetric=False)
    >>> _ = observer(ds.tensor([0.0, 2.0])); _ = observer(ds.tensor([-1.0, 1.0]))
    >>> observer.min_val, observer.max_val
    (tensor(-1.), tensor(2.))
    """


class MovingAverageMinMaxObserver(Observer):
    """``min_val += c * (batch_min - min_val)`` (likewise ``max_val``); the first batch sets the range.

    >>> import dslearn as ds
    >>> observer = MovingAverageMinMaxObserver(0, 255, averaging_constant=0.5)
    >>> _ = observer(ds.tensor([0.0, 2.0])); _ = observer(ds.tensor([0.0, 4.0]))
    >>> observer.max_val
    tensor(3.)
    """

    def __init__(self, quant_min: int, quant_max: int, symmetric: bool = True, ch_axis: int | None = None,
                 channels: int = 1, averaging_constant: float = 0.01, scale_dtype=np.float32) -> None:
        super().__init__(quant_min, quant_max, symmetric, ch_axis, channels, scale_dtype)
        if not 0.0 < averaging_constant <= 1.0:
            raise ValueError(f"{type(self).__name__}: averaging_constant must be in (0, 1], got {averaging_constant}")
        self.averaging_constant = averaging_constant

    def update(self, low: np.ndarray, high: np.ndarray) -> None:
        if not self.has_data:
            super().update(low, high)
            return
        c = np.float32(self.averaging_constant)
        self.min_val = tensor(self.min_val._data + c * (low - self.min_val._data))
        self.max_val = tensor(self.max_val._data + c * (high - self.max_val._data))


class PercentileObserver(MovingAverageMinMaxObserver):
    """A moving average of each batch's ``100 - percentile`` and ``percentile`` percentiles.

    >>> import dslearn as ds
    >>> observer = PercentileObserver(0, 255, percentile=90.0)
    >>> _ = observer(ds.arange(11.0))
    >>> observer.min_val, observer.max_val
    (tensor(1.), tensor(9.))
    """

    def __init__(self, quant_min: int, quant_max: int, symmetric: bool = True, ch_axis: int | None = None,
                 channels: int = 1, averaging_constant: float = 0.01, percentile: float = 99.99,
                 scale_dtype=np.float32) -> None:
        super().__init__(quant_min, quant_max, symmetric, ch_axis, channels, averaging_constant, scale_dtype)
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"PercentileObserver: percentile must be in (50, 100], got {percentile}")
        self.percentile = percentile

    def batch_range(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.size == 0:
            raise ValueError(f"PercentileObserver: cannot observe an empty tensor of shape {x.shape}")
        axes = self._reduction_axes(x)
        low, high = np.percentile(x, [100.0 - self.percentile, self.percentile], axis=axes)
        return low, high


class FixedRangeObserver(Observer):
    """A range fixed in advance; observing changes nothing.

    >>> FixedRangeObserver(0, 255, min_val=-2.0, max_val=2.0, symmetric=True).calculate_qparams()
    (tensor(0.0157), tensor(128, dtype=dslearn.int32))
    """

    def __init__(self, quant_min: int, quant_max: int, *, min_val: float, max_val: float,
                 symmetric: bool = True) -> None:
        super().__init__(quant_min, quant_max, symmetric)
        self.min_val, self.max_val = tensor(np.float32(min_val)), tensor(np.float32(max_val))

    def update(self, low: np.ndarray, high: np.ndarray) -> None:
        return None

    def reset_min_max(self) -> None:
        return None
