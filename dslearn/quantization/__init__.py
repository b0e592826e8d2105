"""``dslearn.quantization``: fake quantization, QAT, integer models with int8 / packed int4 weights, distillation.

The workflow (``ds.quantization``):

>>> import dslearn as ds
>>> from dslearn.quantization import QATConfig, prepare_qat, quantize_model
>>> config = QATConfig(weight_bits=4, activation_bits=8, quant_scheme="symmetric")
>>> model = prepare_qat(ds.nn.Sequential(ds.nn.Linear(8, 4), ds.nn.ReLU(), ds.nn.Linear(4, 2)), config)
>>> _ = model(ds.randn(16, 8))          # ...train as usual (fit, an optimizer on model.parameters())
>>> integer_model = quantize_model(model)
>>> integer_model[0]
QuantizedLinear(in_features=8, out_features=4, weight=int4 packed symmetric per channel, input=uint8)

Parts, one job each: ``fake_quant`` (the differentiable rounding), ``observers`` (ranges),
``quantizers`` (modules that combine them), ``config``, ``qat`` (prepare and calibrate),
``integer`` (integer layers), ``convert`` (quantize_model), ``packing`` (int4 nibbles),
``progressive`` (8 -> 6 -> 4 bit schedules) and ``distillation`` (teacher-student loss).

May import: everything under dslearn.quantization.
"""

from dslearn.quantization.config import QATConfig, integer_range
from dslearn.quantization.convert import convert, quantize_model, quantized_skeleton, saved_size
from dslearn.quantization.distillation import distill, distillation_loss
from dslearn.quantization.fake_quant import fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine, pact
from dslearn.quantization.integer import QuantizedConv2d, QuantizedLinear
from dslearn.quantization.observers import (
    FixedRangeObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    Observer,
    PercentileObserver,
    qparams_from_range,
)
from dslearn.quantization.packing import pack_int4, unpack_int4
from dslearn.quantization.progressive import ProgressiveQuantization, set_bits
from dslearn.quantization.qat import QATConv2d, QATLinear, calibrate, prepare, prepare_qat
from dslearn.quantization.quantizers import (
    DynamicFakeQuantize,
    FakeQuantize,
    LearnableFakeQuantize,
    PACTFakeQuantize,
)
