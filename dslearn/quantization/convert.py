"""From a trained model to an integer model: ``quantize_model``, ``convert``, ``quantized_skeleton``, ``saved_size``.

Two roads lead to the same integer model:

* quantization-aware training: ``prepared = prepare_qat(model, config)``, train ``prepared``,
  then ``quantize_model(prepared)``;
* post-training quantization (the baseline): ``quantize_model(model, config,
  calibration_data=loader)`` with ``config.qat_enabled = False``; the observers see a few
  calibration batches and nothing is trained. ``quant_scheme='dynamic'`` needs no calibration.

Saving and loading use ``ds.save`` / ``ds.load`` on the state dict. To load, build the same
structure with ``quantized_skeleton(float_model, config)`` and ``load_state_dict`` into it.
``saved_size`` measures what the size claims are about: the bytes ``ds.save`` writes.

May import: copy, io, numpy, dslearn.autograd, dslearn.nn, dslearn.serialization,
dslearn.quantization.{config, qat, quantizers, integer}.

>>> import io, dslearn as ds
>>> float_model = ds.nn.Sequential(ds.nn.Linear(8, 4), ds.nn.ReLU(), ds.nn.Linear(4, 2))
>>> config = QATConfig(weight_bits=4, qat_enabled=False)
>>> model = quantize_model(float_model, config, calibration_data=[ds.randn(16, 8)])
>>> buffer = io.BytesIO(); ds.save(model.state_dict(), buffer); _ = buffer.seek(0)
>>> restored = quantized_skeleton(float_model, config)
>>> restored.load_state_dict(ds.load(buffer))
IncompatibleKeys(missing_keys=[], unexpected_keys=[])
>>> x = ds.randn(3, 8)
>>> bool((restored(x) == model(x)).all()), restored[0].weight.dtype
(True, dslearn.uint8)
"""

from __future__ import annotations

import copy
import io
from collections.abc import Iterable

from dslearn.autograd.grad_mode import no_grad
from dslearn.nn.conv import Conv2d
from dslearn.nn.linear import Linear
from dslearn.nn.module import Module
from dslearn.quantization.config import QATConfig
from dslearn.quantization.integer import IntegerLayer, QuantizedConv2d, QuantizedLinear
from dslearn.quantization.qat import QATConv2d, QATLinear, calibrate, is_prepared, prepare
from dslearn.quantization.quantizers import DynamicFakeQuantize
from dslearn.serialization import save


def _layer_options(weight_quantizer: Module, input_quantizer: Module) -> dict:
    """The integer layer's keyword arguments, read from a QAT layer's two quantizers."""
    observer = weight_quantizer.observer
    return {"weight_bits": weight_quantizer.bits, "weight_symmetric": observer.symmetric,
            "per_channel": observer.ch_axis is not None, "activation_bits": input_quantizer.bits,
            "dynamic": isinstance(input_quantizer, DynamicFakeQuantize)}


def _config_options(config: QATConfig) -> dict:
    """The integer layer's keyword arguments, read from a config."""
    return {"weight_bits": config.weight_bits, "weight_symmetric": config.weight_symmetric,
            "per_channel": config.per_channel, "activation_bits": config.activation_bits,
            "dynamic": config.quant_scheme == "dynamic"}


def _empty_integer_layer(layer: Module, options: dict) -> IntegerLayer:
    """An integer layer with ``layer``'s shape (a float or QAT Linear / Conv2d) and zero weights."""
    if isinstance(layer, Linear):
        return QuantizedLinear(layer.in_features, layer.out_features, layer.bias is not None, **options)
    return QuantizedConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer._pad_widths,
                           layer.dilation, layer.groups, layer.bias is not None, **options)


def integer_layer(qat: QATLinear | QATConv2d) -> IntegerLayer:
    """The integer layer a trained (or calibrated) QAT layer stands for.

    >>> import dslearn as ds
    >>> from dslearn.quantization.qat import prepare_qat
    >>> qat = prepare_qat(ds.nn.Linear(3, 2), QATConfig(weight_bits=4))
    >>> _ = qat(ds.randn(5, 3))
    >>> integer_layer(qat).weight.dtype
    dslearn.uint8
    """
    layer = _empty_integer_layer(qat, _layer_options(qat.weight_fake_quant, qat.input_fake_quant))
    quantizer = qat.weight_fake_quant
    was_training = quantizer.training
    with no_grad():
        quantizer.eval()
        quantizer(qat.weight)  # a weight quantizer re-reads the current weight's range
        quantizer.train(was_training)
    layer.set_weight(qat.weight.detach().numpy(), *quantizer.qparams())
    if qat.bias is not None:
        layer.bias.copy_(qat.bias.detach())
    if not layer.dynamic:
        layer.set_input_qparams(*qat.input_fake_quant.qparams())
    return layer


def _replace_layers(module: Module, make) -> None:
    """Replace, below ``module``, every child that ``make`` maps to a new module (``make`` returns None to descend)."""
    for name, child in list(module.named_children()):
        replacement = make(child)
        if replacement is not None:
            setattr(module, name, replacement)
        else:
            _replace_layers(child, make)


