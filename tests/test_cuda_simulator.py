"""The CUDA test files, run where they can run: in a child process with Numba's CUDA simulator.

Numba picks its CUDA target when it is first imported, and this test process imported it
without the simulator. So when there is no GPU here, this file runs every ``tests/test_cuda_*.py``
in a child pytest with ``NUMBA_ENABLE_CUDASIM=1`` (they skip themselves in this process); with a
GPU, they run here directly, on the GPU, and the child process is not needed. The other tests
here check what a user without a GPU sees.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dslearn.kernels.cuda import traffic

import dslearn as ds

HERE = Path(__file__).resolve().parent
CUDA_HERE = ds.cuda.is_available()
CUDA_TEST_FILES = sorted(str(p) for p in HERE.glob("test_cuda_*.py") if p.name != Path(__file__).name)
no_gpu_only = pytest.mark.skipif(CUDA_HERE, reason="this process has a CUDA device")


@no_gpu_only
def test_the_cuda_tests_pass_in_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", *CUDA_TEST_FILES, "-q", "-p", "no:cacheprovider",
                          "-o", "addopts=--strict-markers"], cwd=HERE.parent, env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and " skipped" not in run.stdout.splitlines()[-1], run.stdout[-2000:]


@no_gpu_only
def test_moving_a_tensor_to_cuda_without_a_gpu_says_how_to_use_the_simulator():
    with pytest.raises(RuntimeError, match="no CUDA GPU is available .* NUMBA_ENABLE_CUDASIM=1"):
        ds.ones(2).to("cuda")


@no_gpu_only
def test_creating_a_tensor_on_cuda_without_a_gpu_is_the_same_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        ds.zeros(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        ds.tensor([1.0], device="cuda:0")


@no_gpu_only
def test_ds_cuda_reports_no_device():
    assert ds.cuda.is_available() is False and ds.cuda.device_count() == 0
    ds.cuda.synchronize()  # nothing to wait for, and no error


@no_gpu_only
def test_counting_memory_traffic_needs_the_simulator():
    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM=1"):
        traffic.count_traffic(None, 1, 1, np.zeros(1))
