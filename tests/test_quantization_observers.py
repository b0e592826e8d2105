"""Observers and QATConfig: ranges and quantization parameters against torch's observers and closed forms.

Oracles: torch.ao.quantization's MinMaxObserver, PerChannelMinMaxObserver, MovingAverageMinMaxObserver
and MovingAveragePerChannelMinMaxObserver (same ranges, same formulas), np.percentile, and hand-computed
scales; QATConfig's errors are checked one invalid setting or combination at a time.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.ao import quantization as tq

import dslearn as ds
from dslearn.quantization import (
    FixedRangeObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PercentileObserver,
    QATConfig,
    integer_range,
    qparams_from_range,
)
from dslearn.quantization.config import bits_of
from dslearn.quantization.observers import representable_scale

# (our range, symmetric?, torch dtype, torch qscheme per tensor, per channel)
SCHEMES = [
    ((-7, 7), True, torch.qint8, torch.per_tensor_symmetric, torch.per_channel_symmetric),
    ((-127, 127), True, torch.qint8, torch.per_tensor_symmetric, torch.per_channel_symmetric),
    ((-8, 7), False, torch.qint8, torch.per_tensor_affine, torch.per_channel_affine),
    ((0, 15), False, torch.quint8, torch.per_tensor_affine, torch.per_channel_affine),
    ((0, 255), False, torch.quint8, torch.per_tensor_affine, torch.per_channel_affine),
]


def batches(seed: int, shape=(4, 3, 5)):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-1, 1)).astype(np.float32)
            for _ in range(4)]


def assert_same_qparams(ours, theirs):
    scale, zero_point = ours
    np.testing.assert_allclose(scale.numpy().reshape(-1), theirs[0].numpy().reshape(-1), rtol=1e-6)
    np.testing.assert_array_equal(zero_point.numpy().reshape(-1), theirs[1].numpy().reshape(-1))


@pytest.mark.parametrize("qrange, symmetric, dtype, per_tensor, _", SCHEMES)
@pytest.mark.parametrize("moving", [False, True])
@given(seed=st.integers(0, 1000))
def test_per_tensor_observers_match_torch(qrange, symmetric, dtype, per_tensor, _, moving, seed):
    if moving:
        ours = MovingAverageMinMaxObserver(*qrange, symmetric=symmetric, averaging_constant=0.3)
        theirs = tq.MovingAverageMinMaxObserver(averaging_constant=0.3, dtype=dtype, qscheme=per_tensor,
                                                quant_min=qrange[0], quant_max=qrange[1])
    else:
        ours = MinMaxObserver(*qrange, symmetric=symmetric)
        theirs = tq.MinMaxObserver(dtype=dtype, qscheme=per_tensor, quant_min=qrange[0], quant_max=qrange[1])
    for batch in batches(seed):
        ours(ds.tensor(batch))
        theirs(torch.from_numpy(batch))
    np.testing.assert_allclose(ours.min_val.numpy(), theirs.min_val.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.max_val.numpy(), theirs.max_val.numpy(), rtol=1e-6)
    assert_same_qparams(ours.calculate_qparams(), theirs.calculate_qparams())


@pytest.mark.parametrize("qrange, symmetric, dtype, _, per_channel", SCHEMES)
@pytest.mark.parametrize("moving", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_observers_match_torch(qrange, symmetric, dtype, _, per_channel, moving, axis):
    channels = (4, 3, 5)[axis]
    if moving:
        ours = MovingAverageMinMaxObserver(*qrange, symmetric=symmetric, ch_axis=axis, channels=channels,
                                           averaging_constant=0.3)
        theirs = tq.MovingAveragePerChannelMinMaxObserver(averaging_constant=0.3, ch_axis=axis, dtype=dtype,
                                                          qscheme=per_channel, quant_min=qrange[0],
                                                          quant_max=qrange[1])
    else:
        ours = MinMaxObserver(*qrange, symmetric=symmetric, ch_axis=axis, channels=channels)
        theirs = tq.PerChannelMinMaxObserver(ch_axis=axis, dtype=dtype, qscheme=per_channel, quant_min=qrange[0],
                                             quant_max=qrange[1])
    for batch in batches(7):
        ours(ds.tensor(batch))
        theirs(torch.from_numpy(batch))
    assert_same_qparams(ours.calculate_qparams(), theirs.calculate_qparams())


def test_percentile_observer_averages_each_batchs_percentiles():
    observer = PercentileObserver(0, 255, symmetric=False, percentile=99.0, averaging_constant=0.25)
    low = high = None
    for batch in batches(3):
        observer(ds.tensor(batch))
        b_low, b_high = np.percentile(batch, [1.0, 99.0])
        low = b_low if low is None else low + 0.25 * (b_low - low)
        high = b_high if high is None else high + 0.25 * (b_high - high)
    np.testing.assert_allclose([observer.min_val.item(), observer.max_val.item()], [low, high], rtol=1e-5)


def test_percentile_observer_per_channel_takes_each_channels_percentiles():
    batch = batches(4)[0]
    observer = PercentileObserver(-8, 7, symmetric=False, ch_axis=1, channels=3, percentile=90.0)
    observer(ds.tensor(batch))
    per_channel = np.moveaxis(batch, 1, 0).reshape(3, -1)
    np.testing.assert_allclose(observer.max_val.numpy(), np.percentile(per_channel, 90.0, axis=1), rtol=1e-5)


def test_percentile_range_ignores_an_outlier_that_min_max_keeps():
    values = np.concatenate([np.linspace(-1, 1, 10_000), [100.0]]).astype(np.float32)
    percentile, min_max = PercentileObserver(0, 255, percentile=99.9), MinMaxObserver(0, 255)
    percentile(ds.tensor(values))
    min_max(ds.tensor(values))
    assert min_max.max_val.item() == 100.0 and percentile.max_val.item() < 1.0


def test_fixed_range_observer_ignores_the_data():
    observer = FixedRangeObserver(0, 255, min_val=-2.0, max_val=2.0, symmetric=False)
    observer(ds.tensor([-50.0, 50.0]))
    scale, zero_point = observer.calculate_qparams()
    assert scale.item() == pytest.approx(4 / 255, rel=1e-6)
    assert zero_point.item() == -np.rint(np.float32(-2.0) / scale.numpy())  # 127: -127.49999 in float32


def test_symmetric_unsigned_range_puts_zero_at_0_for_non_negative_data_and_in_the_middle_otherwise():
    scale, zero_point = qparams_from_range(0.0, 3.0, 0, 15, symmetric=True)
    assert (scale, zero_point) == (pytest.approx(3 / 15), 0)
    scale, zero_point = qparams_from_range(-1.0, 3.0, 0, 15, symmetric=True)
    assert (scale, zero_point) == (pytest.approx(3 / 7), 8)  # 7 steps up to 15, 8 down to 0


def test_a_range_that_excludes_zero_is_widened_to_include_it():
    scale, zero_point = qparams_from_range(2.0, 4.0, 0, 255, symmetric=False)
    assert scale == pytest.approx(4 / 255) and zero_point == 0


def test_float16_scales_are_float16_numbers_kept_in_its_normal_range():
    scale = representable_scale(np.array([0.1, 1e-9, 1e6], np.float32), np.float16)
    np.testing.assert_array_equal(scale, np.array([0.1, np.finfo(np.float16).tiny, np.finfo(np.float16).max],
                                                  np.float16).astype(np.float32))


@pytest.mark.parametrize("call, error, message", [
    (lambda: MinMaxObserver(0, 255).calculate_qparams(), RuntimeError, "no data observed yet"),
    (lambda: MinMaxObserver(0, 255, ch_axis=1, channels=4)(ds.ones(2, 3)), ValueError, "expected 4 channels"),
    (lambda: MinMaxObserver(0, 255)(ds.ones(0)), ValueError, "empty tensor"),
    (lambda: PercentileObserver(0, 255)(ds.ones(0)), ValueError, "empty tensor"),
    (lambda: MinMaxObserver(5, 5), ValueError, "quant_min < quant_max"),
    (lambda: PercentileObserver(0, 255, percentile=40.0), ValueError, r"percentile must be in \(50, 100\]"),
    (lambda: MovingAverageMinMaxObserver(0, 255, averaging_constant=0.0), ValueError, "averaging_constant"),
])
def test_observer_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -- QATConfig ---------------------------------------------------------------------------------------


def test_config_keeps_the_seed_names_and_derives_integer_ranges():
    config = QATConfig(weight_bits=4, activation_bits=8, quant_scheme="symmetric")
    assert config.qat_enabled and config.quant_min is None and config.quant_max is None
    assert config.weight_range == (-7, 7) and config.activation_range == (0, 255)
    config.quant_scheme = "asymmetric"
    assert config.weight_range == (-8, 7) and not config.weight_symmetric


def test_fields_set_after_construction_are_checked_when_the_config_is_used():
    config = QATConfig()
    config.quant_min, config.quant_max = -2.0, 2.0  # as the seed does
    assert config.validate() is config
    config.quant_max = None
    with pytest.raises(ValueError, match="set quant_min and quant_max together"):
        config.validate()


@pytest.mark.parametrize("bits", [2, 3, 5, 8])
def test_integer_ranges_hold_2_to_the_bits_values(bits):
    assert integer_range(bits, signed=False, symmetric=True) == (0, 2**bits - 1)
    assert integer_range(bits, signed=True, symmetric=False) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert integer_range(bits, signed=True, symmetric=True) == (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1)
    assert bits_of(*integer_range(bits, signed=True, symmetric=True)) == bits


@pytest.mark.parametrize("settings, message", [
    ({"weight_bits": 1}, "weight_bits must be an integer from 2 to 8"),
    ({"weight_bits": 16}, "weight_bits must be an integer from 2 to 8"),
    ({"activation_bits": 4.0}, "activation_bits must be an integer from 2 to 8"),
    ({"weight_bits": True}, "weight_bits must be an integer from 2 to 8"),
    ({"quant_scheme": "ternary"}, "quant_scheme must be one of"),
    ({"observer": "histogram"}, "observer must be one of"),
    ({"percentile": 30.0}, r"percentile must be in \(50, 100\]"),
    ({"averaging_constant": 1.5}, r"averaging_constant must be in \(0, 1\]"),
    ({"quant_min": -2.0}, "set quant_min and quant_max together"),
    ({"quant_min": 0.5, "quant_max": 2.0}, "must be finite, non-empty and contain 0"),
    ({"quant_min": -1.0, "quant_max": float("inf")}, "must be finite"),
    ({"quant_min": 0.0, "quant_max": 0.0}, "non-empty"),
    ({"quant_scheme": "dynamic", "quant_min": -2.0, "quant_max": 2.0}, "cannot use the fixed range"),
    ({"pact": True, "quant_min": -2.0, "quant_max": 2.0}, "pact=True learns the activation range"),
    ({"quant_scheme": "dynamic", "learnable_scales": True}, "cannot also be learned"),
    ({"quant_scheme": "dynamic", "pact": True}, "cannot also be learned"),
    ({"qat_enabled": False, "learnable_scales": True}, "need qat_enabled=True"),
    ({"qat_enabled": False, "pact": True}, "need qat_enabled=True"),
])
def test_invalid_settings_and_combinations_are_refused_with_the_fields_named(settings, message):
    with pytest.raises(ValueError, match=message):
        QATConfig(**settings)
