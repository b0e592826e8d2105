"""Preparing models for QAT, the quantizer modules, calibration and the progressive bit schedule.

Oracles: torch's fake quantization on the same weights and inputs (a QAT layer is a float layer on
fake-quantized operands), the data's own min and max, and closed forms for LSQ and PACT parameters.
"""

import numpy as np
import pytest
import torch

import dslearn as ds
from dslearn.models import LeNet
from dslearn.quantization import (
    DynamicFakeQuantize,
    LearnableFakeQuantize,
    MinMaxObserver,
    PACTFakeQuantize,
    ProgressiveQuantization,
    QATConfig,
    QATConv2d,
    QATLinear,
    calibrate,
    prepare,
    prepare_qat,
    set_bits,
)


def torch_fake_quantized(values: np.ndarray, scale, zero_point, quant_min: int, quant_max: int, axis=None):
    t = torch.from_numpy(np.ascontiguousarray(values))
    if axis is None:
        return torch.fake_quantize_per_tensor_affine(t, float(scale), int(zero_point), quant_min, quant_max)
    return torch.fake_quantize_per_channel_affine(t, torch.from_numpy(np.asarray(scale, np.float32)),
                                                  torch.from_numpy(np.asarray(zero_point, np.int32)), axis,
                                                  quant_min, quant_max)


def test_prepare_qat_swaps_every_linear_and_conv_and_leaves_the_original_alone():
    model = LeNet()
    prepared = prepare_qat(model, QATConfig(weight_bits=4))
    kinds = [type(m).__name__ for m in prepared]
    assert kinds.count("QATConv2d") == 2 and kinds.count("QATLinear") == 3 and "MaxPool2d" in kinds
    assert [type(m).__name__ for m in model].count("Conv2d") == 2  # a copy was prepared
    np.testing.assert_array_equal(prepared[0].weight.detach().numpy(), model[0].weight.detach().numpy())
    assert prepared[0].weight is not model[0].weight


def test_nested_modules_are_prepared_and_inplace_reuses_the_parameters():
    inner = ds.nn.Sequential(ds.nn.Linear(3, 3), ds.nn.ReLU())
    model = ds.nn.Sequential(inner, ds.nn.Linear(3, 2))
    weight = inner[0].weight
    prepared = prepare_qat(model, QATConfig(), inplace=True)
    assert prepared is model and isinstance(model[0][0], QATLinear) and model[0][0].weight is weight


@pytest.mark.parametrize("scheme", ["symmetric", "asymmetric"])
def test_qat_linear_is_linear_of_fake_quantized_input_and_weight(scheme):
    rng = np.random.default_rng(0)
    layer = prepare_qat(ds.nn.Linear(6, 4), QATConfig(weight_bits=4, activation_bits=8, quant_scheme=scheme,
                                                      observer="minmax"))
    x = rng.standard_normal((5, 6)).astype(np.float32)
    out = layer(ds.tensor(x)).detach().numpy()
    w_scale, w_zero = layer.weight_fake_quant.qparams()
    x_scale, x_zero = layer.input_fake_quant.qparams()
    assert layer.input_fake_quant.observer.min_val.item() == x.min()  # the observer saw this batch
    w_range = (layer.weight_fake_quant.quant_min, layer.weight_fake_quant.quant_max)
    assert w_range == ((-7, 7) if scheme == "symmetric" else (-8, 7))
    weight = torch_fake_quantized(layer.weight.detach().numpy(), w_scale, w_zero, *w_range, axis=0)
    inputs = torch_fake_quantized(x, x_scale, x_zero, 0, 255)
    expected = torch.nn.functional.linear(inputs, weight, torch.from_numpy(layer.bias.detach().numpy()))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_qat_conv_matches_torch_conv_of_fake_quantized_operands_including_same_padding():
    rng = np.random.default_rng(1)
    layer = prepare_qat(ds.nn.Conv2d(2, 3, 4, padding="same"), QATConfig(weight_bits=4, observer="minmax"))
    x = rng.standard_normal((2, 2, 7, 7)).astype(np.float32)
    out = layer(ds.tensor(x)).detach().numpy()
    w_scale, w_zero = layer.weight_fake_quant.qparams()
    x_scale, x_zero = layer.input_fake_quant.qparams()
    weight = torch_fake_quantized(layer.weight.detach().numpy(), w_scale, w_zero, -7, 7, axis=0)
    inputs = torch_fake_quantized(x, x_scale, x_zero, 0, 255)
    padded = torch.nn.functional.pad(inputs, (1, 2, 1, 2))  # 'same' for a 4x4 kernel: the extra pixel goes last
    expected = torch.nn.functional.conv2d(padded, weight, torch.from_numpy(layer.bias.detach().numpy()))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_straight_through_gradients_reach_the_weights_and_the_input():
    layer = prepare_qat(ds.nn.Linear(4, 3), QATConfig(weight_bits=4))
    x = ds.randn(5, 4, requires_grad=True)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and float(layer.weight.grad.abs().sum().item()) > 0
    # The input range covers the whole batch, so no input is clamped: dL/dx = sum of weight_fq rows.
    weight_fq = layer.weight_fake_quant(layer.weight).detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), np.tile(weight_fq.sum(0), (5, 1)), rtol=1e-5)


