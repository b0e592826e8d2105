"""Tensors on the CUDA back end: moving, creating, mixing devices, and ops that agree with the CPU.

Every op here runs twice, on the CPU and on 'cuda', forward and backward, and the two must
agree (the CPU ops are themselves checked against torch in the other test files). Runs on a GPU
when there is one, else in Numba's CUDA simulator in the child process that
tests/test_cuda_simulator.py starts; this process skips it otherwise.
"""

import numpy as np
import pytest
from dslearn.kernels.cuda.array import CudaArray
from hypothesis import given, settings
from hypothesis import strategies as st

import dslearn as ds
from dslearn import nn, optim
from tests.strategies import broadcastable_pair, floats_array

pytestmark = pytest.mark.skipif(not ds.cuda.is_available(), reason="needs a GPU or NUMBA_ENABLE_CUDASIM=1; "
                                                                   "tests/test_cuda_simulator.py runs this file so")
few = settings(max_examples=6, deadline=None)


def on_both(fn, *arrays, atol=1e-5):
    """Run ``fn`` on CPU tensors and on CUDA tensors made from ``arrays``; compare values and gradients."""
    cpu = [ds.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    gpu = [ds.tensor(a).cuda().requires_grad_(a.dtype.kind == "f") for a in arrays]
    expected, got = fn(*cpu), fn(*gpu)
    assert got.device == ds.device("cuda:0") and got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got.detach().cpu().numpy(), expected.detach().numpy(), rtol=1e-5, atol=atol)
    if expected.requires_grad:
        upstream = np.random.default_rng(0).standard_normal(expected.shape).astype(expected.dtype.np)
        expected.backward(ds.tensor(upstream))
        got.backward(ds.tensor(upstream).cuda())
        for c, g in zip(cpu, gpu):
            if c.grad is None:
                assert g.grad is None
            else:
                assert g.grad.device == ds.device("cuda:0")
                np.testing.assert_allclose(g.grad.cpu().numpy(), c.grad.numpy(), rtol=1e-4, atol=atol * 10)
    return got


# -- devices -------------------------------------------------------------------------------------------------


def test_to_cuda_and_back_keeps_values_dtype_and_shape():
    x = ds.arange(6).reshape(2, 3)
    on_gpu = x.to("cuda")
    assert on_gpu.device == ds.device("cuda", 0) and on_gpu.is_cuda and type(on_gpu._data) is CudaArray
    assert on_gpu.cuda() is on_gpu and on_gpu.to("cuda:0") is on_gpu
    back = on_gpu.cpu()
    assert back.device == ds.device("cpu") and back.dtype == ds.int64 and back.tolist() == x.tolist()
    assert "device='cuda:0'" in repr(on_gpu)


def test_moving_to_the_gpu_is_differentiable():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    (x.cuda() * 3).sum().backward()
    assert x.grad.device == ds.device("cpu") and x.grad.tolist() == [3.0, 3.0]


def test_creation_functions_make_tensors_on_the_device():
    for t in (ds.zeros(2, 3, device="cuda"), ds.ones(4, device="cuda"), ds.full((2,), 7.0, device="cuda"),
              ds.arange(5, device="cuda"), ds.randn(3, device="cuda"), ds.tensor([1, 2], device="cuda"),
              ds.zeros_like(ds.ones(2, device="cuda")), ds.eye(3, device="cuda")):
        assert t.device == ds.device("cuda:0")
    assert ds.full((2,), 7.0, device="cuda").tolist() == [7.0, 7.0]
    ds.manual_seed(3)
    on_cpu = ds.randn(4)
    ds.manual_seed(3)
    assert ds.randn(4, device="cuda").tolist() == on_cpu.tolist()  # one generator for every device


def test_ds_cuda_reports_the_device():
    assert ds.cuda.is_available() and ds.cuda.device_count() >= 1
    assert isinstance(ds.cuda.get_device_name(), str)
    ds.cuda.synchronize()


def test_mixing_devices_is_an_error_that_names_both():
    with pytest.raises(RuntimeError, match=r"add: expected all tensors on one device, got .*on cpu.*on cuda:0"):
        ds.ones(2) + ds.ones(2).cuda()
    with pytest.raises(RuntimeError, match="matmul: expected all tensors on one device"):
        ds.ones(2, 2).cuda() @ ds.ones(2, 2)


def test_a_0d_cpu_tensor_goes_along_with_a_gpu_tensor_as_in_pytorch():
    out = ds.ones(3).cuda() * ds.tensor(2.0)
    assert out.device == ds.device("cuda:0") and out.tolist() == [2.0, 2.0, 2.0]


