"""Integer models: conversion, agreement with the fake-quantized model, saving, sizes, and quantize_model's rules.

Oracles: the fake-quantized (QAT) model the integer model was converted from (the integer model must
reproduce it within one quantization step), torch's fake quantization of the weights, ds.save/ds.load
round trips, and closed-form byte counts.
"""

import io

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from dslearn.models import LeNet
from dslearn.quantization import (
    QATConfig,
    QuantizedConv2d,
    QuantizedLinear,
    calibrate,
    convert,
    pack_int4,
    prepare,
    prepare_qat,
    quantize_model,
    quantized_skeleton,
    saved_size,
    unpack_int4,
)


def calibrated(model, config, *batches):
    prepared = prepare(model, config)
    calibrate(prepared, batches)
    return prepared.eval()


def step_of(values: np.ndarray, bits: int = 8) -> float:
    """One quantization step of ``values``' range at ``bits``: the agreement the integer model must reach."""
    return float(values.max() - values.min()) / (2**bits - 1)


@given(weight_bits=st.integers(2, 8), activation_bits=st.integers(2, 8),
       scheme=st.sampled_from(["symmetric", "asymmetric", "dynamic"]), per_channel=st.booleans(),
       seed=st.integers(0, 1000))
def test_integer_linear_matches_the_fake_quantized_linear_within_one_step(weight_bits, activation_bits, scheme,
                                                                          per_channel, seed):
    ds.manual_seed(seed)
    config = QATConfig(weight_bits=weight_bits, activation_bits=activation_bits, quant_scheme=scheme,
                       per_channel=per_channel, qat_enabled=False)
    x = ds.randn(6, 10) * 2 + 0.5
    fake = calibrated(ds.nn.Linear(10, 5), config, x)
    integer = convert(fake)
    assert isinstance(integer, QuantizedLinear)
    expected, got = fake(x).detach().numpy(), integer(x).numpy()
    assert np.abs(got - expected).max() <= step_of(expected)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)  # in fact: float rounding only


@given(geometry=st.sampled_from([dict(padding=1), dict(padding="same"), dict(stride=2), dict(dilation=2, padding=2),
                                 dict(groups=2, padding=1)]),
       weight_bits=st.sampled_from([2, 4, 8]), scheme=st.sampled_from(["symmetric", "asymmetric", "dynamic"]),
       seed=st.integers(0, 1000))
def test_integer_conv_matches_the_fake_quantized_conv_within_one_step(geometry, weight_bits, scheme, seed):
    ds.manual_seed(seed)
    config = QATConfig(weight_bits=weight_bits, quant_scheme=scheme, qat_enabled=False)
    x = ds.randn(2, 4, 9, 9)
    fake = calibrated(ds.nn.Conv2d(4, 6, 3, **geometry), config, x)
    integer = convert(fake)
    assert isinstance(integer, QuantizedConv2d)
    expected, got = fake(x).detach().numpy(), integer(x).numpy()
    assert got.shape == expected.shape and np.abs(got - expected).max() <= step_of(expected)
    single = fake(x[0]).detach().numpy()  # an unbatched (C, H, W) input (dynamic: its own range)
    assert np.abs(integer(x[0]).numpy() - single).max() <= step_of(single)