def test_weight_quantizer_follows_the_current_weight_even_in_eval_mode():
    layer = prepare_qat(ds.nn.Linear(4, 2), QATConfig(weight_bits=8)).eval()
    with ds.no_grad():
        layer.weight.mul_(10.0)
    layer.weight_fake_quant(layer.weight)
    np.testing.assert_allclose(layer.weight_fake_quant.observer.max_val.numpy(),
                               layer.weight.detach().numpy().max(1), rtol=1e-6)


def test_activation_ranges_freeze_in_eval_mode():
    layer = prepare_qat(ds.nn.Linear(2, 2), QATConfig(observer="minmax"))
    layer(ds.tensor([[1.0, -1.0]]))
    layer.eval()
    layer(ds.tensor([[9.0, -9.0]]))
    assert layer.input_fake_quant.observer.max_val.item() == 1.0


def test_calibrate_observes_float_inputs_and_restores_the_modes():
    model = prepare(ds.nn.Sequential(ds.nn.Linear(3, 3), ds.nn.ReLU(), ds.nn.Linear(3, 1)),
                    QATConfig(qat_enabled=False, observer="minmax"))
    data = [(ds.tensor([[0.5, -2.0, 1.0]]), ds.tensor([0])), (ds.tensor([[3.0, 0.0, 0.0]]), ds.tensor([1]))]
    calibrate(model, data)
    observer = model[0].input_fake_quant.observer
    assert (observer.min_val.item(), observer.max_val.item()) == (-2.0, 3.0)
    assert model.training and all(q.fake_quant_enabled for q in [model[0].input_fake_quant,
                                                                model[2].weight_fake_quant])
    calibrate(model, data * 5, batches=1)  # only the first batch: the range does not grow
    assert observer.max_val.item() == 3.0


def test_fixed_range_config_needs_no_data():
    layer = prepare_qat(ds.nn.Linear(2, 2), QATConfig(quant_min=-2.0, quant_max=2.0)).eval()
    out = layer.input_fake_quant(ds.tensor([5.0, -0.3]))  # clipped to the fixed range, no observation
    np.testing.assert_allclose(out.numpy(), [2.0, -19 * 2.0 / 127], rtol=1e-5)  # zero point 128, scale 2 / 127


def test_percentile_config_builds_a_percentile_observer():
    layer = prepare_qat(ds.nn.Linear(2, 2), QATConfig(observer="percentile", percentile=99.0))
    assert type(layer.input_fake_quant.observer).__name__ == "PercentileObserver"
    assert layer.input_fake_quant.observer.percentile == 99.0


def test_lsq_quantizer_starts_from_the_observer_then_learns_its_scale_and_zero_point():
    layer = prepare_qat(ds.nn.Linear(4, 3), QATConfig(weight_bits=4, quant_scheme="asymmetric",
                                                      learnable_scales=True))
    assert isinstance(layer.weight_fake_quant, LearnableFakeQuantize)
    x = ds.randn(8, 4) * 3
    layer(x).sum().backward()
    quantizer = layer.input_fake_quant
    observer = MinMaxObserver(0, 255, symmetric=False)
    observer(x)
    scale, zero_point = observer.calculate_qparams()  # the starting point: the first batch's range
    assert quantizer.scale.item() == scale.item() and quantizer.zero_point.item() == zero_point.item()
    assert quantizer.scale.grad is not None and quantizer.zero_point.grad is not None
    assert layer.weight_fake_quant.scale.grad is not None
    scale_before = quantizer.scale.detach().numpy().copy()
    quantizer.set_bits(4)  # 255 levels -> 15 levels: the scale grows 17-fold, the range stays
    np.testing.assert_allclose(quantizer.scale.detach().numpy(), scale_before * 17, rtol=1e-6)


def test_pact_quantizer_initialises_alpha_from_the_first_batch_and_learns_it():
    layer = prepare_qat(ds.nn.Linear(3, 2), QATConfig(activation_bits=4, pact=True))
    assert isinstance(layer.input_fake_quant, PACTFakeQuantize)
    layer(ds.tensor([[0.0, 1.0, 2.5]])).sum().backward()
    assert layer.input_fake_quant.alpha.item() == pytest.approx(2.5)
    assert layer.input_fake_quant.alpha.grad is not None
    scale, zero_point = layer.input_fake_quant.qparams()
    assert scale == pytest.approx(2.5 / 15) and zero_point == 0


