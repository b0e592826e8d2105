"""Strided primitives (kernels.cpu.primitives): index helpers, map/zip/reduce kernels on every layout.

Oracles: NumPy (unravel_index, broadcasting, ufuncs, reductions) and the NumPy references in
kernels.reference.primitives, run on the very same flat arguments as the kernels.
"""

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from dslearn.kernels.cpu import primitives as kernels
from dslearn.kernels.cpu.primitives import (
    broadcast_index,
    index_to_position,
    map_array,
    reduce_array,
    storage_shape_strides,
    tensor_map,
    tensor_reduce,
    tensor_zip,
    to_index,
    zip_arrays,
)
from dslearn.kernels.reference import primitives as reference
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba import njit

from tests.strategies import broadcastable_pair, floats_array, small_shapes

# One kernel of each kind, shared by all tests: each compiles once per signature (a few seconds).
NEGATE = tensor_map(njit(lambda x: -x))  # an already jitted scalar function
SUBTRACT = tensor_zip(lambda x, y: x - y)  # plain Python, jitted by the factory; not symmetric in a, b
SUM = tensor_reduce(lambda total, x: total + x)


@st.composite
def layouts(draw, shape):
    """An array of ``shape`` stored in a random layout: permuted axes, a step, reversed, or contiguous."""
    kind = draw(st.sampled_from(["contiguous", "permuted", "stepped", "reversed"]))
    if kind == "permuted":
        order = draw(st.permutations(range(len(shape))))
        base = draw(floats_array(tuple(shape[d] for d in order)))
        return np.transpose(base, np.argsort(order))
    if kind == "stepped" and shape:
        base = draw(floats_array(shape[:-1] + (2 * shape[-1],)))
        return base[..., ::2]
    if kind == "reversed" and shape:
        return draw(floats_array(shape))[..., ::-1]
    return draw(floats_array(shape))


# --- index helpers ----------------------------------------------------------------------


@given(shape=small_shapes, data=st.data())
def test_to_index_and_index_to_position_invert_each_other_like_numpy(shape, data):
    size = int(np.prod(shape))
    ordinal = data.draw(st.integers(0, size - 1))
    index = np.empty(len(shape), np.int64)
    to_index(ordinal, np.array(shape, np.int64), index)
    assert tuple(index) == tuple(int(i) for i in np.unravel_index(ordinal, shape))
    contiguous_strides = np.array(np.empty(shape, np.int8).strides, np.int64)
    assert index_to_position(index, contiguous_strides) == ordinal


@given(shapes=broadcastable_pair(), data=st.data())
def test_broadcast_index_finds_the_element_numpy_broadcasting_repeats(shapes, data):
    big_shape, small_shape = shapes.result_shape, shapes.input_shapes[0]
    big_index = tuple(data.draw(st.integers(0, extent - 1)) for extent in big_shape)
    source = np.arange(int(np.prod(small_shape))).reshape(small_shape)
    index = np.empty(len(small_shape), np.int64)
    broadcast_index(np.array(big_index, np.int64), np.array(big_shape, np.int64), np.array(small_shape, np.int64),
                    index)
    assert source[tuple(index)] == np.broadcast_to(source, big_shape)[big_index]


