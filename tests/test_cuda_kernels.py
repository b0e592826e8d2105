"""CUDA kernels (kernels.cuda) against their CPU twins (kernels.cpu) and NumPy, on small shapes.

Each CUDA module has the signatures of its CPU twin; the tests call both on the same inputs
(shapes that are not multiples of the tile or the block size included) and compare. They run on
a GPU when there is one, else in Numba's CUDA simulator, in the child process that
tests/test_cuda_simulator.py starts (this process skips them when it has neither).
"""

import doctest
import importlib
import pkgutil

import dslearn.kernels.cuda
import numpy as np
import pytest
from dslearn.kernels.cpu import activations as cpu_activations
from dslearn.kernels.cpu import conv as cpu_conv
from dslearn.kernels.cpu import norm as cpu_norm
from dslearn.kernels.cpu import optim as cpu_optim
from dslearn.kernels.cpu import pool as cpu_pool
from dslearn.kernels.cpu import softmax as cpu_softmax
from dslearn.kernels.cuda import activations, conv, matmul, norm, optim, pool, primitives, softmax
from dslearn.kernels.cuda.array import CudaArray
from dslearn.kernels.reference import primitives as reference
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dslearn as ds
from tests.strategies import broadcastable_pair

pytestmark = pytest.mark.skipif(not ds.cuda.is_available(), reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1; "
                                                                   "tests/test_cuda_simulator.py runs this file so")
few = settings(max_examples=8, deadline=None)
TILE = matmul.TILE


def gpu(array) -> CudaArray:
    return CudaArray.from_numpy(np.asarray(array))


def host(array) -> np.ndarray:
    return array.to_numpy() if isinstance(array, CudaArray) else np.asarray(array)


def random(shape, dtype=np.float32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def storage_args(array: np.ndarray):
    """(flat storage, shape, strides in elements) of ``array``, on the host and on the device."""
    strides = [s // array.itemsize for s in array.strides]
    base = np.ascontiguousarray(array.base if array.base is not None else array).reshape(-1)
    return (base, array.shape, strides), (gpu(base).storage, array.shape, strides)


# -- primitives: map, zip, reduce -------------------------------------------------------------------------

NEGATE_PLUS_ONE = primitives.tensor_map(lambda x: 1 - x)
SUBTRACT = primitives.tensor_zip(lambda x, y: x - y)
SUM = primitives.tensor_reduce(lambda total, x: total + x)


@few
@given(shapes=broadcastable_pair(), seed=st.integers(0, 9))
def test_zip_broadcasts_like_the_numpy_reference(shapes, seed):
    (a_shape, b_shape), out_shape = shapes.input_shapes, shapes.result_shape
    a, b = random(a_shape, np.float64, seed), random(b_shape, np.float64, seed + 1)
    expected = np.zeros(max(1, int(np.prod(out_shape))))
    reference.tensor_zip(lambda x, y: x - y)(expected, np.array(out_shape, int), _strides(out_shape), a.reshape(-1),
                                              np.array(a_shape, int), _strides(a_shape), b.reshape(-1),
                                              np.array(b_shape, int), _strides(b_shape))
    out = CudaArray.empty((max(1, int(np.prod(out_shape))),), np.float64)
    SUBTRACT(out.storage, out_shape, _strides(out_shape), gpu(a.reshape(-1)).storage, a_shape, _strides(a_shape),
             gpu(b.reshape(-1)).storage, b_shape, _strides(b_shape))
    np.testing.assert_allclose(host(out), expected)
    np.testing.assert_allclose(host(out)[:int(np.prod(out_shape))].reshape(out_shape), a - b)


def _strides(shape):
    return list(primitives.contiguous_strides(shape))


def test_map_reads_a_transposed_view_in_place_like_the_cpu_twin():
    from dslearn.kernels.cpu import primitives as cpu_primitives

    x = random((3, 5), np.float64).T  # strides (1, 5): not contiguous
    (host_storage, shape, strides), (device_storage, _, _) = storage_args(x)
    cpu_out = np.zeros(x.size)
    cpu_primitives.tensor_map(lambda v: 1 - v)(cpu_out, np.array(shape), np.array(_strides(shape)), host_storage,
                                                  np.array(shape), np.array(strides))
    out = CudaArray.empty((x.size,), np.float64)
    NEGATE_PLUS_ONE(out.storage, shape, _strides(shape), device_storage, shape, strides)
    np.testing.assert_allclose(host(out), cpu_out)
    np.testing.assert_allclose(host(out).reshape(shape), 1 - x)


@few
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), data=st.data())
def test_reduce_along_any_dim_matches_numpy(shape, data):
    dim = data.draw(st.integers(0, len(shape) - 1))
    a = random(shape, np.float64)
    out_shape = shape[:dim] + (1,) + shape[dim + 1:]
    out = CudaArray.empty(out_shape, np.float64)
    SUM(out.storage, out_shape, _strides(out_shape), gpu(a.reshape(-1)).storage, shape, _strides(shape), dim, 0.0)
    np.testing.assert_allclose(host(out), a.sum(dim, keepdims=True), atol=1e-12)