def test_integer_lenet_agrees_with_its_fake_quantized_model():
    ds.manual_seed(0)
    x = ds.randn(32, 1, 28, 28)
    fake = calibrated(LeNet(), QATConfig(weight_bits=4, activation_bits=8, qat_enabled=False), x)
    integer = convert(fake)
    expected, got = fake(x).detach().numpy(), integer(x).numpy()
    assert np.abs(got - expected).max() <= step_of(expected)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_stored_weights_are_the_integers_the_fake_quantizer_rounded_to():
    ds.manual_seed(1)
    prepared = calibrated(ds.nn.Linear(7, 3), QATConfig(weight_bits=4, qat_enabled=False), ds.randn(4, 7))
    integer = convert(prepared)
    scale, zero_point = prepared.weight_fake_quant.qparams()
    weight_fq = torch.fake_quantize_per_channel_affine(torch.from_numpy(prepared.weight.detach().numpy()),
                                                       torch.from_numpy(scale), torch.from_numpy(zero_point), 0,
                                                       -7, 7).numpy()
    assert integer.weight.dtype == ds.uint8 and integer.weight.shape == (3, 4)  # 7 nibbles per row: 4 bytes
    assert integer.weight_scale.dtype == ds.float16
    np.testing.assert_array_equal(integer.int_weight(), np.rint(weight_fq / scale[:, None]).astype(np.int8))
    np.testing.assert_allclose(integer.dequantized_weight(), weight_fq, rtol=1e-6)


def test_asymmetric_weights_keep_int8_zero_points_and_8_bit_weights_stay_int8():
    config = QATConfig(weight_bits=8, quant_scheme="asymmetric", qat_enabled=False)
    integer = quantize_model(ds.nn.Linear(5, 3), config, calibration_data=[ds.randn(4, 5)])
    state = integer.state_dict()
    assert state["weight"].dtype == ds.int8 and state["weight"].shape == (3, 5)
    assert state["weight_zero_point"].dtype == ds.int8 and state["input_zero_point"].dtype == ds.uint8


