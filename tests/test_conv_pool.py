"""conv2d and 2-D pooling: forward, gradients and gradients of gradients against torch; kernels (direct and
im2col) against the NumPy references and each other; half precision; every error path."""

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dslearn.kernels.cpu import conv as conv_kernels
from dslearn.kernels.cpu import conv_direct
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
def test_gemm_kernels_agree_when_the_batch_is_split_into_chunks(monkeypatch, stride):
    rng = np.random.default_rng(10)
    x, weight = _normal(rng, (5, 4, 9, 8)), _normal(rng, (6, 2, 3, 2))
    geometry = (stride, ((1, 0), (2, 1)), (2, 1), 2)
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", 1)  # one image per chunk
    assert len(conv_kernels.image_chunks(5, 100)) == 5
    out = conv_kernels.gemm_forward(x, weight, None, *geometry)
    grad = _normal(rng, out.shape)
    np.testing.assert_allclose(out, reference.conv2d(x, weight, None, *geometry), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_kernels.gemm_input_grad(grad, weight, x.shape, *geometry),
                               reference.conv2d_input_grad(grad, weight, x.shape, *geometry), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_kernels.gemm_weight_grad(x, grad, (3, 2), *geometry),
                               reference.conv2d_weight_grad(x, grad, (3, 2), *geometry), rtol=1e-12, atol=1e-12)


# -- the direct kernels (stride 1) ----------------------------------------------------------------------


@contextlib.contextmanager
def _direct_settings(block_length: int, parallel_min_macs: int):
    """Run the direct kernels with another image block length and parallel threshold (both read per call)."""
    saved = conv_direct.BLOCK_LENGTH, conv_direct.PARALLEL_MIN_MACS
    conv_direct.BLOCK_LENGTH, conv_direct.PARALLEL_MIN_MACS = block_length, parallel_min_macs
    try:
        yield
    finally:
        conv_direct.BLOCK_LENGTH, conv_direct.PARALLEL_MIN_MACS = saved


@st.composite
def direct_cases(draw):
    """Stride-1 geometries that exercise every remainder of the kernels' blocking.

    Channel counts 1 to 5 per group leave 0 or 1 channel after pairs and 0 to 3 after fours;
    kernels up to 3x4 leave 0 to 3 taps after fours; padding may exceed the kernel's reach.
    """
    groups = draw(st.integers(1, 3))
    group_inputs, group_outputs = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(2))
    spatial = [draw(st.integers(max(1, dilation[d] * (kernel[d] - 1) + 1 - sum(padding[d])), 9)) for d in (0, 1)]
    shape = (draw(st.integers(1, 5)), groups * group_inputs, *spatial)
    weight_shape = (groups * group_outputs, group_inputs, *kernel)
    settings_ = draw(st.sampled_from([(512, 1 << 22), (1, 1 << 22), (100, 1 << 22), (10**6, 1 << 22), (40, 0)]))
    return shape, weight_shape, padding, dilation, groups, draw(st.sampled_from([np.float32, np.float64])), settings_


@given(direct_cases())
def test_direct_kernels_match_reference_and_gemm(case):
    shape, weight_shape, padding, dilation, groups, dtype, (block_length, parallel_min_macs) = case
    rng = np.random.default_rng(11)
    x, weight = _normal(rng, shape, dtype), _normal(rng, weight_shape, dtype)
    bias = _normal(rng, weight_shape[:1], dtype)
    geometry = ((1, 1), padding, dilation, groups)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
    with _direct_settings(block_length, parallel_min_macs):
        out = conv_direct.forward(x, weight, bias, padding, dilation, groups)
        grad = _normal(rng, out.shape, dtype)
        dx = conv_direct.input_grad(grad, weight, shape[2:], padding, dilation, groups)
        dw = conv_direct.weight_grad(x, grad, weight_shape[2:], padding, dilation, groups)
    assert (out.dtype, dx.dtype, dw.dtype) == (dtype, dtype, dtype)
    for ours, expected, gemm in (
            (out, reference.conv2d(x, weight, bias, *geometry), conv_kernels.gemm_forward(x, weight, bias, *geometry)),
            (dx, reference.conv2d_input_grad(grad, weight, shape, *geometry),
             conv_kernels.gemm_input_grad(grad, weight, shape, *geometry)),
            (dw, reference.conv2d_weight_grad(x, grad, weight_shape[2:], *geometry),
             conv_kernels.gemm_weight_grad(x, grad, weight_shape[2:], *geometry))):
        np.testing.assert_allclose(ours, expected, **tol)
        np.testing.assert_allclose(ours, gemm, **tol)