def test_only_cuda_0_is_used():
    with pytest.raises(RuntimeError, match="dslearn uses one GPU"):
        ds.ones(1).to("cuda:1")


def test_bfloat16_cannot_move_to_the_gpu():
    with pytest.raises(TypeError, match="bfloat16"):
        ds.ones(2, dtype=ds.bfloat16).cuda()


def test_a_gpu_array_does_not_turn_into_a_numpy_array_silently():
    with pytest.raises(TypeError, match=r"lives in GPU memory: call \.to_numpy\(\)"):
        np.asarray(ds.ones(2).cuda()._data)
    assert np.asarray(ds.ones(2).cuda()).tolist() == [1.0, 1.0]  # a Tensor does, through .cpu()


def test_what_the_cuda_back_end_lacks_is_a_clear_error():
    x = ds.arange(4.0).cuda()
    with pytest.raises(NotImplementedError, match="basic indices"):
        x._data[np.array([0, 2])]
    with pytest.raises(NotImplementedError, match="np.sort is not implemented for CUDA arrays"):
        np.sort(x._data)
    with pytest.raises(NotImplementedError, match="np.floor has no CUDA kernel"):
        np.floor(x._data)


# -- ops: the same values and gradients as on the CPU ------------------------------------------------------------


@few
@given(shapes=broadcastable_pair(), data=st.data())
def test_arithmetic_broadcasts_and_differentiates_like_on_the_cpu(shapes, data):
    a = data.draw(floats_array(shapes.input_shapes[0], np.float32))
    b = data.draw(floats_array(shapes.input_shapes[1], np.float32, low=0.5, high=3.0))
    on_both(lambda x, y: (x * y + x / y - 2 * x) ** 2, a, b, atol=1e-4)


@pytest.mark.parametrize("fn", [ds.exp, ds.tanh, ds.sigmoid, ds.relu, ds.abs, ds.sin, lambda x: ds.gelu(x),
                                lambda x: ds.gelu(x, approximate="tanh"), lambda x: x.clamp(-0.5, 0.5),
                                lambda x: ds.where(x > 0, x, 0.1 * x), lambda x: ds.maximum(x, x.T)])
def test_elementwise_ops_match_the_cpu(fn):
    on_both(fn, np.random.default_rng(1).standard_normal((4, 4)).astype(np.float32))


@pytest.mark.parametrize("fn", [lambda x: x.sum(), lambda x: x.sum(1), lambda x: x.mean((0, 2), keepdim=True),
                                lambda x: x.amax(-1), lambda x: x.var(1), lambda x: x.logsumexp(2),
                                lambda x: x.norm()])
def test_reductions_match_the_cpu(fn):
    on_both(fn, np.random.default_rng(2).standard_normal((3, 4, 5)).astype(np.float32))


def test_basic_indexing_reads_and_writes_views_on_the_gpu():
    x = ds.arange(24.0).reshape(2, 3, 4)
    on_gpu = x.cuda()
    assert on_gpu[1, :, ::2].tolist() == x[1, :, ::2].tolist() and on_gpu[..., None, 2].shape == (2, 3, 1)
    on_gpu[:, 1] = -1.0
    x[:, 1] = -1.0
    assert on_gpu.tolist() == x.tolist()


def test_argmax_finds_the_first_largest_value():
    x = ds.tensor([[1.0, 3.0, 3.0], [5.0, -1.0, 2.0]]).cuda()
    assert x.argmax(1).tolist() == [1, 0] and x.argmax(1).device.type == "cuda"


@pytest.mark.parametrize("fn", [lambda x, w: x @ w, lambda x, w: ds.linear(x, w.T),
                                lambda x, w: (x.reshape(2, 3, 3) @ (w @ w.T)).sum(0),
                                lambda x, w: x.T.reshape(3, 6).permute(1, 0).expand(2, 6, 3) * 2])
def test_matrix_products_and_views_match_the_cpu(fn):
    rng = np.random.default_rng(3)
    on_both(fn, rng.standard_normal((6, 3)).astype(np.float32), rng.standard_normal((3, 5)).astype(np.float32))


@pytest.mark.parametrize("fn", [lambda x: ds.softmax(x, 1), lambda x: ds.log_softmax(x, 0),
                                lambda x: nn.functional.layer_norm(x, (5,)),
                                lambda x: nn.functional.group_norm(x, 2)])
def test_fused_ops_dispatch_to_their_cuda_kernels(fn):
    on_both(fn, np.random.default_rng(4).standard_normal((3, 4, 5)).astype(np.float32))