def convert(model: Module, *, inplace: bool = False) -> Module:
    """``model`` (or a copy) with every QAT layer replaced by its integer layer.

    >>> import dslearn as ds
    >>> from dslearn.quantization.qat import prepare_qat
    >>> prepared = prepare_qat(ds.nn.Linear(3, 2), QATConfig(quant_scheme="dynamic"))
    >>> convert(prepared)
    QuantizedLinear(in_features=3, out_features=2, weight=int8 symmetric per channel, input=uint8 dynamic)
    """
    if not is_prepared(model):
        raise ValueError(f"convert: the {type(model).__name__} holds no QAT layers; prepare and train (or calibrate) "
                         "it first, or call quantize_model")
    if isinstance(model, (QATLinear, QATConv2d)):
        return integer_layer(model)
    model = model if inplace else copy.deepcopy(model)
    _replace_layers(model, lambda m: integer_layer(m) if isinstance(m, (QATLinear, QATConv2d)) else None)
    return model.eval()


def _check_config_matches(model: Module, config: QATConfig) -> None:
    """Refuse a config whose bits disagree with those the prepared model was trained with."""
    for layer in model.modules():
        if not isinstance(layer, (QATLinear, QATConv2d)):
            continue
        for role, quantizer, bits in (("weights", layer.weight_fake_quant, config.weight_bits),
                                      ("inputs", layer.input_fake_quant, config.activation_bits)):
            if quantizer.bits != bits:
                raise ValueError(f"quantize_model: the prepared model quantizes {role} to {quantizer.bits} bits where "
                                 f"the config says {bits}; convert it as it is (omit config) or finish the bit "
                                 "schedule first")


def quantize_model(model: Module, config: QATConfig | None = None, calibration_data: Iterable | None = None, *,
                   calibration_batches: int | None = None) -> Module:
    """The integer model for ``model``: a QAT-prepared model after training, or a float model (PTQ).

    * prepared model (``prepare_qat``): converted as trained; ``config``, if given, must agree
      with its bits; no calibration data.
    * float model: post-training quantization with ``config`` (``qat_enabled=False``):
      ``calibration_data`` (batches or (inputs, targets) pairs; ``calibration_batches`` of
      them) sets the activation ranges, unless the scheme is ``'dynamic'`` or the config
      gives a fixed range (``quant_min``/``quant_max``).

    >>> import dslearn as ds
    >>> config = QATConfig(weight_bits=8, quant_scheme="dynamic", qat_enabled=False)
    >>> quantize_model(ds.nn.Linear(4, 2), config)(ds.ones(3, 4)).shape
    (3, 2)
    """
    if is_prepared(model):
        if calibration_data is not None:
            raise ValueError("quantize_model: the model is already prepared; its ranges come from training (or "
                             "from calibrate(model, data)), so calibration_data is not used here")
        if config is not None:
            _check_config_matches(model, config.validate())
        return convert(model)
    if config is None:
        raise ValueError("quantize_model: a float model needs a config, e.g. QATConfig(weight_bits=8, "
                         "qat_enabled=False) for post-training quantization")
    config.validate()
    if config.qat_enabled:
        raise ValueError("quantize_model: config.qat_enabled is True but the model holds no QAT layers; train it "
                         "after prepare_qat(model, config) first, or set qat_enabled=False for post-training "
                         "quantization with calibration_data")
    prepared = prepare(model, config)
    needs_data = config.quant_scheme != "dynamic" and config.quant_min is None
    if needs_data and calibration_data is None:
        raise ValueError(f"quantize_model: post-training quantization with quant_scheme={config.quant_scheme!r} "
                         "needs calibration_data to measure activation ranges (or a fixed quant_min/quant_max)")
    if not needs_data and calibration_data is not None:
        raise ValueError("quantize_model: this config measures no activation ranges (dynamic scheme or fixed "
                         "quant_min/quant_max); drop calibration_data")
    if needs_data:
        calibrate(prepared, calibration_data, batches=calibration_batches)
    return convert(prepared, inplace=True)


def quantized_skeleton(model: Module, config: QATConfig) -> Module:
    """The integer model's structure for a float ``model`` and ``config``, with zero weights.

    Load a saved integer model's state dict into it (``load_state_dict``).

    >>> import dslearn as ds
    >>> skeleton = quantized_skeleton(ds.nn.Linear(5, 3), QATConfig(weight_bits=4))
    >>> {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    {'weight': (3, 3), 'weight_scale': (3,), 'bias': (3,), 'input_scale': (), 'input_zero_point': ()}
    """
    config.validate()
    options = _config_options(config)
    if isinstance(model, (Linear, Conv2d)):
        return _empty_integer_layer(model, options)
    skeleton = copy.deepcopy(model)
    _replace_layers(skeleton, lambda m: _empty_integer_layer(m, options) if type(m) in (Linear, Conv2d) else None)
    return skeleton.eval()


def saved_size(model: Module) -> int:
    """The number of bytes ``ds.save(model.state_dict(), path)`` writes.

    >>> import dslearn as ds
    >>> saved_size(ds.nn.Linear(100, 10)) > 4 * (100 * 10 + 10)
    True
    """
    buffer = io.BytesIO()
    save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
