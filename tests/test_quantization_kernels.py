"""Quantization kernels (kernels.cpu.quantized) against their NumPy references, torch and closed forms.

Oracles: kernels.reference.quantized (same signatures; int64 sums), torch's fake quantization and
float64 convolution, and hand-computed nibble layouts.
"""

import numpy as np
import pytest
import torch
from dslearn.kernels.cpu import quantized as kernels
from dslearn.kernels.reference import quantized as reference
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

RANGES = [(-7, 7), (-8, 7), (0, 15), (0, 255), (-127, 127), (-1, 1)]


@st.composite
def quantization_problems(draw, max_side=6):
    """(x, scale, zero_point, quant_min, quant_max, axis) with per-tensor or per-channel parameters."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=max_side))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(hnp.arrays(dtype, shape, elements=st.floats(-4, 4, width=32)))
    quant_min, quant_max = draw(st.sampled_from(RANGES))
    axis = draw(st.none() | st.integers(0, len(shape) - 1))
    channels = 1 if axis is None else shape[axis]
    scale = draw(hnp.arrays(np.float32, channels, elements=st.floats(2**-7, 1.0, width=32)))
    zero_point = draw(hnp.arrays(np.int32, channels, elements=st.integers(quant_min, quant_max)))
    if axis is None:
        scale, zero_point = scale[0], zero_point[0]
    return x, scale, zero_point, quant_min, quant_max, axis


@given(quantization_problems())
def test_fake_quantize_kernel_matches_reference_bit_for_bit(problem):
    out, mask = kernels.fake_quantize(*problem)
    expected_out, expected_mask = reference.fake_quantize(*problem)
    assert out.dtype == problem[0].dtype
    np.testing.assert_array_equal(out, expected_out)
    np.testing.assert_array_equal(mask, expected_mask)


@pytest.mark.parametrize("axis", [None, 1])
def test_fake_quantize_kernel_matches_torch_on_a_large_input(axis):
    # Large enough for the parallel branch (PARALLEL_MIN_ELEMENTS) and for several blocks per row.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 9000)).astype(np.float32)
    assert x.size > kernels.PARALLEL_MIN_ELEMENTS and x.shape[2] > kernels.BLOCK
    if axis is None:
        out, _ = kernels.fake_quantize(x, np.float32(0.07), 3, -8, 7)
        expected = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), 0.07, 3, -8, 7)
    else:
        scale, zero = rng.uniform(0.01, 0.2, 5).astype(np.float32), rng.integers(0, 16, 5).astype(np.int32)
        out, _ = kernels.fake_quantize(x, scale, zero, 0, 15, axis)
        expected = torch.fake_quantize_per_channel_affine(torch.from_numpy(x), torch.from_numpy(scale),
                                                          torch.from_numpy(zero), axis, 0, 15)
    np.testing.assert_array_equal(out, expected.numpy())


@given(quantization_problems())
def test_quantize_gives_the_reference_integers_and_centred_integers(problem):
    x, scale, zero_point, quant_min, quant_max, axis = problem
    np.testing.assert_array_equal(kernels.quantize_centred(*problem), reference.quantize_centred(*problem))
    np.testing.assert_array_equal(kernels.quantize(x, scale, zero_point, quant_min, quant_max, np.int16, axis),
                                  reference.quantize(x, scale, zero_point, quant_min, quant_max, np.int16, axis))


@given(quantization_problems())
def test_dequantized_integers_are_the_fake_quantized_values(problem):
    x, scale, zero_point, quant_min, quant_max, axis = problem
    q = kernels.quantize(x, scale, zero_point, quant_min, quant_max, np.int32, axis)
    fake, _ = kernels.fake_quantize(*problem)
    np.testing.assert_allclose(reference.dequantize(q, scale, zero_point, axis), fake, rtol=1e-6, atol=1e-6)


def test_pack_int4_puts_the_even_element_in_the_low_nibble():
    q = np.array([[1, -2, 3], [-8, 7, -1]], dtype=np.int8)
    # [1, -2] -> 0x1 | 0xE << 4 = 0xE1; [3] -> 0x03; [-8, 7] -> 0x78; [-1] -> 0x0F
    np.testing.assert_array_equal(kernels.pack_int4(q), [[0xE1, 0x03], [0x78, 0x0F]])


@given(hnp.arrays(np.int8, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9),
                  elements=st.integers(-8, 7)))
def test_pack_int4_round_trips_and_matches_the_reference(q):
    packed = kernels.pack_int4(q)
    assert packed.dtype == np.uint8 and packed.shape == (*q.shape[:-1], (q.shape[-1] + 1) // 2)
    np.testing.assert_array_equal(packed, reference.pack_int4(q))
    np.testing.assert_array_equal(kernels.unpack_int4(packed, q.shape[-1]), q)
    np.testing.assert_array_equal(reference.unpack_int4(packed, q.shape[-1]), q)


@given(st.integers(1, 40), st.integers(1, 70), st.integers(1, 12), st.data())
def test_quantized_linear_matches_the_int64_reference(rows, terms, outputs, data):
    xc = data.draw(hnp.arrays(np.int16, (rows, terms), elements=st.integers(-255, 255)))
    wc = data.draw(hnp.arrays(np.int16, (outputs, terms), elements=st.integers(-255, 255)))
    scale = data.draw(hnp.arrays(np.float32, outputs, elements=st.floats(2**-13, 1.0, width=32)))
    bias = data.draw(hnp.arrays(np.float32, outputs, elements=st.floats(-3, 3, width=32)))
    got = kernels.quantized_linear(xc, wc, scale, bias)
    expected = reference.quantized_linear(xc, wc, scale, bias)
    sums = np.abs(xc.astype(np.int64)) @ np.abs(wc.astype(np.int64)).T * scale + np.abs(bias)
    np.testing.assert_array_less(np.abs(got - expected), 1e-6 * sums + 1e-6)  # one float32 rounding each


def test_quantized_linear_sums_are_exact_in_int32_at_the_extremes():
    terms = kernels.MAX_TERMS
    xc = np.full((2, terms), 255, np.int16)
    wc = np.stack([np.full(terms, 255, np.int16), np.full(terms, -255, np.int16)])
    # out_scale 1 and bias 0: the float32 result is the int32 sum, rounded once to float32.
    got = kernels.quantized_linear(xc, wc, np.ones(2, np.float32), np.zeros(2, np.float32))
    assert got[0, 0] == np.float32(terms * 255 * 255) and got[1, 1] == np.float32(-terms * 255 * 255)


def test_quantized_linear_parallel_branch_matches_reference():
    rng = np.random.default_rng(1)
    xc, wc = rng.integers(-255, 256, (300, 400)).astype(np.int16), rng.integers(-7, 8, (120, 400)).astype(np.int16)
    scale, bias = np.ones(120, np.float32), np.zeros(120, np.float32)
    np.testing.assert_array_equal(kernels.quantized_linear(xc, wc, scale, bias),
                                  reference.quantized_linear(xc, wc, scale, bias))


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 2]))
    channels, outputs = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride, dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))), (draw(st.integers(1, 2)),
                                                                              draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    height = draw(st.integers(dilation[0] * (kh - 1) + 1, 9))
    width = draw(st.integers(dilation[1] * (kw - 1) + 1, 9))
    xc = draw(hnp.arrays(np.int16, (draw(st.integers(1, 3)), channels, height, width),
                         elements=st.integers(-255, 255)))
    wc = draw(hnp.arrays(np.int16, (outputs, channels // groups, kh, kw), elements=st.integers(-127, 127)))
    scale = draw(hnp.arrays(np.float32, outputs, elements=st.floats(2**-10, 1.0, width=32)))
    bias = draw(hnp.arrays(np.float32, outputs, elements=st.floats(-2, 2, width=32)))
    return xc, wc, scale, bias, stride, padding, dilation, groups


@given(conv_problems())
def test_quantized_conv2d_matches_the_reference_and_torch(problem):
    xc, wc, scale, bias, stride, padding, dilation, groups = problem
    got = kernels.quantized_conv2d(*problem)
    expected = reference.quantized_conv2d(*problem)
    top, bottom, left, right = padding
    padded = torch.nn.functional.pad(torch.from_numpy(xc.astype(np.float64)), (left, right, top, bottom))
    sums = torch.nn.functional.conv2d(padded, torch.from_numpy(wc.astype(np.float64)), stride=stride,
                                      dilation=dilation, groups=groups).numpy()
    from_torch = sums * scale[:, None, None] + bias[:, None, None]
    assert got.shape == expected.shape == from_torch.shape
    tolerance = 1e-6 * (np.abs(sums) * scale[:, None, None] + np.abs(bias)[:, None, None]) + 1e-6
    np.testing.assert_array_less(np.abs(got - expected), tolerance)
    np.testing.assert_array_less(np.abs(got - from_torch), tolerance)


def test_quantized_conv2d_parallel_branch_matches_reference():
    rng = np.random.default_rng(2)
    xc, wc = rng.integers(-255, 256, (16, 6, 14, 14)).astype(np.int16), rng.integers(-7, 8, (16, 6, 5, 5))
    scale, bias = np.ones(16, np.float32), np.zeros(16, np.float32)
    args = (xc, wc.astype(np.int16), scale, bias, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    np.testing.assert_array_equal(kernels.quantized_conv2d(*args), reference.quantized_conv2d(*args))


def test_integer_kernels_refuse_sums_that_could_overflow_int32():
    terms = kernels.MAX_TERMS + 1
    with pytest.raises(ValueError, match="could overflow an int32 sum"):
        kernels.quantized_linear(np.zeros((1, terms), np.int16), np.zeros((1, terms), np.int16), np.ones(1),
                                 np.zeros(1))
    with pytest.raises(ValueError, match="could overflow an int32 sum"):
        kernels.quantized_conv2d(np.zeros((1, terms, 1, 1), np.int16), np.zeros((1, terms, 1, 1), np.int16),
                                 np.ones(1), np.zeros(1), (1, 1), (0, 0, 0, 0), (1, 1), 1)