def test_dynamic_layers_quantize_each_batch_with_its_own_range():
    ds.manual_seed(2)
    config = QATConfig(weight_bits=8, quant_scheme="dynamic", qat_enabled=False)
    float_layer = ds.nn.Linear(6, 3)
    integer = quantize_model(float_layer, config)
    assert "input_scale" not in integer.state_dict()
    reference = prepare(float_layer, config).eval()
    for x in (ds.randn(4, 6) * 0.1, ds.randn(4, 6) * 10):
        expected = reference(x).detach().numpy()
        np.testing.assert_allclose(integer(x).numpy(), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("config", [QATConfig(weight_bits=4, qat_enabled=False),
                                    QATConfig(weight_bits=8, quant_scheme="asymmetric", qat_enabled=False),
                                    QATConfig(weight_bits=3, per_channel=False, quant_scheme="dynamic",
                                              qat_enabled=False)])
def test_saved_integer_model_loads_into_a_skeleton_and_computes_the_same(config, tmp_path):
    ds.manual_seed(3)
    float_model, x = LeNet(), ds.randn(8, 1, 28, 28)
    data = None if config.quant_scheme == "dynamic" else [x]
    integer = quantize_model(float_model, config, calibration_data=data)
    ds.save(integer.state_dict(), tmp_path / "lenet.safetensors")
    restored = quantized_skeleton(LeNet(), config)
    restored.load_state_dict(ds.load(tmp_path / "lenet.safetensors"))
    np.testing.assert_array_equal(restored(x).numpy(), integer(x).numpy())
    assert (tmp_path / "lenet.safetensors").stat().st_size == saved_size(integer)


def test_four_bit_lenet_file_is_at_least_seven_times_smaller_than_float32():
    float_model = LeNet()
    integer = quantize_model(float_model, QATConfig(weight_bits=4, qat_enabled=False),
                             calibration_data=[ds.randn(4, 1, 28, 28)])
    weights = sum(m.weight.numel() for m in float_model.modules() if hasattr(m, "weight"))
    packed = sum(m.weight.numel() for m in integer.modules() if isinstance(m, (QuantizedLinear, QuantizedConv2d)))
    assert packed == sum(-(-m.weight.shape[1] * np.prod(m.weight.shape[2:]) // 2) * m.weight.shape[0]
                         for m in float_model.modules() if isinstance(m, (ds.nn.Linear, ds.nn.Conv2d)))
    assert packed < weights / 2 + 100
    assert saved_size(float_model) / saved_size(integer) >= 7.0


def test_a_trained_qat_model_converts_to_the_same_predictions():
    ds.manual_seed(4)
    model = prepare_qat(ds.nn.Sequential(ds.nn.Linear(4, 8), ds.nn.ReLU(), ds.nn.Linear(8, 2)),
                        QATConfig(weight_bits=4, activation_bits=4, learnable_scales=True))
    optimizer = ds.optim.Adam(model.parameters(), lr=1e-2)
    x = ds.randn(64, 4)
    y = (x[:, 0] > 0).long()
    for _ in range(20):
        optimizer.zero_grad()
        ds.cross_entropy(model(x), y).backward()
        optimizer.step()
    integer = quantize_model(model, QATConfig(weight_bits=4, activation_bits=4, learnable_scales=True))
    model.eval()
    expected = model(x).detach().numpy()
    assert np.abs(integer(x).numpy() - expected).max() <= step_of(expected)


def test_public_int4_packing_documents_its_nibble_order():
    packed = pack_int4(ds.tensor([[1, -2, 3], [-8, 7, -1]], dtype=ds.int8))
    assert packed.tolist() == [[0xE1, 0x03], [0x78, 0x0F]]
    assert unpack_int4(packed, 3).tolist() == [[1, -2, 3], [-8, 7, -1]]


@pytest.mark.parametrize("call, error, message", [
    (lambda: quantize_model(LeNet(), QATConfig(), calibration_data=[ds.ones(1, 1, 28, 28)]), ValueError,
     "qat_enabled is True but the model holds no QAT layers"),
    (lambda: quantize_model(LeNet()), ValueError, "a float model needs a config"),
    (lambda: quantize_model(LeNet(), QATConfig(qat_enabled=False)), ValueError, "needs calibration_data"),
    (lambda: quantize_model(LeNet(), QATConfig(quant_scheme="dynamic", qat_enabled=False),
                            calibration_data=[ds.ones(1, 1, 28, 28)]), ValueError, "drop calibration_data"),
    (lambda: quantize_model(prepare_qat(LeNet(), QATConfig()), calibration_data=[ds.ones(1, 1, 28, 28)]),
     ValueError, "already prepared"),
    (lambda: quantize_model(prepare_qat(LeNet(), QATConfig(weight_bits=8)), QATConfig(weight_bits=4)), ValueError,
     "quantizes weights to 8 bits where the config says 4"),
    (lambda: convert(LeNet()), ValueError, "holds no QAT layers"),
    (lambda: convert(prepare_qat(ds.nn.Linear(2, 2), QATConfig())), RuntimeError, "no data observed yet"),
    (lambda: QuantizedLinear(3, 2)(ds.ones(2, 4)), ValueError, "has 4 features; expected 3"),
    (lambda: QuantizedLinear(3, 2)(ds.tensor([[1, 2, 3]])), TypeError, "floating point"),
    (lambda: QuantizedConv2d(3, 2, (3, 3))(ds.ones(1, 2, 5, 5)), ValueError, "has 2 channels; expected 3"),
    (lambda: QuantizedConv2d(3, 2, (3, 3))(ds.ones(5, 5)), ValueError, "expected a 3 or 4-d input"),
    (lambda: pack_int4(ds.tensor([8])), ValueError, r"values must lie in \[-8, 7\]"),
    (lambda: pack_int4(ds.tensor([0.5])), TypeError, "must be an integer tensor"),
    (lambda: pack_int4(ds.tensor(3)), ValueError, "at least one dimension"),
    (lambda: unpack_int4(ds.tensor([1], dtype=ds.int8), 2), TypeError, "expected a uint8 tensor"),
    (lambda: unpack_int4(ds.tensor([1, 2], dtype=ds.uint8), 5), ValueError, "hold 3 or 4 values, not 5"),
])
def test_misuse_is_refused_with_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_saved_size_counts_what_ds_save_writes():
    layer = ds.nn.Linear(3, 2)
    buffer = io.BytesIO()
    ds.save(layer.state_dict(), buffer)
    assert saved_size(layer) == len(buffer.getvalue())