@pytest.mark.parametrize("images", [1, 2, 7])
def test_direct_kernels_split_the_batch_between_threads_exactly(images):
    rng = np.random.default_rng(12)
    x, weight = _normal(rng, (images, 3, 11, 13), np.float32), _normal(rng, (5, 3, 5, 3), np.float32)
    padding, bias = ((2, 1), (0, 2)), np.zeros(5, np.float32)
    serial = []
    for parallel_min_macs in (1 << 60, 0):
        with _direct_settings(64, parallel_min_macs):
            out = conv_direct.forward(x, weight, bias, padding, (1, 1), 1)
            grad = np.ones_like(out)
            results = [out, conv_direct.input_grad(grad, weight, x.shape[2:], padding, (1, 1), 1),
                       conv_direct.weight_grad(x, grad, (5, 3), padding, (1, 1), 1)]
        if serial:
            for threaded, alone in zip(results, serial):
                np.testing.assert_allclose(threaded, alone, rtol=1e-5, atol=1e-5)
        serial = results
    np.testing.assert_allclose(serial[0], reference.conv2d(x, weight, bias, (1, 1), padding, (1, 1), 1), rtol=1e-4,
                               atol=1e-4)


def test_direct_kernels_keep_inf_in_its_own_image():
    """Images laid end to end in one block must not leak one image's inf into their neighbours' results."""
    rng = np.random.default_rng(13)
    x, weight, grad = _normal(rng, (4, 2, 5, 5)), _normal(rng, (3, 2, 3, 3)), _normal(rng, (4, 3, 5, 5))
    x[1, 0, 2, 2] = grad[1, 0, 2, 2] = np.inf
    padding, geometry, others = ((1, 1), (1, 1)), ((1, 1), ((1, 1), (1, 1)), (1, 1), 1), [0, 2, 3]
    with _direct_settings(10**6, 1 << 60):  # all four images in one block
        out = conv_direct.forward(x, weight, np.zeros(3), padding, (1, 1), 1)
        dx = conv_direct.input_grad(grad, weight, (5, 5), padding, (1, 1), 1)
    assert np.isinf(out[1]).any() and np.isinf(dx[1]).any()
    np.testing.assert_allclose(out[others], reference.conv2d(x[others], weight, None, *geometry), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(dx[others], reference.conv2d_input_grad(grad[others], weight, (3, 2, 5, 5), *geometry),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("input_shape, weight_shape, stride, groups, direct", [
    ((64, 1, 28, 28), (6, 1, 5, 5), (1, 1), 1, True),  # LeNet's first conv
    ((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), 1, True),  # LeNet's second
    ((8, 64, 7, 7), (16, 64, 3, 3), (1, 1), 1, True),  # 16 outputs is the boundary...
    ((8, 64, 7, 7), (17, 64, 3, 3), (1, 1), 1, False),  # ... with a long reduction on a small image
    ((8, 3, 7, 7), (64, 3, 3, 3), (1, 1), 1, True),  # reduction 27 is the boundary
    ((8, 4, 7, 7), (64, 4, 3, 3), (1, 1), 1, False),  # reduction 36
    ((8, 32, 14, 14), (64, 32, 3, 3), (1, 1), 1, True),  # a 14x14 image is large enough...
    ((8, 32, 13, 14), (64, 32, 3, 3), (1, 1), 1, False),  # ... a 13x14 one is not
    ((8, 64, 7, 7), (64, 1, 3, 3), (1, 1), 64, True),  # depthwise: one output per group
    ((8, 1, 28, 28), (6, 1, 5, 5), (2, 2), 1, False),  # stride 2: only im2col handles it
])
def test_direct_path_is_chosen_by_the_measured_rule(input_shape, weight_shape, stride, groups, direct):
    assert conv_kernels.direct_pays_off(input_shape, weight_shape, stride, groups) is direct


@pytest.mark.parametrize("input_shape, weight_shape", [
    ((3, 6, 9, 9), (16, 6, 3, 3)), ((3, 8, 9, 9), (17, 8, 3, 3)),
    ((2, 4, 14, 15), (40, 4, 3, 3)), ((2, 4, 13, 14), (40, 4, 3, 3)),
])
def test_conv_kernels_agree_with_reference_on_both_sides_of_the_rule(input_shape, weight_shape):
    rng = np.random.default_rng(14)
    x, weight = _normal(rng, input_shape, np.float32), _normal(rng, weight_shape, np.float32)
    geometry = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    out = conv_kernels.conv2d_forward(x, weight, None, *geometry)
    grad = _normal(rng, out.shape, np.float32)
    tol = {"rtol": 1e-4, "atol": 1e-4}
    np.testing.assert_allclose(out, reference.conv2d(x, weight, None, *geometry), **tol)
    np.testing.assert_allclose(conv_kernels.conv2d_input_grad(grad, weight, input_shape, *geometry),
                               reference.conv2d_input_grad(grad, weight, input_shape, *geometry), **tol)
    np.testing.assert_allclose(conv_kernels.conv2d_weight_grad(x, grad, weight_shape[2:], *geometry),
                               reference.conv2d_weight_grad(x, grad, weight_shape[2:], *geometry), **tol)


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


@given(st.integers(1, 3), st.integers(2, 9), st.integers(2, 9), st.integers(0, 2**16), st.booleans())
def test_max_pool_2x2_fast_path_matches_window_tables_with_ties_and_nan(planes, height, width, seed, ceil_mode):
    """2x2/stride-2 windows take their own branch-free path; the general table-driven path is its oracle.

    Values drawn from {-1, 0, 1, nan} make ties and NaNs common (the first maximum wins, a later NaN wins);
    odd sizes leave an unpooled last row/column, or (ceil_mode) a last window of one pixel, table-driven.
    """
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-1.0, 0.0, 1.0, np.nan], np.float32), size=(planes, height, width))
    out_hw = [reference.pool_out_size(size, 2, 2, 0, 1, ceil_mode) for size in (height, width)]
    rows, cols = (pool_kernels.pool_windows(size, 2, 2, 0, 1, out) for size, out in zip((height, width), out_hw))
    values, indices = pool_kernels.max_pool(x, rows, cols, (1, 1))
    expected_values, expected_indices = np.empty_like(values), np.empty_like(indices)
    for p in range(planes):
        pool_kernels._max_pool_plane(x[p], *rows, *cols, 1, 1, expected_values[p], expected_indices[p])
    np.testing.assert_array_equal(values, expected_values)
    np.testing.assert_array_equal(indices, expected_indices)
    torch_values, torch_indices = F.max_pool2d(torch.tensor(x[:, None]), 2, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(values, torch_values[:, 0].numpy())
    np.testing.assert_array_equal(indices, torch_indices[:, 0].numpy())


def test_pool_kernels_run_planes_in_parallel_on_large_inputs():
    """Above PARALLEL_MIN_ELEMENTS pixels the kernels take their prange branch; NumPy reshapes are the oracle."""
    x = np.random.default_rng(15).standard_normal((2, 9, 256, 256)).astype(np.float32)
    assert x.size >= pool_kernels.PARALLEL_MIN_ELEMENTS
    windows = x.reshape(2, 9, 128, 2, 128, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 9, 128, 128, 4)
    rows = pool_kernels.pool_windows(256, 2, 2, 0, 1, 128)  # the 2x2 path
    values, indices = pool_kernels.max_pool(x, rows, rows, (1, 1))
    winner, grid = windows.argmax(axis=-1), np.arange(128) * 2
    np.testing.assert_array_equal(values, windows.max(axis=-1))
    np.testing.assert_array_equal(indices, (grid[:, None] + winner // 2) * 256 + grid[None, :] + winner % 2)
    back = pool_kernels.scatter_to_windows(values, indices, (256, 256))  # windows do not overlap: a round trip
    np.testing.assert_array_equal(pool_kernels.gather_from_windows(back, indices), values)
    overlapping = pool_kernels.pool_windows(256, 3, 2, 1, 1, 128)  # the table-driven path
    np.testing.assert_array_equal(pool_kernels.max_pool(x, overlapping, overlapping, (1, 1))[0],
                                  F.max_pool2d(torch.tensor(x), 3, 2, 1).numpy())
    rows = pool_kernels.pool_windows(256, 2, 2, 0, 1, 128)
    divisor = np.full((128, 128), 4.0)
    np.testing.assert_allclose(pool_kernels.avg_pool(x, rows, rows, divisor), windows.mean(axis=-1), rtol=1e-6,
                               atol=1e-6)
    spread = pool_kernels.avg_pool_backward(np.ones((2, 9, 128, 128), np.float32), rows, rows, divisor, (256, 256))
    np.testing.assert_array_equal(spread, np.full(x.shape, 0.25, np.float32))


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
