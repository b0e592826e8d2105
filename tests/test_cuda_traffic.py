"""The memory-traffic counter (kernels.cuda.traffic): counts that can be worked out by hand.

Runs in Numba's CUDA simulator only (the counter intercepts the simulator's Python threads), in
the child process that tests/test_cuda_simulator.py starts.
"""

import math

import numpy as np
import pytest
from dslearn.kernels.cuda import matmul
from dslearn.kernels.cuda.runtime import SIMULATOR
from dslearn.kernels.cuda.traffic import Counts, count_traffic
from numba import cuda

pytestmark = pytest.mark.skipif(not SIMULATOR, reason="needs NUMBA_ENABLE_CUDASIM=1; "
                                                      "tests/test_cuda_simulator.py runs this file so")
TILE = matmul.TILE


@cuda.jit
def add_ten(a, out):
    i = cuda.grid(1)
    if i < a.size:
        out[i] = a[i] + 10


@cuda.jit
def block_sums(a, out):
    """Each block sums its 4 elements in shared memory, thread 0 writes the total."""
    cache = cuda.shared.array(4, np.float64)
    cache[cuda.threadIdx.x] = a[cuda.grid(1)]
    cuda.syncthreads()
    if cuda.threadIdx.x == 0:
        out[cuda.blockIdx.x] = cache[0] + cache[1] + cache[2] + cache[3]


@cuda.jit
def histogram(values, counts):
    cuda.atomic.add(counts, values[cuda.grid(1)], 1)


@cuda.jit
def copy_rows(a, out):
    out[cuda.grid(1), :] = a[cuda.grid(1), :]


def test_a_map_kernel_reads_and_writes_each_element_once():
    out = np.zeros(5)
    report = count_traffic(add_ten, 2, 4, np.arange(5.0), out)
    assert out.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert report.total == Counts(global_reads=5, global_writes=5)
    assert report.threads[((0,), (1,))] == Counts(1, 1, 0, 0)
    assert report.threads.get(((1,), (3,)), Counts()) == Counts()  # thread 7 is past the end: no access
    assert report.arrays["a"].reads.tolist() == [1] * 5 and report.arrays["out"].writes.tolist() == [1] * 5


def test_shared_memory_accesses_are_counted_per_thread_and_per_array():
    out = np.zeros(2)
    report = count_traffic(block_sums, 2, 4, np.arange(8.0), out)
    assert out.tolist() == [6.0, 22.0]
    assert report.total == Counts(global_reads=8, global_writes=2, shared_reads=8, shared_writes=8)
    assert report.threads[((1,), (0,))] == Counts(1, 1, 4, 1)
    assert report.most_by_one_thread() == Counts(1, 1, 4, 1)
    assert report.arrays["cache"].shared and report.reads_per_element("cache") == 2.0


def test_an_atomic_add_is_one_read_and_one_write():
    counts = np.zeros(3, np.int64)
    report = count_traffic(histogram, 1, 6, np.array([0, 2, 2, 1, 2, 0]), counts)
    assert counts.tolist() == [2, 1, 3]
    assert report.arrays["counts"].reads.tolist() == [2, 1, 3] == report.arrays["counts"].writes.tolist()


def test_a_slice_counts_each_of_its_elements():
    a, out = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    report = count_traffic(copy_rows, 1, 2, a, out)
    assert (out == a).all() and report.total == Counts(6, 6, 0, 0)


@pytest.mark.parametrize("n, m, p", [(2 * TILE, 2 * TILE, 2 * TILE), (TILE + 3, 2 * TILE + 1, 3 * TILE - 2)])
def test_the_tiled_matmul_reads_each_input_element_tile_times_less_than_the_naive_one(n, m, p):
    a = np.random.default_rng(0).standard_normal((n, m)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((m, p)).astype(np.float32)
    grid = ((-(-p // TILE), -(-n // TILE)), (TILE, TILE))
    reports = {}
    for name, kernel in (("naive", matmul.naive_kernel), ("tiled", matmul.TILED_KERNELS[np.dtype(np.float32)])):
        out = np.zeros((n, p), np.float32)
        reports[name] = count_traffic(kernel, *grid, a, b, out, np.float32(0))
        np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-5)
    naive, tiled = reports["naive"], reports["tiled"]
    assert (naive.arrays["a"].reads == p).all() and (naive.arrays["b"].reads == n).all()
    assert (tiled.arrays["a"].reads == math.ceil(p / TILE)).all()  # one load per tile of out in its row
    assert (tiled.arrays["b"].reads == math.ceil(n / TILE)).all()
    steps = math.ceil(m / TILE)
    assert tiled.most_by_one_thread() == Counts(global_reads=2 * steps, global_writes=1,
                                                shared_reads=2 * TILE * steps, shared_writes=2 * steps)
    assert naive.most_by_one_thread().global_reads == 2 * m


def test_the_report_prints_a_table():
    report = count_traffic(block_sums, 2, 4, np.arange(8.0), np.zeros(2))
    table = report.table()
    assert "total" in table and "busiest thread" in table and "cache (shared)" in table