def test_storage_shape_strides_views_memory_without_copying():
    base = np.arange(24.0).reshape(2, 3, 4)
    view = base.transpose(2, 0, 1)[1:, :, ::2]
    storage, shape, strides = storage_shape_strides(view)
    assert np.shares_memory(storage, base)
    assert tuple(shape) == view.shape and tuple(strides) == tuple(s // 8 for s in view.strides)
    assert storage[0] == view.flat[0]


def test_storage_shape_strides_gives_broadcast_dimensions_stride_zero():
    _, shape, strides = storage_shape_strides(np.broadcast_to(np.arange(3.0), (4, 3)))
    assert tuple(shape) == (4, 3) and tuple(strides) == (0, 1)


# --- map ----------------------------------------------------------------------------------


@given(data=st.data())
def test_map_negates_every_layout_like_numpy(data):
    x = data.draw(layouts(data.draw(small_shapes)))
    np.testing.assert_array_equal(map_array(NEGATE, x), -x)


@given(data=st.data())
def test_map_broadcasts_input_into_a_larger_out(data):
    shapes = data.draw(broadcastable_pair())
    x = data.draw(floats_array(shapes.input_shapes[0]))
    out = np.empty(shapes.result_shape)
    map_array(NEGATE, x, out=out)
    np.testing.assert_array_equal(out, np.broadcast_to(-x, shapes.result_shape))


@given(data=st.data())
def test_map_kernel_matches_reference_on_the_same_flat_arguments(data):
    x = data.draw(layouts(data.draw(small_shapes)))
    ours, theirs = np.zeros(x.shape[::-1]).T, np.zeros(x.shape[::-1]).T  # transposed outs exercise out_strides
    NEGATE(*storage_shape_strides(ours), *storage_shape_strides(x))
    reference.tensor_map(lambda v: -v)(*storage_shape_strides(theirs), *storage_shape_strides(x))
    np.testing.assert_array_equal(ours, theirs)


def test_map_writes_into_transposed_reversed_and_float16_outs():
    x = np.arange(6.0).reshape(2, 3)
    for out in (np.zeros((3, 2)).T, np.zeros((2, 3))[:, ::-1], np.zeros((2, 3), np.float16)):
        map_array(NEGATE, x, out=out)
        np.testing.assert_array_equal(out, -x)


def test_map_computes_half_precision_in_float32_and_returns_the_input_dtype():
    for dtype in (np.float16, ml_dtypes.bfloat16):
        x = np.array([1.5, -2.25, 3.0], dtype=dtype)
        result = map_array(NEGATE, x)
        assert result.dtype == x.dtype
        np.testing.assert_array_equal(result.astype(np.float32), -x.astype(np.float32))


def test_map_on_empty_arrays_returns_an_empty_array():
    assert map_array(NEGATE, np.empty((0, 3))).shape == (0, 3)


# --- zip ----------------------------------------------------------------------------------


@given(data=st.data())
def test_zip_subtracts_broadcast_operands_in_every_layout_like_numpy(data):
    shapes = data.draw(broadcastable_pair())
    a = data.draw(layouts(shapes.input_shapes[0]))
    b = data.draw(layouts(shapes.input_shapes[1]))
    np.testing.assert_array_equal(zip_arrays(SUBTRACT, a, b), a - b)


@given(data=st.data())
def test_zip_kernel_matches_reference_on_the_same_flat_arguments(data):
    shapes = data.draw(broadcastable_pair())
    a = data.draw(layouts(shapes.input_shapes[0]))
    b = np.broadcast_to(data.draw(floats_array(shapes.input_shapes[1])), shapes.result_shape)  # stride-0 view
    ours, theirs = np.empty(shapes.result_shape), np.empty(shapes.result_shape)
    SUBTRACT(*storage_shape_strides(ours), *storage_shape_strides(a), *storage_shape_strides(b))
    reference.tensor_zip(lambda x, y: x - y)(*storage_shape_strides(theirs), *storage_shape_strides(a),
                                             *storage_shape_strides(b))
    np.testing.assert_array_equal(ours, theirs)


def test_zip_fast_and_strided_paths_agree():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((40, 50)), rng.standard_normal((40, 50))
    contiguous = zip_arrays(SUBTRACT, a, b)
    strided = zip_arrays(SUBTRACT, np.asfortranarray(a), np.asfortranarray(b))
    np.testing.assert_array_equal(contiguous, strided)
    np.testing.assert_array_equal(contiguous, a - b)


def test_zip_result_dtype_follows_numpy_promotion():
    a, b = np.arange(4, dtype=np.int64), np.arange(4, dtype=np.int64)[::-1]
    result = zip_arrays(SUBTRACT, a, b)
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, a - b)


# --- reduce -------------------------------------------------------------------------------


