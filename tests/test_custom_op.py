"""Custom operators: forward and backward against torch and finite differences, the physics example
(fused Lennard-Jones) against torch autograd, the tools that observe ops, and every error path."""

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from dslearn.custom_op import CustomOp, custom_op
from dslearn.debug import AnomalyError, detect_anomaly
from dslearn.profiler import profile
from tests.oracle import check_against_torch
from tests.strategies import floats_array, small_shapes

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "custom_op_lennard_jones.py"


@custom_op("softclip")
def softclip(x, *, limit):
    """limit * tanh(x / limit): a smooth clip to (-limit, limit)."""
    return limit * np.tanh(x / limit)


@softclip.backward
def softclip_backward(ctx, grad):
    (x,) = ctx.inputs
    y = ctx.output / ctx.attrs["limit"]
    return grad * (1 - y * y)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("custom_op_lennard_jones", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@given(data=st.data(), limit=st.floats(0.5, 4.0))
def test_forward_and_backward_agree_with_torch(data, limit):
    x = data.draw(floats_array(data.draw(small_shapes)))
    check_against_torch(lambda t: softclip(t, limit=limit), lambda t: limit * torch.tanh(t / limit), x)


def test_gradcheck_and_second_derivative_through_a_tensor_op_backward():
    x = ds.tensor([-1.5, 0.2, 2.0], dtype=ds.float64, requires_grad=True)
    assert ds.debug.gradcheck(lambda t: softclip(t, limit=2.0), [x])
    (first,) = ds.autograd.grad(softclip(x, limit=2.0).sum(), [x], create_graph=True)
    (second,) = ds.autograd.grad(first.sum(), [x])
    t = x.detach().numpy()
    np.testing.assert_allclose(second.numpy(), -np.tanh(t / 2) / np.cosh(t / 2) ** 2, rtol=1e-10)


def test_attributes_reach_the_kernel_and_backward_and_the_graph_node_names_the_op():
    seen = {}

    @custom_op("scaled")
    def scaled(x, *, factor):
        seen["kernel"] = factor
        return x * factor

    @scaled.backward
    def _(ctx, grad):
        seen["backward"] = ctx.attrs["factor"]
        return grad * ctx.attrs["factor"]

    x = ds.ones(2, requires_grad=True)
    y = scaled(x, factor=3.0)
    y.sum().backward()
    assert seen == {"kernel": 3.0, "backward": 3.0}
    assert x.grad.tolist() == [3.0, 3.0] and repr(y).endswith("grad_fn=<ScaledBackward>)")
    assert scaled.function.name == "scaled" and issubclass(scaled.function, ds.Function)
    assert scaled.function.custom_op is scaled
    assert scaled.__doc__ is None and scaled.__name__ == "scaled"


def test_numbers_and_arrays_are_accepted_as_inputs():
    out = softclip(np.array([0.0, 100.0], dtype=np.float32), limit=1.0)
    assert isinstance(out, ds.Tensor) and out.tolist() == pytest.approx([0.0, 1.0])
    assert softclip(0.5, limit=1.0).item() == pytest.approx(np.tanh(0.5))


def test_a_kernel_returning_a_number_gives_a_0d_tensor():
    total = CustomOp("total", lambda x: float(x.sum()), differentiable=False)
    assert total(ds.ones(3)).shape == ()


def test_non_differentiable_ops_never_record_a_graph():
    sign = CustomOp("sign_of", np.sign, differentiable=False)
    out = sign(ds.tensor([-2.0, 3.0], requires_grad=True))
    assert not out.requires_grad and out.tolist() == [-1.0, 1.0]


def test_the_profiler_and_anomaly_detection_see_the_op():
    x = ds.tensor([0.5, 1.0], requires_grad=True)
    with profile() as prof:
        softclip(x, limit=1.0).sum().backward()
    names = {row.name for row in prof.key_averages()}
    assert {"softclip", "softclip_backward"} <= names
    broken = CustomOp("broken", lambda x: x / 0.0, differentiable=False)
    with detect_anomaly(), pytest.raises(AnomalyError, match="broken returned 2 Inf among 2 values"), \
            np.errstate(divide="ignore"):
        broken(x.detach())


def test_a_jitted_function_compiles_a_custom_op_with_its_forward_and_gradient():
    @ds.jit
    def model(x, w):
        return softclip(x @ w, limit=2.0).relu().sum()

    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((5, 3)), rng.standard_normal((3, 4))]
    eager = [ds.tensor(a, requires_grad=True) for a in arrays]
    compiled = [ds.tensor(a, requires_grad=True) for a in arrays]
    expected, got = softclip(eager[0] @ eager[1], limit=2.0).relu().sum(), model(*compiled)
    expected.backward()
    got.backward()
    np.testing.assert_allclose(got.item(), expected.item(), rtol=1e-6)
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert "softclip" in str(model.graph)


def test_a_custom_op_works_inside_checkpoint_and_autocast():
    from dslearn.amp import autocast
    from dslearn.checkpoint import checkpoint

    x = ds.tensor([0.3, -0.7], requires_grad=True)
    with autocast(dtype=ds.bfloat16):
        checkpoint(lambda t: softclip(t, limit=1.0), x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 - np.tanh([0.3, -0.7]) ** 2, rtol=1e-6)


# -- the physics example --------------------------------------------------------------------------------


