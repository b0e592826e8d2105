"""Preparing a model for quantization: QAT layers, ``prepare_qat`` and post-training calibration.

``prepare_qat(model, config)`` returns a copy of ``model`` in which every ``Linear`` and
``Conv2d`` is replaced by ``QATLinear`` / ``QATConv2d``: the same layer (sharing nothing with
the original, holding the same values), with a quantizer on its weight and one on its input.
Training it trains through the rounding (straight-through gradients), so the weights settle
where the integer model will be accurate. ``quantize_model`` then turns it into an integer model.

Post-training quantization (PTQ, the baseline) uses the same layers without training:
``calibrate`` runs a few batches through the prepared model in eval mode with the quantizers
observing float values, and the ranges they record become the integer model's.

Where the quantizers sit: on each quantized layer's *input* and *weight*. Everything between
those layers (ReLU, pooling, flatten) runs in float on dequantized values, and each integer
layer returns float32 (its int32 sums times one scale per output channel, plus the bias).

May import: copy, numpy, dslearn.nn, dslearn.autograd, dslearn.quantization.{config, observers, quantizers}.

>>> import dslearn as ds
>>> model = prepare_qat(ds.nn.Sequential(ds.nn.Linear(4, 3), ds.nn.ReLU()), QATConfig(weight_bits=4))
>>> model[0]
QATLinear(
  in_features=4, out_features=3, bias=True
  (weight_fake_quant): FakeQuantize(
    bits=4, memoryless
    (observer): MinMaxObserver(quant_min=-7, quant_max=7, symmetric, ch_axis=0, float16 scales)
  )
  (input_fake_quant): FakeQuantize(
    bits=8
    (observer): MovingAverageMinMaxObserver(quant_min=0, quant_max=255, symmetric, per tensor)
  )
)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

import numpy as np

from dslearn.autograd.grad_mode import no_grad
from dslearn.nn import functional as F
from dslearn.nn.conv import Conv2d
from dslearn.nn.linear import Linear
from dslearn.nn.module import Module
from dslearn.quantization.config import QATConfig
from dslearn.quantization.observers import (
    FixedRangeObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PercentileObserver,
)
from dslearn.quantization.quantizers import (
    DynamicFakeQuantize,
    FakeQuantize,
    LearnableFakeQuantize,
    PACTFakeQuantize,
)
from dslearn.tensor import Tensor

QUANTIZERS = (FakeQuantize, PACTFakeQuantize, DynamicFakeQuantize)
WEIGHT_SCALE_DTYPE = np.float16  # what integer layers store (dslearn.quantization.integer)


def weight_quantizer(config: QATConfig, out_channels: int) -> Module:
    """The quantizer of a weight with ``out_channels`` rows: per-channel min-max of the current weight, or LSQ.

    >>> weight_quantizer(QATConfig(weight_bits=4, learnable_scales=True), 16).bits
    4
    """
    quant_min, quant_max = config.weight_range
    axis = 0 if config.per_channel else None
    observer = MinMaxObserver(quant_min, quant_max, symmetric=config.weight_symmetric, ch_axis=axis,
                              channels=out_channels, scale_dtype=WEIGHT_SCALE_DTYPE)
    return LearnableFakeQuantize(observer) if config.learnable_scales else FakeQuantize(observer, memoryless=True)


def activation_quantizer(config: QATConfig) -> Module:
    """The quantizer of a layer's input, as ``config`` asks: dynamic, PACT, LSQ or an observer.

    >>> activation_quantizer(QATConfig(activation_bits=4, pact=True))
    PACTFakeQuantize(bits=4)
    """
    if config.quant_scheme == "dynamic":
        return DynamicFakeQuantize(config.activation_bits)
    if config.pact:
        return PACTFakeQuantize(config.activation_bits)
    quant_min, quant_max = config.activation_range
    symmetric = config.quant_scheme == "symmetric"
    if config.quant_min is not None:
        observer = FixedRangeObserver(quant_min, quant_max, min_val=config.quant_min, max_val=config.quant_max,
                                      symmetric=symmetric)
    elif config.observer == "minmax":
        observer = MinMaxObserver(quant_min, quant_max, symmetric=symmetric)
    elif config.observer == "moving_average":
        observer = MovingAverageMinMaxObserver(quant_min, quant_max, symmetric=symmetric,
                                               averaging_constant=config.averaging_constant)
    else:
        observer = PercentileObserver(quant_min, quant_max, symmetric=symmetric,
                                      averaging_constant=config.averaging_constant, percentile=config.percentile)
    return LearnableFakeQuantize(observer) if config.learnable_scales else FakeQuantize(observer)


class QATLinear(Linear):
    """``Linear`` trained through fake quantization: ``linear(quantize(x), quantize(weight), bias)``.

    >>> import dslearn as ds
    >>> layer = QATLinear(4, 2, config=QATConfig(weight_bits=4))
    >>> layer(ds.ones(3, 4)).shape
    (3, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, config: QATConfig) -> None:
        super().__init__(in_features, out_features, bias)
        self.weight_fake_quant = weight_quantizer(config, out_features)
        self.input_fake_quant = activation_quantizer(config)

    @classmethod
    def from_float(cls, layer: Linear, config: QATConfig) -> QATLinear:
        """A QATLinear holding ``layer``'s own weight and bias Parameters."""
        qat = cls(layer.in_features, layer.out_features, layer.bias is not None, config=config)
        qat.weight, qat.bias = layer.weight, layer.bias
        return qat

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(self.input_fake_quant(input), self.weight_fake_quant(self.weight), self.bias)


