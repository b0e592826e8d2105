"""``ds.jit`` on CUDA tensors: fused groups become ``numba.cuda.jit`` kernels on the GPU's memory.

Runs on a GPU when this process has one; otherwise the first test runs this file again in a
child process with Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba
is imported), on small shapes: the simulator runs every thread in Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import dslearn as ds
import dslearn.cuda  # noqa: F401  (ds.cuda)
from dslearn import nn
from dslearn.jit import jit

CUDA_HERE = ds.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA_HERE, reason="needs a GPU or the simulator (the first test starts one)")


@pytest.mark.skipif(CUDA_HERE, reason="CUDA is available here: the tests below run directly")
def test_the_cuda_jit_tests_pass_in_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-o",
                          "addopts=--strict-markers"], env=env, capture_output=True, text=True, timeout=600,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-3000:]
    assert "4 passed" in run.stdout.splitlines()[-1], run.stdout[-2000:]  # (and this test, skipped there)


def _model():
    ds.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.GELU(), nn.Linear(5, 3), nn.Sigmoid())


@needs_cuda
def test_a_compiled_model_on_cuda_runs_generated_cuda_kernels_and_matches_the_cpu():
    cpu_model = _model()
    gpu_model = _model().to("cuda")
    x = ds.randn(4, 6)
    fast = jit(gpu_model)
    with ds.no_grad():
        expected = cpu_model(x).numpy()
        got = fast(x.cuda())
    assert got.device == ds.device("cuda:0")
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert fast.code.count("@cuda.jit\ndef kernel") == 2 and "[1, 128](" in fast.code


@needs_cuda
def test_compiled_gradients_on_cuda_match_eager():
    model = _model().to("cuda")
    x = ds.randn(4, 6).cuda().requires_grad_()
    jit(model)(x).sum().backward()
    compiled = [x.grad.cpu().numpy()] + [p.grad.cpu().numpy() for p in model.parameters()]
    x.grad = None
    model.zero_grad()
    model(x).sum().backward()
    eager = [x.grad.cpu().numpy()] + [p.grad.cpu().numpy() for p in model.parameters()]
    for got, want in zip(compiled, eager):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@needs_cuda
def test_groups_the_cuda_emitter_does_not_handle_run_op_by_op_on_the_gpu():
    fast = jit(lambda x: (x * 2).exp().sum(0) * 3)  # a column reduction: no CUDA kernel for it
    x = ds.randn(3, 4)
    with ds.no_grad():
        got = fast(x.cuda())
    np.testing.assert_allclose(got.cpu().numpy(), ((x * 2).exp().sum(0) * 3).numpy(), rtol=1e-5)
    assert fast.code.count("@cuda.jit\ndef kernel") == 1  # the "* 3" after the sum; the sum's group runs op by op
    assert re.search(r"v\d+, = fused_\d+\(x0\)", fast.code)


@needs_cuda
def test_moves_between_devices_are_compiled_with_their_gradients():
    def round_trip(x):
        return ((x.cuda() * 2).exp() + 1).cpu() * x

    x = ds.randn(3, 4).requires_grad_()
    round_trip(x).sum().backward()
    expected, expected_grad = round_trip(x).detach().numpy(), x.grad.numpy().copy()
    x.grad = None
    fast = jit(round_trip)
    got = fast(x)
    got.sum().backward()
    assert got.device == ds.device("cpu")
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-5)
    assert "to_device" in str(fast.graph)