@given(data=st.data())
def test_reduce_sums_along_any_dim_like_numpy(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    x = data.draw(layouts(shape))
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    np.testing.assert_allclose(reduce_array(SUM, x, dim, 0.0), np.sum(x, axis=dim, keepdims=True), rtol=1e-12,
                               atol=1e-12)


@given(data=st.data())
def test_reduce_kernel_matches_reference_on_the_same_flat_arguments(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    x = data.draw(layouts(shape))
    dim = data.draw(st.integers(0, x.ndim - 1))
    out_shape = shape[:dim] + (1,) + shape[dim + 1:]
    ours, theirs = np.empty(out_shape), np.empty(out_shape)
    SUM(*storage_shape_strides(ours), *storage_shape_strides(x), dim, 0.0)
    reference.tensor_reduce(lambda t, v: t + v)(*storage_shape_strides(theirs), *storage_shape_strides(x), dim, 0.0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_reduce_splits_long_and_short_dimensions_into_chunks_correctly():
    rng = np.random.default_rng(1)
    for x in (rng.standard_normal((3, kernels.CHUNK * 3 + 7)), rng.standard_normal((kernels.CHUNK * 3 + 7, 3))):
        for dim in (0, 1):
            np.testing.assert_allclose(reduce_array(SUM, x, dim, 0.0), x.sum(dim, keepdims=True), rtol=1e-10)


def test_reduce_over_an_empty_dimension_gives_start():
    np.testing.assert_array_equal(reduce_array(SUM, np.empty((2, 0)), 1, 5.0), [[5.0], [5.0]])


# --- errors -------------------------------------------------------------------------------


def test_map_rejects_an_out_the_input_cannot_broadcast_to():
    with pytest.raises(ValueError, match=r"map: input of shape \(2, 3\) does not broadcast to out of shape \(3,\)"):
        map_array(NEGATE, np.ones((2, 3)), out=np.empty(3))


def test_zip_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"zip: shapes \(2, 3\) and \(4,\) cannot be broadcast together"):
        zip_arrays(SUBTRACT, np.ones((2, 3)), np.ones(4))


def test_zip_rejects_an_out_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"zip: out has shape \(3, 2\), expected \(2, 3\)"):
        zip_arrays(SUBTRACT, np.ones((2, 3)), np.ones(3), out=np.empty((3, 2)))


def test_reduce_rejects_a_dim_out_of_range():
    with pytest.raises(IndexError, match=r"reduce: dim 2 is out of range for an array of shape \(2, 3\)"):
        reduce_array(SUM, np.ones((2, 3)), 2, 0.0)
    with pytest.raises(IndexError, match=r"reduce: dim 0 is out of range for an array of shape \(\)"):
        reduce_array(SUM, np.float64(1.0), 0, 0.0)


def test_kernels_refuse_read_only_and_self_overlapping_outs():
    with pytest.raises(ValueError, match="map: out is read-only"):
        map_array(NEGATE, np.ones(3), out=np.broadcast_to(np.zeros(1), (3,)))
    overlapping = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(3,), strides=(0,), writeable=True)
    with pytest.raises(ValueError, match="map: out has overlapping elements"):
        map_array(NEGATE, np.ones(3), out=overlapping)


@pytest.mark.parametrize("values", [np.array(["a", "b"]), np.array([object(), object()])])
def test_kernels_reject_dtypes_numba_cannot_compute(values):
    with pytest.raises(TypeError, match="map: unsupported dtype"):
        map_array(NEGATE, values)
    with pytest.raises(TypeError, match="zip: unsupported dtype"):
        zip_arrays(SUBTRACT, values, values)
    with pytest.raises(TypeError, match="reduce: unsupported dtype"):
        reduce_array(SUM, values, 0, 0.0)


# --- pure Python mode ----------------------------------------------------------------------


def test_primitives_run_as_plain_python_with_numba_disable_jit():
    script = (
        "import numpy as np\n"
        "from dslearn.kernels.cpu.primitives import *\n"
        "x = np.arange(6.0).reshape(2, 3)\n"
        "assert (map_array(tensor_map(lambda v: -v), x.T) == -x.T).all()\n"
        "assert (zip_arrays(tensor_zip(lambda a, b: a * b), x, x[0]) == x * x[0]).all()\n"
        "assert (reduce_array(tensor_reduce(lambda t, v: t + v), x, 1, 0.0) == x.sum(1, keepdims=True)).all()\n"
        "assert not hasattr(index_to_position, 'py_func')  # really plain Python\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