def test_a_long_reduction_is_split_between_blocks_and_combined():
    length = 3 * primitives.SPLIT_LENGTH + 7  # three full chunks and a partial one
    a = random((2, length), np.float64)
    out = CudaArray.empty((2, 1), np.float64)
    SUM(out.storage, (2, 1), (1, 1), gpu(a.reshape(-1)).storage, a.shape, _strides(a.shape), 1, 0.0)
    np.testing.assert_allclose(host(out), a.sum(1, keepdims=True), rtol=1e-12)


# -- matmul --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["naive", "tiled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, m, p", [(TILE, TILE, TILE), (TILE + 3, 2 * TILE + 1, TILE - 1), (1, 5, 2 * TILE + 5)])
def test_matmul_kernels_match_numpy_including_shapes_that_are_not_multiples_of_the_tile(kernel, dtype, n, m, p):
    a, b = random((n, m), dtype), random((m, p), dtype, seed=1)
    out = CudaArray.empty((n, p), dtype)
    matmul.KERNELS[kernel](gpu(a).device_array(), gpu(b).device_array(), out.device_array())
    np.testing.assert_allclose(host(out), a @ b, rtol=1e-5, atol=1e-5)


def test_batched_matmul_broadcasts_and_takes_any_layout():
    a, b = random((2, 1, TILE + 1, 3)), random((4, 5, 3), seed=1).transpose(0, 2, 1)
    result = matmul.matmul(gpu(a), gpu(b.copy()).transpose(0, 2, 1).transpose(0, 2, 1))
    np.testing.assert_allclose(host(result), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(host(matmul.matmul(gpu(a[0, 0, 0]), gpu(b[0]))), a[0, 0, 0] @ b[0], rtol=1e-5)


def test_matmul_errors_name_the_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(4, 2\) are not aligned \(3 != 4\)"):
        matmul.matmul(gpu(np.ones((2, 3))), gpu(np.ones((4, 2))))
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        matmul.matmul_tiled(gpu(np.ones((2, 2))).device_array(), gpu(np.ones((2, 2), np.float32)).device_array(),
                            CudaArray.empty((2, 2), np.float64).device_array())
    with pytest.raises(TypeError, match="floating-point"):
        matmul.matmul(gpu(np.ones((2, 2), np.int64)), gpu(np.ones((2, 2), np.int64)))


# -- activations, softmax, cross-entropy ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sigmoid", "gelu", "gelu_grad", "gelu_tanh", "gelu_tanh_grad", "erf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_activations_match_their_cpu_twins(name, dtype):
    x = (random((3, 7), dtype) * 4).astype(dtype)
    ours = host(getattr(activations, name)(gpu(x)))
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, getattr(cpu_activations, name)(x), rtol=1e-3 if dtype == np.float16 else 1e-6,
                               atol=1e-3 if dtype == np.float16 else 1e-6)