def test_batch_norm_updates_running_statistics_on_the_gpu():
    x = np.random.default_rng(5).standard_normal((4, 3, 2)).astype(np.float32)
    stats = {"cpu": [ds.zeros(3), ds.ones(3)], "cuda": [ds.zeros(3, device="cuda"), ds.ones(3, device="cuda")]}
    outs = {d: nn.functional.batch_norm(ds.tensor(x).to(d), *stats[d], training=True) for d in stats}
    np.testing.assert_allclose(outs["cuda"].cpu().numpy(), outs["cpu"].numpy(), rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(stats["cuda"], stats["cpu"]):
        np.testing.assert_allclose(ours.cpu().numpy(), theirs.numpy(), rtol=1e-5)


def test_training_an_mlp_with_adam_on_the_gpu_follows_the_cpu():
    ds.manual_seed(0)
    models = {"cpu": nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))}
    models["cuda"] = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    models["cuda"].load_state_dict(models["cpu"].state_dict())
    optimizers = {d: optim.Adam(m.parameters(), lr=0.05, amsgrad=True) for d, m in models.items()}
    models["cuda"].cuda()  # after the optimizer, as PyTorch allows: parameters keep their identity
    x, y = ds.randn(7, 5), ds.randn(7, 3)
    for _ in range(3):
        for device, model in models.items():
            optimizers[device].zero_grad()
            loss = ((model(x.to(device)) - y.to(device)) ** 2).mean()
            loss.backward()
            optimizers[device].step()
    for ours, theirs in zip(models["cuda"].parameters(), models["cpu"].parameters()):
        assert ours.device == ds.device("cuda:0")
        np.testing.assert_allclose(ours.detach().cpu().numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
    state = optimizers["cuda"].state[next(models["cuda"].parameters())]
    assert state["exp_avg"].device == ds.device("cuda:0")


@pytest.mark.parametrize("fn", [lambda x, w: nn.functional.conv2d(x, w, padding=1),
                                lambda x, w: nn.functional.conv2d(x, w, stride=2, dilation=(1, 2)),
                                lambda x, w: nn.functional.conv2d(x, w[:, :1], groups=2)])
def test_conv2d_matches_the_cpu_with_odd_shapes(fn):
    rng = np.random.default_rng(6)
    on_both(fn, rng.standard_normal((2, 2, 7, 9)).astype(np.float32),
            rng.standard_normal((4, 2, 3, 3)).astype(np.float32), atol=1e-4)


@pytest.mark.parametrize("fn", [lambda x: nn.functional.max_pool2d(x, 2),
                                lambda x: nn.functional.max_pool2d(x, 3, stride=2, padding=1),
                                lambda x: nn.functional.avg_pool2d(x, 2, ceil_mode=True),
                                lambda x: nn.functional.adaptive_avg_pool2d(x, (2, 3))])
def test_pooling_matches_the_cpu(fn):
    on_both(fn, np.random.default_rng(7).standard_normal((2, 3, 7, 5)).astype(np.float32))


@pytest.mark.parametrize("options", [{}, {"reduction": "none"}, {"reduction": "sum", "label_smoothing": 0.1},
                                     {"ignore_index": 1}])
def test_cross_entropy_matches_the_cpu(options):
    logits = np.random.default_rng(8).standard_normal((5, 4)).astype(np.float32)
    target = ds.tensor([0, 1, 3, 1, 2])
    on_both(lambda x: nn.functional.cross_entropy(x, target.to(x.device), **options), logits, atol=1e-5)


def _small_cnn() -> nn.Module:
    """LeNet's layer types at a size the simulator runs in a second."""
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 3, 3), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3, 4))


def test_a_cnn_step_with_sgd_on_the_gpu_follows_the_cpu():
    ds.manual_seed(0)
    models = {"cpu": _small_cnn(), "cuda": _small_cnn()}
    models["cuda"].load_state_dict(models["cpu"].state_dict())
    models["cuda"].cuda()
    optimizers = {d: optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for d, m in models.items()}
    images, labels = ds.randn(3, 1, 8, 8), ds.tensor([3, 0, 1])
    for _ in range(2):
        for device, model in models.items():
            optimizers[device].zero_grad()
            nn.functional.cross_entropy(model(images.to(device)), labels.to(device)).backward()
            optimizers[device].step()
    for ours, theirs in zip(models["cuda"].parameters(), models["cpu"].parameters()):
        assert ours.device == ds.device("cuda:0") and ours.grad.device == ds.device("cuda:0")
        np.testing.assert_allclose(ours.detach().cpu().numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