def torch_lennard_jones(x: torch.Tensor, epsilon: float, sigma: float) -> torch.Tensor:
    i, j = torch.triu_indices(len(x), len(x), 1)
    r = (x[i] - x[j]).norm(dim=1)
    return (4 * epsilon * ((sigma / r) ** 12 - (sigma / r) ** 6)).sum()


@pytest.mark.parametrize("n, epsilon, sigma", [(2, 1.0, 1.0), (9, 0.5, 1.1), (30, 2.0, 0.9)])
def test_lennard_jones_energy_and_gradient_agree_with_torch(example, n, epsilon, sigma):
    x = example.lattice(n, seed=n)
    energy = example.lennard_jones(x, epsilon=epsilon, sigma=sigma)
    energy.backward()
    expected = torch.tensor(x.detach().numpy(), requires_grad=True)
    torch_energy = torch_lennard_jones(expected, epsilon, sigma)
    torch_energy.backward()
    np.testing.assert_allclose(energy.item(), torch_energy.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), expected.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_lennard_jones_passes_gradcheck_and_matches_the_composed_ops(example):
    x = example.lattice(10, jitter=0.2, seed=3)
    assert ds.debug.gradcheck(lambda t: example.lennard_jones(t, epsilon=1.0, sigma=1.0), [x])
    composed = example.lennard_jones_composed(x, 1.0, 1.0)
    np.testing.assert_allclose(example.lennard_jones(x, epsilon=1.0, sigma=1.0).item(), composed.item(), rtol=1e-12)


def test_lennard_jones_in_float32_keeps_the_dtype(example):
    x = example.lattice(8, dtype=ds.float32)
    energy = example.lennard_jones(x, epsilon=1.0, sigma=1.0)
    energy.backward()
    assert energy.dtype == ds.float32 and x.grad.dtype == ds.float32


# -- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, error, message", [
    (lambda: CustomOp("fused gelu", np.tanh), ValueError, "must be a Python identifier like 'fused_gelu'"),
    (lambda: CustomOp(3, np.tanh), ValueError, "must be a Python identifier"),
    (lambda: CustomOp("op", "tanh"), TypeError, "custom_op op: kernels must be callable"),
    (lambda: CustomOp("op", np.tanh, cuda=3), TypeError, "custom_op op: kernels must be callable"),
    (lambda: CustomOp("op", np.tanh, differentiable=False).backward(lambda ctx, g: g), RuntimeError,
     "declared differentiable=False"),
    (lambda: CustomOp("op", np.tanh).backward(3), TypeError, "the backward rule must be callable, got int"),
    (lambda: CustomOp("op", np.tanh)(), TypeError, "op: expected at least one tensor input"),
    (lambda: CustomOp("op", np.tanh)("text"), TypeError, "op: expected a Tensor or a number, got str"),
    (lambda: CustomOp("op", lambda x: [1.0])(ds.ones(1)), TypeError,
     "op: the forward kernel must return an array, got list"),
    (lambda: CustomOp("op", np.tanh)(ds.ones(1, requires_grad=True)), RuntimeError,
     "an input requires grad but the op has no backward rule; register one with @op.backward"),
])
def test_errors_name_the_op_and_the_problem(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_an_op_without_backward_still_runs_without_gradients():
    op = CustomOp("op", np.tanh)
    with ds.no_grad():
        assert op(ds.ones(1, requires_grad=True)).item() == pytest.approx(np.tanh(1.0))
    assert op(ds.ones(1)).item() == pytest.approx(np.tanh(1.0))
    assert repr(op) == "<custom op op (cpu), no backward>"
    assert repr(softclip) == "<custom op softclip (cpu)>"


CUDA_SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    import dslearn as ds
    from dslearn.custom_op import CustomOp
    try:
        on_device = ds.ones(2).to("cuda")
    except Exception as error:  # no CUDA back end in this tree yet
        print("SKIP", error)
        sys.exit(0)
    spec = importlib.util.spec_from_file_location("example", sys.argv[1])
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    x = example.lattice(6)
    cpu_energy = example.lennard_jones(x, epsilon=1.0, sigma=1.0)
    cpu_energy.backward()
    gpu = x.detach().to("cuda").requires_grad_()
    gpu_energy = example.lennard_jones(gpu, epsilon=1.0, sigma=1.0)
    gpu_energy.backward()
    assert str(gpu_energy.device).startswith("cuda")
    np.testing.assert_allclose(gpu_energy.item(), cpu_energy.item(), rtol=1e-12)
    np.testing.assert_allclose(gpu.grad.cpu().numpy(), x.grad.numpy(), rtol=1e-10, atol=1e-12)
    try:
        CustomOp("cpu_only", np.tanh, differentiable=False)(on_device)
    except RuntimeError as error:
        assert "inputs are on a CUDA device but the op has no CUDA kernel" in str(error), error
    else:
        raise AssertionError("a CUDA input reached a CPU-only op")
    print("OK")
""")


@pytest.mark.skipif(not (ROOT / "kernels" / "cuda").is_dir(), reason="no CUDA kernels in this tree")
def test_cuda_kernel_runs_for_cuda_tensors_in_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run([sys.executable, "-c", CUDA_SCRIPT, str(EXAMPLE)], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    if result.stdout.startswith("SKIP"):
        pytest.skip(result.stdout.strip())
    assert result.stdout.strip().endswith("OK")