def test_softplus_matches_its_cpu_twin_on_both_sides_of_the_threshold():
    x = np.array([-30.0, -1.0, 0.0, 2.0, 25.0], dtype=np.float32)
    np.testing.assert_allclose(host(activations.softplus(gpu(x), 2.0, 20.0)), cpu_activations.softplus(x, 2.0, 20.0),
                               rtol=1e-6)


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_family_matches_the_cpu_twins_along_any_dim(dim):
    x, g = random((3, 4, 19)) * 3, random((3, 4, 19), seed=1)
    for name in ("softmax", "log_softmax"):
        y = getattr(cpu_softmax, name)(x, dim)
        np.testing.assert_allclose(host(getattr(softmax, name)(gpu(x), dim)), y, rtol=1e-5, atol=1e-6)
        backward = name + "_backward"
        np.testing.assert_allclose(host(getattr(softmax, backward)(gpu(y), gpu(g), dim)),
                                   getattr(cpu_softmax, backward)(y, g, dim), rtol=1e-5, atol=1e-6)


def test_softmax_of_a_row_with_huge_values_is_finite():
    x = np.array([[1000.0, 1000.0, -np.inf]], dtype=np.float32)
    np.testing.assert_allclose(host(softmax.softmax(gpu(x), 1)), [[0.5, 0.5, 0.0]])


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_kernels_match_the_cpu_twins_with_weights_and_ignored_rows(smoothing):
    logits, weight = random((6, 21), np.float64) * 2, np.abs(random(21, np.float64, seed=2)) + 0.5
    target = np.array([0, 20, -100, 3, 7, 20])
    loss, lse = cpu_softmax.cross_entropy_forward(logits, target, weight, -100, smoothing)
    ours_loss, ours_lse = softmax.cross_entropy_forward(gpu(logits), gpu(target), gpu(weight), -100, smoothing)
    np.testing.assert_allclose(host(ours_loss), loss, rtol=1e-12)
    np.testing.assert_allclose(host(ours_lse), lse, rtol=1e-12)
    scale = np.linspace(0.5, 1.5, 6)
    np.testing.assert_allclose(
        host(softmax.cross_entropy_backward(gpu(logits), ours_lse, gpu(target), gpu(weight), -100, smoothing,
                                            gpu(scale))),
        cpu_softmax.cross_entropy_backward(logits, lse, target, weight, -100, smoothing, scale), rtol=1e-10,
        atol=1e-14)


# -- normalisation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows, width", [(5, 3), (2, 37)])
def test_layer_norm_kernels_match_the_cpu_twins(rows, width):
    x, g = random((rows, width), np.float64) + 3, random((rows, width), np.float64, seed=1)
    weight, bias = random(width, np.float64, seed=2), random(width, np.float64, seed=3)
    out, mean, rstd = cpu_norm.layer_norm_forward(x, weight, bias, 1e-5)
    ours = norm.layer_norm_forward(gpu(x), gpu(weight), gpu(bias), 1e-5)
    for got, expected in zip(ours, (out, mean, rstd)):
        np.testing.assert_allclose(host(got), expected, rtol=1e-10, atol=1e-12)
    for got, expected in zip(norm.layer_norm_backward(gpu(g), gpu(x), ours[1], ours[2], gpu(weight)),
                             cpu_norm.layer_norm_backward(g, x, mean, rstd, weight)):
        np.testing.assert_allclose(host(got), expected, rtol=1e-9, atol=1e-12)


def test_batch_norm_functions_match_the_cpu_twins():
    x, g = random((4, 3, 5), np.float64) * 2 + 1, random((4, 3, 5), np.float64, seed=1)
    weight = random(3, np.float64, seed=2)
    mean, var = cpu_norm.batch_norm_statistics(x)
    ours_mean, ours_var = norm.batch_norm_statistics(gpu(x))
    np.testing.assert_allclose(host(ours_mean), mean, rtol=1e-12)
    np.testing.assert_allclose(host(ours_var), var, rtol=1e-12)
    rstd, shift = 1 / np.sqrt(var + 1e-5), random(3, np.float64, seed=3)
    np.testing.assert_allclose(host(norm.channel_affine(gpu(x), gpu(weight * rstd), gpu(mean), gpu(shift))),
                               cpu_norm.channel_affine(x, weight * rstd, mean, shift), rtol=1e-12)
    for got, expected in zip(norm.batch_norm_backward(gpu(g), gpu(x), gpu(mean), gpu(rstd), gpu(weight)),
                             cpu_norm.batch_norm_backward(g, x, mean, rstd, weight)):
        np.testing.assert_allclose(host(got), expected, rtol=1e-9, atol=1e-12)