class QATConv2d(Conv2d):
    """``Conv2d`` trained through fake quantization of its input and weight (``padding_mode='zeros'`` only).

    >>> import dslearn as ds
    >>> layer = QATConv2d(1, 4, 3, padding=1, config=QATConfig())
    >>> layer(ds.ones(2, 1, 8, 8)).shape
    (2, 4, 8, 8)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, *, config: QATConfig) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.weight_fake_quant = weight_quantizer(config, out_channels)
        self.input_fake_quant = activation_quantizer(config)

    @classmethod
    def from_float(cls, layer: Conv2d, config: QATConfig) -> QATConv2d:
        """A QATConv2d with ``layer``'s geometry and its own weight and bias Parameters."""
        if layer.padding_mode != "zeros":
            raise ValueError(f"QATConv2d: padding_mode={layer.padding_mode!r} is not supported: an integer "
                             "convolution pads with the zero point, i.e. padding_mode='zeros'")
        qat = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                  layer.dilation, layer.groups, layer.bias is not None, config=config)
        qat.weight, qat.bias = layer.weight, layer.bias
        return qat

    def forward(self, input: Tensor) -> Tensor:
        x, weight = self.input_fake_quant(input), self.weight_fake_quant(self.weight)
        left, right, top, bottom = self._pad_widths
        if left == right and top == bottom:
            return F.conv2d(x, weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return F.conv2d(F.pad(x, self._pad_widths), weight, self.bias, self.stride, 0, self.dilation, self.groups)


QAT_LAYERS = {Linear: QATLinear, Conv2d: QATConv2d}


def fake_quantizers(model: Module) -> Iterator[Module]:
    """Every quantizer module inside ``model``.

    >>> import dslearn as ds
    >>> len(list(fake_quantizers(prepare_qat(ds.nn.Linear(2, 2), QATConfig()))))  # weight and input
    2
    """
    return (m for m in model.modules() if isinstance(m, QUANTIZERS))


def is_prepared(model: Module) -> bool:
    """Whether ``model`` holds QAT layers (``prepare_qat`` or ``prepare`` has run on it).

    >>> import dslearn as ds
    >>> is_prepared(ds.nn.Linear(2, 2)), is_prepared(prepare_qat(ds.nn.Linear(2, 2), QATConfig()))
    (False, True)
    """
    return any(isinstance(m, (QATLinear, QATConv2d)) for m in model.modules())


def _swap_layers(module: Module, config: QATConfig) -> int:
    """Replace every plain Linear / Conv2d below ``module`` by its QAT layer; return how many."""
    swapped = 0
    for name, child in list(module.named_children()):
        qat_class = QAT_LAYERS.get(type(child))
        if qat_class is not None:
            setattr(module, name, qat_class.from_float(child, config))
            swapped += 1
        else:
            swapped += _swap_layers(child, config)
    return swapped


def prepare(model: Module, config: QATConfig, *, inplace: bool = False) -> Module:
    """``model`` (or a copy) with QAT layers in place of every Linear and Conv2d, for QAT or for calibration.

    >>> import dslearn as ds
    >>> type(prepare(ds.nn.Linear(2, 2), QATConfig(qat_enabled=False))).__name__
    'QATLinear'
    """
    config.validate()
    if is_prepared(model):
        raise ValueError(f"prepare: the {type(model).__name__} already holds QAT layers; prepare a float model")
    model = model if inplace else copy.deepcopy(model)
    qat_class = QAT_LAYERS.get(type(model))
    if qat_class is not None:
        return qat_class.from_float(model, config)
    if _swap_layers(model, config) == 0:
        raise ValueError(f"prepare: the {type(model).__name__} has no Linear or Conv2d layer to quantize")
    return model


def prepare_qat(model: Module, config: QATConfig, *, inplace: bool = False) -> Module:
    """A copy of ``model`` ready for quantization-aware training (``config.qat_enabled`` must be True).

    Build the optimizer on the returned model's parameters (they include learned scales with
    ``learnable_scales`` or ``pact``).

    >>> import dslearn as ds
    >>> model = prepare_qat(ds.nn.Sequential(ds.nn.Linear(4, 2)), QATConfig(weight_bits=4, learnable_scales=True))
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias', '0.weight_fake_quant.scale', '0.input_fake_quant.scale']
    """
    config.validate()
    if not config.qat_enabled:
        raise ValueError("prepare_qat: config.qat_enabled is False, i.e. post-training quantization; call "
                         "quantize_model(model, config, calibration_data=...) instead, or set qat_enabled=True")
    return prepare(model, config, inplace=inplace)


def calibrate(model: Module, data: Iterable, *, batches: int | None = None) -> Module:
    """Run ``data`` (batches, or (inputs, targets) pairs) through a prepared model so that its observers record ranges.

    The model runs in eval mode without gradients and with fake quantization off, so every
    observer sees the float values; ``batches`` limits how many batches are used.

    >>> import dslearn as ds
    >>> model = prepare(ds.nn.Linear(2, 2), QATConfig(qat_enabled=False))
    >>> _ = calibrate(model, [ds.tensor([[1.0, -1.0]])])
    >>> model.input_fake_quant.observer.max_val
    tensor(1.)
    """
    quantizers = list(fake_quantizers(model))
    if not quantizers:
        raise ValueError(f"calibrate: the {type(model).__name__} has no quantizers; prepare it first")
    if batches is not None and batches < 1:
        raise ValueError(f"calibrate: batches must be at least 1, got {batches}")
    was_training = model.training
    model.eval()
    for quantizer in quantizers:
        quantizer.train()
        quantizer.fake_quant_enabled = False
    seen = 0
    try:
        with no_grad():
            for batch in data:
                if batches is not None and seen >= batches:
                    break
                model(batch[0] if isinstance(batch, (tuple, list)) else batch)
                seen += 1
    finally:
        for quantizer in quantizers:
            quantizer.fake_quant_enabled = True
        model.train(was_training)
    if seen == 0:
        raise ValueError("calibrate: the calibration data produced no batches")
    return model
