"""Fake quantization (dslearn.quantization.fake_quant): forward and gradients against torch, PACT in closed form.

Oracles: torch.fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine (straight-through
gradients), torch._fake_quantize_learnable_* (LSQ gradients of the scale and zero point), and
hand-derived PACT values.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dslearn as ds
from dslearn.quantization import (
    fake_quantize_per_channel_affine,
    fake_quantize_per_tensor_affine,
    integer_range,
    pact,
)
from tests.oracle import check_against_torch


@st.composite
def integer_ranges(draw):
    bits = draw(st.integers(2, 8))
    kind = draw(st.sampled_from(["signed symmetric", "signed asymmetric", "unsigned"]))
    return integer_range(bits, signed=kind != "unsigned", symmetric=kind != "signed asymmetric")


def inputs(shape):
    return hnp.arrays(np.float32, shape, elements=st.floats(-3, 3, width=32))


@given(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5).flatmap(inputs), integer_ranges(),
       st.floats(2**-6, 1.0, width=32), st.data())
def test_per_tensor_forward_and_gradient_match_torch(x, qrange, scale, data):
    quant_min, quant_max = qrange
    zero_point = data.draw(st.integers(quant_min, quant_max))
    check_against_torch(lambda t: fake_quantize_per_tensor_affine(t, scale, zero_point, quant_min, quant_max),
                        lambda t: torch.fake_quantize_per_tensor_affine(t, scale, zero_point, quant_min, quant_max),
                        x, rtol=1e-6, atol=1e-7)


@given(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5).flatmap(inputs), integer_ranges(), st.data())
def test_per_channel_forward_and_gradient_match_torch(x, qrange, data):
    quant_min, quant_max = qrange
    axis = data.draw(st.integers(0, x.ndim - 1))
    channels = x.shape[axis]
    scale = data.draw(hnp.arrays(np.float32, channels, elements=st.floats(2**-6, 1.0, width=32)))
    zero_point = data.draw(hnp.arrays(np.int32, channels, elements=st.integers(quant_min, quant_max)))
    check_against_torch(
        lambda t: fake_quantize_per_channel_affine(t, ds.tensor(scale), ds.tensor(zero_point), axis, quant_min,
                                                   quant_max),
        lambda t: torch.fake_quantize_per_channel_affine(t, torch.from_numpy(scale), torch.from_numpy(zero_point),
                                                         axis, quant_min, quant_max),
        x, rtol=1e-6, atol=1e-7)


def test_gradient_is_zero_exactly_where_values_were_clamped():
    x = ds.tensor([-5.0, -0.4, 0.0, 0.4, 5.0], requires_grad=True)
    fake_quantize_per_tensor_affine(x, 0.25, 0, -4, 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 1.0, 1.0, 0.0])


def test_float64_input_keeps_its_dtype_and_matches_torch():
    x = np.random.default_rng(0).standard_normal((4, 5))
    ours = fake_quantize_per_tensor_affine(ds.tensor(x), 0.1, 2, 0, 15)
    theirs = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), 0.1, 2, 0, 15)
    assert ours.dtype == ds.float64  # torch rounds (q - zero_point) * scale to float32; we keep float64
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-7)


@pytest.mark.parametrize("per_channel", [False, True])
@given(x=inputs((3, 4)), qrange=integer_ranges(), factor=st.sampled_from([1.0, 0.25]), seed=st.integers(0, 99))
def test_learnable_scale_and_zero_point_gradients_match_torch_lsq(per_channel, x, qrange, factor, seed):
    quant_min, quant_max = qrange
    rng = np.random.default_rng(seed)
    channels = 4 if per_channel else 1
    scale = rng.uniform(0.05, 0.5, channels).astype(np.float32)
    # Non-negative zero points only: torch's backward turns a float zero point z into int(z + 0.5), which
    # truncates towards 0 and makes -1 into 0 (forward rounds correctly); its gradients are off there.
    zero_point = rng.integers(max(quant_min, 0), quant_max + 1, channels).astype(np.float32)
    upstream = rng.standard_normal((3, 4)).astype(np.float32)
    ours = [ds.tensor(a, requires_grad=True) for a in (x, scale, zero_point)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, scale, zero_point)]
    if per_channel:
        out = fake_quantize_per_channel_affine(*ours, 1, quant_min, quant_max, grad_factor=factor)
        expected = torch._fake_quantize_learnable_per_channel_affine(*theirs, 1, quant_min, quant_max, factor)
    else:
        out = fake_quantize_per_tensor_affine(*ours, quant_min, quant_max, grad_factor=factor)
        expected = torch._fake_quantize_learnable_per_tensor_affine(*theirs, quant_min, quant_max, factor)
    out.backward(ds.tensor(upstream))
    expected.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-7)
    for mine, torch_version in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), torch_version.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_pact_clips_to_alpha_and_quantizes_in_closed_form():
    x = ds.tensor([-1.0, 0.1, 0.5, 1.2, 3.0])
    alpha = ds.tensor(1.5, requires_grad=True)
    y = pact(x, alpha, bits=2)  # levels 0, 0.5, 1.0, 1.5
    np.testing.assert_allclose(y.detach().numpy(), [0.0, 0.0, 0.5, 1.0, 1.5])
    upstream = np.array([1.0, 2.0, 3.0, 4.0, 5.0], np.float32)
    y.backward(ds.tensor(upstream))
    assert alpha.grad.item() == pytest.approx(5.0)  # only x = 3.0 was clipped at alpha


def test_signed_pact_clips_both_sides_and_gives_alpha_both_gradients():
    x = ds.tensor([-4.0, -0.5, 0.5, 4.0], requires_grad=True)
    alpha = ds.tensor(2.0, requires_grad=True)
    y = pact(x, alpha, bits=3, signed=True)  # unsigned 0..7 around zero point 4: steps of 2/3
    np.testing.assert_allclose(y.detach().numpy(), [-2.0, -2 / 3, 2 / 3, 2.0], rtol=1e-6)
    y.backward(ds.tensor([1.0, 10.0, 100.0, 1000.0]))
    assert alpha.grad.item() == pytest.approx(1000.0 - 1.0)
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 10.0, 100.0, 0.0])


@pytest.mark.parametrize("call, error, message", [
    (lambda: fake_quantize_per_tensor_affine(ds.tensor([1, 2]), 0.1, 0, -8, 7), TypeError, "floating point"),
    (lambda: fake_quantize_per_tensor_affine(ds.ones(2), 0.1, 0, 7, 7), ValueError, "less than quant_max"),
    (lambda: fake_quantize_per_tensor_affine(ds.ones(2), 0.1, 0, -8.0, 7), TypeError, "quant_min must be an int"),
    (lambda: fake_quantize_per_tensor_affine(ds.ones(2), 0.0, 0, -8, 7), ValueError, "positive and finite"),
    (lambda: fake_quantize_per_tensor_affine(ds.ones(2), float("nan"), 0, -8, 7), ValueError, "positive and finite"),
    (lambda: fake_quantize_per_tensor_affine(ds.ones(2), 0.1, 9, -8, 7), ValueError, r"zero_point must lie in"),
    (lambda: fake_quantize_per_tensor_affine(ds.ones(2), ds.ones(2), 0, -8, 7), ValueError, "scale must hold one"),
    (lambda: fake_quantize_per_channel_affine(ds.ones(2, 3), ds.ones(2), ds.zeros(2), 1, -8, 7), ValueError,
     r"3 values \(one per channel\)"),
    (lambda: fake_quantize_per_channel_affine(ds.ones(2, 3), ds.ones(3), ds.zeros(2), 1, -8, 7), ValueError,
     "zero_point must hold 3"),
    (lambda: fake_quantize_per_channel_affine(ds.ones(2, 3), ds.ones(3), ds.zeros(3), 2, -8, 7), IndexError,
     "out of range"),
    (lambda: pact(ds.ones(2), ds.tensor(-1.0), 4), ValueError, "alpha must be one positive value"),
    (lambda: pact(ds.ones(2), ds.ones(2), 4), ValueError, "alpha must be one positive value"),
    (lambda: pact(ds.ones(2), ds.tensor(1.0), 9), ValueError, "bits must be an integer from 2 to 8"),
])
def test_invalid_arguments_raise_errors_that_name_the_op(call, error, message):
    with pytest.raises(error, match=message):
        call()