def test_group_norm_functions_match_the_cpu_twins():
    x, g = random((2, 2, 3, 4), np.float64) + 1, random((2, 2, 3, 4), np.float64, seed=1)
    weight, bias = random(6, np.float64, seed=2), random(6, np.float64, seed=3)
    out, mean, rstd = cpu_norm.group_norm_forward(x, weight, bias, 1e-5)
    ours = norm.group_norm_forward(gpu(x), gpu(weight), gpu(bias), 1e-5)
    for got, expected in zip(ours, (out, mean, rstd)):
        np.testing.assert_allclose(host(got), expected, rtol=1e-10)
    for got, expected in zip(norm.group_norm_backward(gpu(g), gpu(x), ours[1], ours[2], gpu(weight)),
                             cpu_norm.group_norm_backward(g, x, mean, rstd, weight)):
        np.testing.assert_allclose(host(got), expected, rtol=1e-9, atol=1e-12)


# -- Adam -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amsgrad, maximize, decoupled", [(False, False, False), (True, True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_update_matches_the_cpu_twin(amsgrad, maximize, decoupled, dtype):
    size = 37
    host_buffers = [random(size, dtype, seed=s) for s in range(2)] + [np.abs(random(size, dtype, seed=s))
                                                                     for s in (2, 3, 4)]
    device_buffers = [gpu(b) for b in host_buffers]
    if not amsgrad:
        host_buffers[4], device_buffers[4] = np.empty(0, dtype), CudaArray.empty((0,), dtype)
    settings_ = (1.0 - 0.01 * 0.1 if decoupled else 1.0, 0.0 if decoupled else 0.1, 0.9, 0.999, 0.01 / 0.1,
                 (1 - 0.999) ** 0.5, 1e-8, amsgrad, maximize)
    cpu_optim.adam_update(*host_buffers, *settings_)
    optim.adam_update(*device_buffers, *settings_)
    for got, expected in zip(device_buffers, host_buffers):
        np.testing.assert_allclose(host(got), expected, rtol=1e-6 if dtype == np.float32 else 1e-12)


# -- convolution and pooling -------------------------------------------------------------------------------------

CONV_CASES = [  # (input shape, out channels, kernel, stride, padding per side, dilation, groups)
    ((2, 2, 5, 6), 4, (3, 3), (1, 1), ((1, 1), (0, 2)), (1, 1), 2),
    ((1, 3, 7, 5), 2, (2, 3), (2, 1), ((0, 1), (1, 1)), (2, 1), 1),
    ((3, 1, 4, 4), 2, (1, 1), (1, 2), ((0, 0), (0, 0)), (1, 1), 1),
]