def test_dynamic_quantizer_uses_each_batchs_own_range():
    quantizer = DynamicFakeQuantize(8)
    for batch in (np.array([0.0, 1.0, 0.5], np.float32), np.array([-4.0, 4.0, 1.0], np.float32)):
        scale = (batch.max() - min(batch.min(), 0)) / 255
        zero_point = -np.rint(min(batch.min(), 0) / np.float32(scale))
        expected = torch_fake_quantized(batch, np.float32(scale), zero_point, 0, 255)
        np.testing.assert_allclose(quantizer(ds.tensor(batch)).numpy(), expected.numpy(), rtol=1e-6)


def test_progressive_schedule_lowers_the_bits_stage_by_stage():
    model = prepare_qat(LeNet(), QATConfig(weight_bits=4, activation_bits=4))
    schedule = ProgressiveQuantization(model, (8, 6, 4), epochs_per_stage=2, activations=True)
    seen = [schedule.bits] + [schedule.step() for _ in range(6)]
    assert seen == [8, 8, 6, 6, 4, 4, 4]
    assert {m.weight_fake_quant.observer.quant_max for m in model if isinstance(m, (QATLinear, QATConv2d))} == {7}
    assert {m.input_fake_quant.observer.quant_max for m in model if isinstance(m, (QATLinear, QATConv2d))} == {15}
    resumed = ProgressiveQuantization(model, (8, 6, 4), epochs_per_stage=2)
    resumed.load_state_dict(schedule.state_dict())
    assert resumed.bits == 4 and resumed.epoch == 6


def test_set_bits_recomputes_observer_scales_for_the_new_range():
    layer = prepare_qat(ds.nn.Linear(4, 2), QATConfig(weight_bits=8, observer="minmax"))
    layer(ds.tensor([[0.0, 1.0, 2.0, 3.0]]))
    set_bits(layer, activations=4)
    assert layer.input_fake_quant.scale.item() == pytest.approx(3.0 / 15)


@pytest.mark.parametrize("call, error, message", [
    (lambda: prepare_qat(LeNet(), QATConfig(qat_enabled=False)), ValueError, "post-training quantization"),
    (lambda: prepare_qat(prepare_qat(LeNet(), QATConfig()), QATConfig()), ValueError, "already holds QAT layers"),
    (lambda: prepare_qat(ds.nn.Sequential(ds.nn.ReLU()), QATConfig()), ValueError, "no Linear or Conv2d"),
    (lambda: prepare_qat(ds.nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), QATConfig()), ValueError,
     "padding_mode='reflect' is not supported"),
    (lambda: calibrate(LeNet(), [ds.ones(1, 1, 28, 28)]), ValueError, "has no quantizers"),
    (lambda: calibrate(prepare(LeNet(), QATConfig(qat_enabled=False)), []), ValueError, "produced no batches"),
    (lambda: calibrate(prepare(LeNet(), QATConfig(qat_enabled=False)), [ds.ones(1, 1, 28, 28)], batches=0),
     ValueError, "batches must be at least 1"),
    (lambda: prepare_qat(ds.nn.Linear(2, 2), QATConfig()).eval()(ds.ones(1, 2)), RuntimeError, "no range yet"),
    (lambda: prepare_qat(ds.nn.Linear(2, 2), QATConfig(learnable_scales=True)).eval()(ds.ones(1, 2)), RuntimeError,
     "not initialised"),
    (lambda: prepare_qat(ds.nn.Linear(2, 2), QATConfig(pact=True)).eval()(ds.ones(1, 2)), RuntimeError,
     "not initialised"),
    (lambda: set_bits(LeNet(), weights=4), ValueError, "holds no QAT layers"),
    (lambda: set_bits(prepare_qat(LeNet(), QATConfig()), weights=1), ValueError, "weights must be an integer"),
    (lambda: ProgressiveQuantization(prepare_qat(LeNet(), QATConfig()), ()), ValueError, "schedule is empty"),
    (lambda: ProgressiveQuantization(prepare_qat(LeNet(), QATConfig()), (4, 8)), ValueError, "never raise the bits"),
    (lambda: ProgressiveQuantization(prepare_qat(LeNet(), QATConfig()), (8, 1)), ValueError, "from 2 to 8"),
    (lambda: ProgressiveQuantization(prepare_qat(LeNet(), QATConfig()), (8, 4), epochs_per_stage=0), ValueError,
     "epochs_per_stage must be a positive int"),
])
def test_misuse_is_refused_with_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
