"""conv2d and 2-D pooling: forward, gradients and gradients of gradients against torch; kernels against
the NumPy references; half precision; every error path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dslearn.kernels.cpu import conv as conv_kernels
from dslearn.kernels.cpu import pool as pool_kernels
from dslearn.kernels.reference import conv as reference
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import dslearn as ds
from dslearn.ops.conv import adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, conv2d, max_pool2d
from tests.oracle import check_against_torch, check_gradcheck

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels


def _normal(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# -- conv2d -----------------------------------------------------------------------------------------


@st.composite
def conv_cases(draw, max_side=4):
    """Random conv2d settings with an input large enough for the (dilated) kernel."""
    groups = draw(st.integers(1, 3))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)),
                             st.sampled_from(["valid", "same"])))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = {"valid": (0, 0), "same": (0, 0)}.get(padding, padding) if not isinstance(padding, int) else (padding,) * 2
    smallest = [max(1, dilation[d] * (kernel[d] - 1) + 1 - 2 * pads[d]) for d in (0, 1)]
    spatial = (draw(st.integers(smallest[0], smallest[0] + 4)), draw(st.integers(smallest[1], smallest[1] + 4)))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = _normal(rng, (draw(st.integers(1, 3)), in_channels, *spatial))
    weight = _normal(rng, (out_channels, in_channels // groups, *kernel))
    bias = _normal(rng, (out_channels,)) if draw(st.booleans()) else None
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return x, weight, bias, options


def _conv_args(x, weight, bias):
    return (x, weight) if bias is None else (x, weight, bias)


@given(conv_cases())
def test_conv2d_forward_and_gradients_match_torch(case):
    x, weight, bias, options = case
    check_against_torch(lambda *t: conv2d(*t, **options), lambda *t: F.conv2d(*t, **options),
                        *_conv_args(x, weight, bias))


@given(conv_cases())
@settings(max_examples=10)
def test_conv2d_gradients_of_gradients_match_torch(case):
    x, weight, bias, options = case
    results = []
    for lib, grad_fn, conv in ((ds, ds.autograd.grad, conv2d), (torch, torch.autograd.grad, F.conv2d)):
        tensors = [lib.tensor(a, requires_grad=True) for a in _conv_args(x, weight, bias)]
        y = conv(*tensors, **options)
        grad_x, grad_w = grad_fn((y * y).sum(), tensors[:2], create_graph=True)
        second = (grad_x * grad_x).sum() + (grad_w * grad_w * grad_w).sum()
        results.append([g.detach().numpy() for g in grad_fn(second, tensors)])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_conv2d_float32_lenet_shapes_match_torch():
    rng = np.random.default_rng(0)
    x, weight, bias = _normal(rng, (4, 6, 12, 12), np.float32), _normal(rng, (16, 6, 5, 5), np.float32), \
        _normal(rng, (16,), np.float32)
    check_against_torch(conv2d, F.conv2d, x, weight, bias, rtol=1e-4, atol=1e-4)


def test_conv2d_accepts_unbatched_input():
    rng = np.random.default_rng(1)
    check_against_torch(lambda x, w: conv2d(x, w, padding=1), lambda x, w: F.conv2d(x, w, padding=1),
                        _normal(rng, (3, 5, 6)), _normal(rng, (2, 3, 3, 3)))


@pytest.mark.parametrize("dtype", [ds.float16, ds.bfloat16])
def test_conv2d_half_precision_is_float32_math_rounded(dtype):
    rng = np.random.default_rng(2)
    x, weight = _normal(rng, (2, 3, 7, 7), np.float32), _normal(rng, (4, 3, 3, 3), np.float32)
    out = conv2d(ds.tensor(x).to(dtype), ds.tensor(weight).to(dtype), padding=1)
    assert out.dtype == dtype
    rounded = [ds.tensor(a).to(dtype).float().numpy() for a in (x, weight)]
    expected = F.conv2d(torch.tensor(rounded[0]), torch.tensor(rounded[1]), padding=1).numpy()
    np.testing.assert_allclose(out.float().numpy(), expected, rtol=2e-2, atol=5e-2)


def test_conv2d_passes_gradcheck():
    rng = np.random.default_rng(3)
    check_gradcheck(lambda x, w, b: conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
                    _normal(rng, (2, 4, 5, 6)), _normal(rng, (4, 2, 2, 3)), _normal(rng, (4,)))


# -- pooling ----------------------------------------------------------------------------------------


@st.composite
def pool_cases(draw, dilated: bool):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    smallest = [max(1, dilation[d] * (kernel[d] - 1) + 1 - 2 * padding[d]) for d in (0, 1)]
    spatial = (draw(st.integers(smallest[0], smallest[0] + 6)), draw(st.integers(smallest[1], smallest[1] + 6)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *spatial)
    x = _normal(np.random.default_rng(draw(st.integers(0, 2**16))), shape)
    ceil_mode = draw(st.booleans())
    for d in (0, 1):  # every window must see a pixel: dilated taps can straddle a tiny input (an error, tested below)
        out_size = reference.pool_out_size(spatial[d], kernel[d], (stride or kernel)[d], padding[d], dilation[d],
                                           ceil_mode)
        assume(min(pool_kernels.pool_windows(spatial[d], kernel[d], (stride or kernel)[d], padding[d], dilation[d],
                                             out_size)[1]) > 0)
    return x, kernel, stride, padding, dilation, ceil_mode


@given(pool_cases(dilated=True))
def test_max_pool2d_values_indices_and_gradients_match_torch(case):
    x, kernel, stride, padding, dilation, ceil_mode = case
    args = (kernel, stride, padding, dilation, ceil_mode)
    check_against_torch(lambda t: max_pool2d(t, *args), lambda t: F.max_pool2d(t, *args), x)
    check_against_torch(lambda t: max_pool2d(t, *args, return_indices=True)[0] ** 2,
                        lambda t: F.max_pool2d(t, *args, return_indices=True)[0] ** 2, x)
    ours = max_pool2d(ds.tensor(x), *args, return_indices=True)[1]
    theirs = F.max_pool2d(torch.tensor(x), *args, return_indices=True)[1]
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


@given(pool_cases(dilated=False), st.booleans(), st.sampled_from([None, 1, 3]))
def test_avg_pool2d_forward_and_gradients_match_torch(case, count_include_pad, divisor_override):
    x, kernel, stride, padding, _, ceil_mode = case
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    check_against_torch(lambda t: avg_pool2d(t, *args), lambda t: F.avg_pool2d(t, *args), x)


@st.composite
def adaptive_cases(draw):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    size = st.one_of(st.none(), st.integers(1, 10))
    output_size = draw(st.one_of(st.integers(1, 10), st.tuples(size, size)))
    return _normal(np.random.default_rng(draw(st.integers(0, 2**16))), shape), output_size


@given(adaptive_cases())
def test_adaptive_pools_match_torch(case):
    x, output_size = case
    check_against_torch(lambda t: adaptive_avg_pool2d(t, output_size),
                        lambda t: F.adaptive_avg_pool2d(t, output_size), x)
    check_against_torch(lambda t: adaptive_max_pool2d(t, output_size),
                        lambda t: F.adaptive_max_pool2d(t, output_size), x)
    ours = adaptive_max_pool2d(ds.tensor(x), output_size, return_indices=True)[1]
    np.testing.assert_array_equal(ours.numpy(), F.adaptive_max_pool2d(torch.tensor(x), output_size, True)[1].numpy())


POOLS = {
    "max_pool2d": (lambda t: max_pool2d(t, 3, 2, 1, 2, True), lambda t: F.max_pool2d(t, 3, 2, 1, 2, True)),
    "max_pool2d indices": (lambda t: max_pool2d(t, 2, return_indices=True)[0],
                           lambda t: F.max_pool2d(t, 2, return_indices=True)[0]),
    "avg_pool2d": (lambda t: avg_pool2d(t, 3, 2, 1, True, False), lambda t: F.avg_pool2d(t, 3, 2, 1, True, False)),
    "adaptive_avg_pool2d": (lambda t: adaptive_avg_pool2d(t, (3, None)), lambda t: F.adaptive_avg_pool2d(t, (3, None))),
    "adaptive_max_pool2d": (lambda t: adaptive_max_pool2d(t, (4, 3)), lambda t: F.adaptive_max_pool2d(t, (4, 3))),
}


@pytest.mark.parametrize("name", POOLS)
def test_pool_gradients_of_gradients_match_torch(name):
    ours_fn, theirs_fn = POOLS[name]
    x = _normal(np.random.default_rng(4), (2, 3, 9, 8))
    results = []
    for lib, pool in ((ds, ours_fn), (torch, theirs_fn)):
        t = lib.tensor(x, requires_grad=True)
        (grad,) = lib.autograd.grad((pool(t) ** 3).sum(), [t], create_graph=True)
        results.append(lib.autograd.grad((grad * grad).sum(), [t])[0].detach().numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", POOLS)
def test_pools_pass_gradcheck(name):
    check_gradcheck(POOLS[name][0], _normal(np.random.default_rng(5), (1, 2, 7, 6)))


@pytest.mark.parametrize("name", POOLS)
def test_pools_accept_unbatched_input(name):
    check_against_torch(*POOLS[name], _normal(np.random.default_rng(6), (3, 9, 8)))


@pytest.mark.parametrize("dtype", [ds.float16, ds.bfloat16])
def test_pools_in_half_precision_match_float32_rounded(dtype):
    x = ds.randn(2, 3, 8, 8).to(dtype)
    exact = x.float()
    assert max_pool2d(x, 2).dtype == dtype
    np.testing.assert_array_equal(max_pool2d(x, 2).float().numpy(), max_pool2d(exact, 2).numpy())
    np.testing.assert_allclose(avg_pool2d(x, 2).float().numpy(), avg_pool2d(exact, 2).numpy(), rtol=1e-2, atol=1e-2)


# -- kernels against the NumPy references -------------------------------------------------------------


@st.composite
def kernel_geometry(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))), (draw(st.integers(1, 2)),
                                                                            draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))  # asymmetric, per side
    spatial = [draw(st.integers(max(1, dilation[d] * (kernel[d] - 1) + 1 - sum(padding[d])), 8)) for d in (0, 1)]
    groups = draw(st.integers(1, 2))
    shape = (draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), *spatial)
    return shape, kernel, stride, padding, dilation, groups, draw(st.sampled_from([np.float32, np.float64]))


@given(kernel_geometry())
def test_conv_kernels_match_reference(case):
    shape, kernel, stride, padding, dilation, groups, dtype = case
    rng = np.random.default_rng(7)
    x, weight, bias = _normal(rng, shape, dtype), _normal(rng, (2 * groups, shape[1] // groups, *kernel), dtype), \
        _normal(rng, (2 * groups,), dtype)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    geometry = (stride, padding, dilation, groups)
    out = conv_kernels.conv2d_forward(x, weight, bias, *geometry)
    np.testing.assert_allclose(out, reference.conv2d(x, weight, bias, *geometry), **tol)
    grad = _normal(rng, out.shape, dtype)
    np.testing.assert_allclose(conv_kernels.conv2d_input_grad(grad, weight, shape, *geometry),
                               reference.conv2d_input_grad(grad, weight, shape, *geometry), **tol)
    np.testing.assert_allclose(conv_kernels.conv2d_weight_grad(x, grad, kernel, *geometry),
                               reference.conv2d_weight_grad(x, grad, kernel, *geometry), **tol)
    cols = conv_kernels.im2col(x, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(cols, reference.im2col(x, kernel, stride, padding, dilation))
    np.testing.assert_allclose(conv_kernels.col2im(cols, shape, kernel, out.shape[2:], stride, padding, dilation),
                               reference.col2im(cols, shape, kernel, out.shape[2:], stride, padding, dilation), **tol)


@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_conv_kernels_agree_when_the_batch_is_split_into_chunks(monkeypatch, stride):
    rng = np.random.default_rng(10)
    x, weight = _normal(rng, (5, 4, 9, 8)), _normal(rng, (6, 2, 3, 2))
    geometry = (stride, ((1, 0), (2, 1)), (2, 1), 2)
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", 1)  # one image per chunk
    assert len(conv_kernels.image_chunks(5, 100)) == 5
    out = conv_kernels.conv2d_forward(x, weight, None, *geometry)
    grad = _normal(rng, out.shape)
    np.testing.assert_allclose(out, reference.conv2d(x, weight, None, *geometry), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_kernels.conv2d_input_grad(grad, weight, x.shape, *geometry),
                               reference.conv2d_input_grad(grad, weight, x.shape, *geometry), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_kernels.conv2d_weight_grad(x, grad, (3, 2), *geometry),
                               reference.conv2d_weight_grad(x, grad, (3, 2), *geometry), rtol=1e-12, atol=1e-12)


@given(pool_cases(dilated=True), st.sampled_from([np.float32, np.float64]))
def test_pool_kernels_match_reference(case, dtype):
    x, kernel, stride, padding, dilation, ceil_mode = case
    x = x.astype(dtype)
    stride = stride or kernel
    out_hw = [reference.pool_out_size(x.shape[2 + d], kernel[d], stride[d], padding[d], dilation[d], ceil_mode)
              for d in (0, 1)]
    rows, cols = (pool_kernels.pool_windows(x.shape[2 + d], kernel[d], stride[d], padding[d], dilation[d], out_hw[d])
                  for d in (0, 1))
    values, indices = pool_kernels.max_pool(x, rows, cols, dilation)
    expected_values, expected_indices = reference.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(indices, expected_indices)
    grad = _normal(np.random.default_rng(8), values.shape, dtype)
    np.testing.assert_allclose(pool_kernels.scatter_to_windows(grad, indices, x.shape[2:]),
                               reference.max_pool2d_backward(grad, indices, x.shape[2:]), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(pool_kernels.gather_from_windows(x, indices), expected_values)


@given(pool_cases(dilated=False), st.booleans())
def test_avg_pool_kernels_match_reference_and_are_adjoint(case, count_include_pad):
    x, kernel, stride, padding, _, ceil_mode = case
    stride = stride or kernel
    out_hw = [reference.pool_out_size(x.shape[2 + d], kernel[d], stride[d], padding[d], 1, ceil_mode) for d in (0, 1)]
    rows, cols = (pool_kernels.pool_windows(x.shape[2 + d], kernel[d], stride[d], padding[d], 1, out_hw[d])
                  for d in (0, 1))
    divisor = pool_kernels.avg_pool_divisor(x.shape[2:], kernel, stride, padding, out_hw, count_include_pad)
    out = pool_kernels.avg_pool(x, rows, cols, divisor)
    expected = reference.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, None)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    grad = _normal(np.random.default_rng(9), out.shape)
    back = pool_kernels.avg_pool_backward(grad, rows, cols, divisor, x.shape[2:])
    np.testing.assert_allclose(np.vdot(out, grad), np.vdot(x, back), rtol=1e-10)  # <Ax, g> == <x, A^T g>


@given(adaptive_cases())
def test_adaptive_windows_match_reference(case):
    x, output_size = case
    out_hw = [x.shape[2 + d] if s is None else s for d, s in enumerate(np.broadcast_to(
        np.array(output_size, dtype=object), (2,)))]
    rows, cols = (pool_kernels.adaptive_windows(x.shape[2 + d], out_hw[d]) for d in (0, 1))
    np.testing.assert_allclose(pool_kernels.avg_pool(x, rows, cols, np.outer(rows[1], cols[1]).astype(float)),
                               reference.adaptive_avg_pool2d(x, out_hw), rtol=1e-12)
    values, indices = pool_kernels.max_pool(x, rows, cols, (1, 1))
    expected_values, expected_indices = reference.adaptive_max_pool2d(x, out_hw)
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(indices, expected_indices)


def test_max_pool_propagates_nan_like_torch():
    x = np.array([[[[1.0, np.nan], [3.0, 2.0]]]])
    ours = max_pool2d(ds.tensor(x), 2, return_indices=True)
    theirs = F.max_pool2d(torch.tensor(x), 2, return_indices=True)
    assert np.isnan(ours[0].item()) and ours[1].item() == theirs[1].item() == 1


# -- errors -----------------------------------------------------------------------------------------


def _x(*shape, dtype=ds.float32):
    return ds.zeros(*shape, dtype=dtype)


ERRORS = [
    (lambda: conv2d(_x(2, 3, 8, 8, 1), _x(4, 3, 3, 3)), ValueError,
     r"conv2d: expected a 3-D \(C, H, W\) or 4-D.*\(2, 3, 8, 8, 1\)"),
    (lambda: conv2d(_x(1, 3, 8, 8), _x(4, 3, 3)), ValueError, r"conv2d: weight must be 4-D.*\(4, 3, 3\)"),
    (lambda: conv2d(_x(1, 4, 8, 8), _x(6, 3, 3, 3), groups=2), ValueError,
     r"conv2d: input of shape \(1, 4, 8, 8\) has 4 channels; weight of shape \(6, 3, 3, 3\) with groups=2 expects 6"),
    (lambda: conv2d(_x(1, 4, 8, 8), _x(5, 2, 3, 3), groups=2), ValueError,
     r"conv2d: out_channels 5 .*\(5, 2, 3, 3\).* not divisible by groups=2"),
    (lambda: conv2d(_x(1, 1, 2, 2), _x(1, 1, 5, 5), padding=1), ValueError,
     r"conv2d: kernel of size \(5, 5\).*larger than the padded input \(4, 4\).*\(1, 1, 2, 2\)"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), dilation=4), ValueError, r"conv2d: kernel .*spanning \(9, 9\)"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), padding="full"), ValueError,
     r"conv2d: padding must be 'valid', 'same', an int or a pair of ints, got 'full'"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), stride=2, padding="same"), ValueError,
     r"conv2d: padding='same' needs stride 1, got stride \(2, 2\)"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), stride=(-1, 1)), ValueError,
     r"conv2d: stride must be at least 1, got \(-1, 1\)"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), padding=-1), ValueError, r"conv2d: padding must be at least 0"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), dilation=0), ValueError, r"conv2d: dilation must be at least 1"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), stride=(1, 1, 1)), TypeError,
     r"conv2d: stride must be an int or a pair of ints, got \(1, 1, 1\)"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3), groups=0), ValueError, r"conv2d: groups must be a positive int"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(1, 1, 3, 3, dtype=ds.float64)), TypeError,
     r"conv2d: input, weight and bias must share a dtype, got shape \(1, 1, 8, 8\), float32.*float64"),
    (lambda: conv2d(_x(1, 1, 8, 8), _x(2, 1, 3, 3), _x(3)), ValueError, r"conv2d: bias must have shape \(2,\)"),
    (lambda: conv2d(ds.zeros(1, 1, 8, 8, dtype=ds.int64), ds.zeros(1, 1, 3, 3, dtype=ds.int64)), TypeError,
     r"conv2d: expected a floating point tensor, got shape \(1, 1, 8, 8\), int64"),
    (lambda: max_pool2d(_x(8, 8), 2), ValueError, r"max_pool2d: expected a 3-D .* got shape \(8, 8\)"),
    (lambda: max_pool2d(_x(1, 1, 8, 8), 3, padding=2), ValueError,
     r"max_pool2d: padding \(2, 2\) should be at most half of kernel_size \(3, 3\)"),
    (lambda: max_pool2d(_x(1, 1, 2, 2), 3), ValueError,
     r"max_pool2d: output size \(0, 0\) is too small for input shape \(1, 1, 2, 2\)"),
    (lambda: max_pool2d(_x(1, 1, 8, 8), 2, stride=0), ValueError, r"max_pool2d: stride must be at least 1"),
    (lambda: max_pool2d(_x(1, 1, 1, 5), 2, padding=(1, 0), dilation=2), ValueError,
     r"max_pool2d: with kernel_size \(2, 2\), padding \(1, 0\) and dilation \(2, 2\), some windows cover only padding"),
    (lambda: avg_pool2d(_x(1, 1, 8, 8), (2, 2, 2)), TypeError, r"avg_pool2d: kernel_size must be an int or a pair"),
    (lambda: avg_pool2d(_x(1, 1, 8, 8), 2, divisor_override=0), ValueError,
     r"avg_pool2d: divisor_override must be a non-zero int"),
    (lambda: adaptive_avg_pool2d(_x(1, 1, 8, 8), (2, 2, 2)), TypeError,
     r"adaptive_avg_pool2d: output_size must be an int, None or a pair"),
    (lambda: adaptive_max_pool2d(_x(1, 1, 8, 8), -1), ValueError,
     r"adaptive_max_pool2d: output_size must be at least 0, got \(-1, -1\)"),
    (lambda: adaptive_max_pool2d(_x(1, 1, 0, 8), 2), ValueError, r"adaptive_max_pool2d: expected .*non-empty"),
]


@pytest.mark.parametrize("call, error, message", ERRORS)
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