@pytest.mark.parametrize("shape, out_channels, kernel, stride, padding, dilation, groups", CONV_CASES)
def test_conv2d_kernels_match_the_cpu_twin(shape, out_channels, kernel, stride, padding, dilation, groups):
    x = random(shape)
    weight, bias = random((out_channels, shape[1] // groups, *kernel), seed=1), random(out_channels, seed=2)
    geometry = (stride, padding, dilation, groups)
    y = cpu_conv.conv2d_forward(x, weight, bias, *geometry)
    np.testing.assert_allclose(host(conv.conv2d_forward(gpu(x), gpu(weight), gpu(bias), *geometry)), y, rtol=1e-5,
                               atol=1e-5)
    g = random(y.shape, seed=3)
    np.testing.assert_allclose(host(conv.conv2d_input_grad(gpu(g), gpu(weight), shape, *geometry)),
                               cpu_conv.conv2d_input_grad(g, weight, shape, *geometry), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(host(conv.conv2d_weight_grad(gpu(x), gpu(g), kernel, *geometry)),
                               cpu_conv.conv2d_weight_grad(x, g, kernel, *geometry), rtol=1e-4, atol=1e-4)


POOL_CASES = [  # (input height and width, kernel, stride, padding, dilation, ceil_mode)
    ((5, 7), 3, 2, 1, 1, False),
    ((6, 6), 2, 2, 0, 1, False),
    ((7, 5), 2, 2, 0, 2, True),
]


def _pool_tables(hw, kernel, stride, padding, dilation, ceil_mode):
    tables = []
    for size in hw:
        span = size + 2 * padding - dilation * (kernel - 1) - 1
        out = (-(-span // stride) if ceil_mode else span // stride) + 1
        out -= 1 if ceil_mode and (out - 1) * stride >= size + padding else 0
        tables.append(cpu_pool.pool_windows(size, kernel, stride, padding, dilation, out))
    return tables


@pytest.mark.parametrize("hw, kernel, stride, padding, dilation, ceil_mode", POOL_CASES)
def test_max_pool_kernels_match_the_cpu_twin(hw, kernel, stride, padding, dilation, ceil_mode):
    x = random((2, 3, *hw))
    rows, cols = _pool_tables(hw, kernel, stride, padding, dilation, ceil_mode)
    out, indices = cpu_pool.max_pool(x, rows, cols, (dilation, dilation))
    ours, our_indices = pool.max_pool(gpu(x), rows, cols, (dilation, dilation))
    np.testing.assert_array_equal(host(ours), out)
    np.testing.assert_array_equal(host(our_indices), indices)
    g = random(out.shape, seed=1)
    np.testing.assert_allclose(host(pool.scatter_to_windows(gpu(g), our_indices, hw)),
                               cpu_pool.scatter_to_windows(g, indices, hw), rtol=1e-6)
    np.testing.assert_array_equal(host(pool.gather_from_windows(gpu(x), our_indices)),
                                  cpu_pool.gather_from_windows(x, indices))


@pytest.mark.parametrize("hw, kernel, stride, padding, dilation, ceil_mode", [c for c in POOL_CASES if c[4] == 1])
def test_avg_pool_kernels_match_the_cpu_twin(hw, kernel, stride, padding, dilation, ceil_mode):
    x = random((2, 3, *hw))
    rows, cols = _pool_tables(hw, kernel, stride, padding, 1, ceil_mode)
    divisor = cpu_pool.avg_pool_divisor(hw, (kernel, kernel), (stride, stride), (padding, padding),
                                        (len(rows[0]), len(cols[0])), True)
    out = cpu_pool.avg_pool(x, rows, cols, divisor)
    np.testing.assert_allclose(host(pool.avg_pool(gpu(x), rows, cols, divisor)), out, rtol=1e-6)
    g = random(out.shape, seed=1)
    np.testing.assert_allclose(host(pool.avg_pool_backward(gpu(g), rows, cols, divisor, hw)),
                               cpu_pool.avg_pool_backward(g, rows, cols, divisor, hw), rtol=1e-5, atol=1e-6)


def test_adaptive_pooling_tables_work_on_the_gpu_too():
    x = random((1, 2, 5, 7))
    rows, cols = cpu_pool.adaptive_windows(5, 3), cpu_pool.adaptive_windows(7, 2)
    np.testing.assert_array_equal(host(pool.max_pool(gpu(x), rows, cols, (1, 1))[0]),
                                  cpu_pool.max_pool(x, rows, cols, (1, 1))[0])


# -- the examples in the docstrings -------------------------------------------------------------------------------


@pytest.mark.parametrize("module", sorted(m.name for m in pkgutil.iter_modules(dslearn.kernels.cuda.__path__,
                                                                                 "dslearn.kernels.cuda.")))
def test_cuda_kernel_doctests(module):
    failed, _ = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failed == 0
