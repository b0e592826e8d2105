"""Teaching matmul kernels (kernels.cpu.matmul) against np.matmul: shapes across tile edges, dtypes, errors."""

import os
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from dslearn.kernels.cpu import matmul as mm
from hypothesis import given
from hypothesis import strategies as st

KERNEL_NAMES = ["naive", "reordered", "tiled", "blas"]
TOLERANCE = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def random_operands(n, m, p, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)).astype(dtype), rng.standard_normal((m, p)).astype(dtype)


@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(n=st.integers(1, 70), m=st.integers(1, 70), p=st.integers(1, 70))
def test_kernels_match_np_matmul_on_random_shapes(name, dtype, n, m, p):
    a, b = random_operands(n, m, p, dtype)
    out = np.full((n, p), np.nan, dtype)  # every element must be written
    assert mm.KERNELS[name](a, b, out) is out
    np.testing.assert_allclose(out, np.matmul(a, b), **TOLERANCE[dtype])


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_cross_every_tile_edge(name):
    n, m, p = mm.TILE_ROWS * 2 + 5, mm.TILE_K * 2 + 3, mm.TILE_COLS + 7  # no dimension a multiple of its tile
    a, b = random_operands(n, m, p, np.float64, seed=1)
    np.testing.assert_allclose(mm.KERNELS[name](a, b, np.empty((n, p))), a @ b, **TOLERANCE[np.float64])


@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize("n, m, p", [(0, 3, 4), (3, 0, 4), (3, 4, 0)])
def test_kernels_handle_empty_dimensions(name, n, m, p):
    a, b = random_operands(n, m, p, np.float32)
    out = np.full((n, p), np.nan, np.float32)
    np.testing.assert_array_equal(mm.KERNELS[name](a, b, out), np.zeros((n, p), np.float32))


@pytest.mark.parametrize("name", KERNEL_NAMES)
@given(batch_a=st.sampled_from([(), (3,), (2, 1)]), batch_b=st.sampled_from([(), (1,), (3,), (2, 3)]),
       n=st.integers(1, 9), m=st.integers(1, 9), p=st.integers(1, 9))
def test_matmul_broadcasts_batch_dimensions_like_numpy(name, batch_a, batch_b, n, m, p):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(batch_a + (n, m)), rng.standard_normal(batch_b + (m, p))
    np.testing.assert_allclose(mm.matmul(a, b, kernel=name), np.matmul(a, b), **TOLERANCE[np.float64])


def test_matmul_accepts_transposed_and_sliced_inputs():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, 30)).T, rng.standard_normal((80, 50))[::2, ::3]
    np.testing.assert_allclose(mm.matmul(a, b), a @ b, **TOLERANCE[np.float64])


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_matmul_computes_half_precision_in_float32_and_casts_back(dtype):
    a, b = random_operands(5, 6, 7, dtype)
    result = mm.matmul(a, b)
    assert result.dtype == np.dtype(dtype)
    expected = (a.astype(np.float32) @ b.astype(np.float32)).astype(dtype)
    np.testing.assert_array_equal(result, expected)


def test_matmul_keeps_float32_and_float64():
    for dtype in (np.float32, np.float64):
        a, b = random_operands(3, 4, 5, dtype)
        assert mm.matmul(a, b).dtype == dtype


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_name_both_shapes_when_not_aligned(name):
    a, b = np.ones((64, 784)), np.ones((256, 10))
    with pytest.raises(ValueError, match=rf"matmul_{name}: shapes \(64, 784\) and \(256, 10\) are not aligned "
                                         r"\(784 != 256\)"):
        mm.KERNELS[name](a, b, np.empty((64, 10)))


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_reject_an_out_of_the_wrong_shape(name):
    with pytest.raises(ValueError, match=rf"matmul_{name}: out has shape \(3, 3\), expected \(2, 4\)"):
        mm.KERNELS[name](np.ones((2, 3)), np.ones((3, 4)), np.empty((3, 3)))


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_reject_arrays_that_are_not_2d(name):
    with pytest.raises(ValueError, match=rf"matmul_{name}: a must be a 2-D NumPy array, got ndarray of shape \(3,\)"):
        mm.KERNELS[name](np.ones(3), np.ones((3, 4)), np.empty((1, 4)))
    with pytest.raises(ValueError, match=rf"matmul_{name}: b must be a 2-D NumPy array, got list"):
        mm.KERNELS[name](np.ones((2, 3)), [[1.0]] * 3, np.empty((2, 1)))


@pytest.mark.parametrize("name", KERNEL_NAMES)
@pytest.mark.parametrize("dtypes", [(np.float32, np.float64, np.float32), (np.int64, np.int64, np.int64),
                                    (np.float16, np.float16, np.float16)])
def test_kernels_reject_mixed_or_non_float_dtypes(name, dtypes):
    a, b, out = (np.ones(shape, dtype) for shape, dtype in zip([(2, 3), (3, 4), (2, 4)], dtypes))
    with pytest.raises(TypeError, match=rf"matmul_{name}: a, b and out must all be float32 or all float64"):
        mm.KERNELS[name](a, b, out)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_reject_non_contiguous_arrays(name):
    with pytest.raises(ValueError, match=rf"matmul_{name}: a must be C-contiguous"):
        mm.KERNELS[name](np.ones((3, 2)).T, np.ones((3, 4)), np.empty((2, 4)))
    with pytest.raises(ValueError, match=rf"matmul_{name}: out must be C-contiguous"):
        mm.KERNELS[name](np.ones((2, 3)), np.ones((3, 4)), np.empty((4, 2)).T)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernels_reject_an_out_that_overlaps_an_input(name):
    a = np.ones((3, 3))
    with pytest.raises(ValueError, match=rf"matmul_{name}: out must not overlap a or b"):
        mm.KERNELS[name](a, np.eye(3), a)


def test_matmul_wrapper_errors_name_the_problem():
    with pytest.raises(ValueError, match="matmul: unknown kernel 'fast'; choose one of"):
        mm.matmul(np.ones((2, 2)), np.ones((2, 2)), kernel="fast")
    with pytest.raises(ValueError, match=r"matmul: both operands need at least two dimensions, got shapes \(3,\)"):
        mm.matmul(np.ones(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 2\) are not aligned \(3 != 4\)"):
        mm.matmul(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"matmul: batch dimensions of \(2, 1, 3\) and \(3, 3, 1\) cannot be"):
        mm.matmul(np.ones((2, 1, 3)), np.ones((3, 3, 1)))
    with pytest.raises(TypeError, match="matmul: expected floating-point arrays, got int64 and int64"):
        mm.matmul(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


def test_kernels_run_as_plain_python_with_numba_disable_jit():
    script = (
        "import numpy as np\n"
        "from dslearn.kernels.cpu import matmul as mm\n"
        "a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)\n"
        "for name in ('naive', 'reordered', 'tiled'):\n"
        "    assert np.allclose(mm.matmul(a, b, kernel=name), a @ b), name\n"
        "assert not hasattr(mm._tiled_kernel, 'py_func')  # really plain Python\n"
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
