"""``ds.jit`` as a user meets it: the seed's example, guards and retracing, the kernel cache, clear
errors for what tracing cannot see, compiled modules inside autograd, and compiled training steps.

Most tests use the NumPy back end (nothing to compile); the ones about kernels and training use
small shapes so that their few kernels compile once and then come from the on-disk cache.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import dslearn as ds
import dslearn.nn.functional as F
from dslearn import nn
from dslearn.jit import JitTraceError, cache_statistics, jit
from dslearn.jit.render import figure, summary


def test_the_seed_example_runs_and_freezes_the_layer_it_creates():
    @jit
    def mlp_model(x):
        return ds.nn.Linear(784, 256)(x).relu()

    x = ds.Tensor([1.0] * 784)
    y = mlp_model(x)
    assert y.shape == (256,)
    weight, bias = [v.data for v in mlp_model.graphs[0].captured]  # the layer made while tracing
    expected = F.linear(x, weight, bias).relu()
    np.testing.assert_allclose(y.detach().numpy(), expected.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mlp_model(x).detach().numpy(), y.detach().numpy())  # same weights every call
    assert mlp_model.cache_info()["versions"] == 1


def test_a_compiled_module_reads_its_parameters_live():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    fast = jit(model, backend="numpy")
    x = ds.randn(2, 3)
    with ds.no_grad():
        fast(x)
        model[0].weight.mul_(2.0)  # an update in place, as an optimizer makes
        np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert fast.cache_info()["versions"] == 1
    assert "captured 0.weight" in str(fast.graph)


def test_guards_select_a_version_per_signature_and_retrace_when_the_world_changes():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    model.eval()
    fast = jit(model, backend="numpy")
    with ds.no_grad():
        fast(ds.randn(2, 3))
        fast(ds.randn(2, 3))  # same signature: cache hit
        assert fast.cache_info()["versions"] == 1 and fast.stats["calls"] == 2
        fast(ds.randn(5, 3))  # new shape: a second version
        fast(ds.randn(2, 3).double().float())
        assert fast.cache_info()["versions"] == 2
        model[0].weight = nn.Parameter(ds.randn(4, 3))  # a new parameter object under the same name
        x = ds.randn(2, 3)
        np.testing.assert_allclose(fast(x).numpy(), model(x).numpy(), rtol=1e-6)
        assert "'weight' was replaced" in fast.cache_info()["retraces"][-1]
        model.double()  # same parameter objects, new dtype
        np.testing.assert_allclose(fast(x.double()).numpy(), model(x.double()).numpy(), rtol=1e-12)
    assert fast(x.double()).grad_fn is not None  # grad mode on, parameters require grad: a differentiable version
    assert fast.cache_info()["versions"] == 4


def test_switching_train_and_eval_mode_retraces():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    model.eval()
    fast = jit(model, backend="numpy")
    with ds.no_grad():
        fast(ds.ones(1, 3))
        model.train()
        with pytest.raises(JitTraceError, match="random numbers"):
            fast(ds.ones(1, 3))  # dropout in training mode draws random numbers: refused, not frozen
        assert "switched to training mode" in fast.cache_info()["retraces"][-1]


def test_python_control_flow_on_tensor_values_names_the_line():
    def branchy(x):
        if x.sum() > 0:  # the line the error must name
            return x * 2
        return x

    with pytest.raises(JitTraceError) as error:
        jit(branchy, backend="numpy")(ds.ones(3))
    message = str(error.value)
    assert "bool() reads the value of a traced tensor" in message
    assert re.search(r"test_jit_api\.py:\d+: if x\.sum\(\) > 0:", message)
    with pytest.raises(JitTraceError, match=r"item\(\)"):
        jit(lambda x: x * x.sum().item(), backend="numpy")(ds.ones(3))


def test_unsupported_ops_and_in_place_updates_are_refused_with_their_reason():
    with pytest.raises(JitTraceError, match="batch_norm_training.*not supported"):
        jit(nn.BatchNorm1d(3), backend="numpy")(ds.randn(4, 3))
    with pytest.raises(JitTraceError, match="indexing with a tensor of indices"):
        jit(lambda x, i: x[i], backend="numpy")(ds.randn(4), ds.tensor([0, 2]))

    def in_place(x):
        y = x * 2
        y.add_(1)
        return y * 3

    with ds.no_grad(), pytest.raises(JitTraceError, match="modified in place"):
        jit(in_place, backend="numpy")(ds.ones(2))
    w = ds.ones(2, requires_grad=True)
    optimizer = ds.optim.SGD([w], lr=0.1)

    def step_inside(x):
        loss = (w * x).sum()
        loss.backward()
        optimizer.step()
        return loss

    with pytest.raises(JitTraceError, match="optimizer=..."):
        jit(step_inside, backend="numpy")(ds.ones(2))
    with pytest.raises(JitTraceError, match=r"backward\(\) called inside the traced function"):
        jit(lambda x: (w * x).sum().backward() or x, backend="numpy")(ds.ones(2))


def test_arguments_and_results_must_be_tensors_or_constants():
    f = jit(lambda x, scale=1.0: x * scale, backend="numpy")
    with ds.no_grad():
        np.testing.assert_allclose(f(ds.ones(2), scale=3.0).numpy(), [3.0, 3.0])
        np.testing.assert_allclose(f(ds.ones(2), scale=4.0).numpy(), [4.0, 4.0])  # constants are part of the key
        with pytest.raises(TypeError, match="pass tensors as positional arguments"):
            f(ds.ones(2), scale=ds.ones(2))
        with pytest.raises(JitTraceError, match="must return a Tensor"):
            jit(lambda x: x.shape, backend="numpy")(ds.ones(2))
    with pytest.raises(ValueError, match="backend must be 'numba' or 'numpy'"):
        jit(lambda x: x, backend="cuda")


def test_tuple_outputs_compile_without_gradients_and_are_refused_with_them():
    f = jit(lambda x: (x.exp(), x * 2), backend="numpy")
    with ds.no_grad():
        a, b = f(ds.zeros(2))
    np.testing.assert_allclose(a.numpy(), [1.0, 1.0])
    with pytest.raises(JitTraceError, match="several tensors"):
        f(ds.zeros(2, requires_grad=True))


def test_compiled_modules_join_autograd_and_match_eager_gradients():
    ds.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.GELU(), nn.Linear(5, 2))
    reference = copy.deepcopy(model)
    x = ds.randn(3, 6, requires_grad=True)
    x_ref = ds.tensor(x.detach().numpy(), requires_grad=True)
    out = jit(model, backend="numpy")(x)
    assert out.grad_fn is not None
    (out * out).sum().backward()
    (reference(x_ref) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x_ref.grad.numpy(), rtol=1e-5, atol=1e-6)
    for p, q in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_double_backward_and_stale_parameters_are_refused():
    w = ds.randn(3, requires_grad=True)
    f = jit(lambda x: (x * w).sum(), backend="numpy")
    x = ds.randn(3, requires_grad=True)
    (g,) = ds.grad(f(x), [x], create_graph=False)
    np.testing.assert_allclose(g.numpy(), w.detach().numpy())
    with pytest.raises(RuntimeError, match="double backward"):
        ds.grad(f(x), [x], create_graph=True)
    y = f(x)
    with ds.no_grad():
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_inside_a_trace_or_under_an_observer_a_jitted_function_runs_eagerly():
    inner = jit(lambda x: x.exp(), backend="numpy")
    outer = jit(lambda x: inner(x) + 1, backend="numpy")
    with ds.no_grad():
        np.testing.assert_allclose(outer(ds.zeros(2)).numpy(), [2.0, 2.0])
    assert "exp" in str(outer.graph) and inner.cache_info()["versions"] == 0
    with ds.profiler.profile() as prof:
        inner(ds.zeros(2))
    assert "exp" in prof.key_averages().table()


def test_generated_code_graph_rendering_and_compile_statistics():
    fast = jit(lambda x: F.gelu(F.layer_norm(x, (16,))) * 2)
    x = ds.randn(4, 16)
    with ds.no_grad():
        before = cache_statistics()
        np.testing.assert_allclose(fast(x).numpy(), (F.gelu(F.layer_norm(x, (16,))) * 2).numpy(), rtol=2e-5,
                                   atol=2e-5)
        fast(x)
    stats = fast.stats
    assert stats["calls"] == 2 and stats["kernels"] in (["compiled"], ["disk"], ["memory"])
    after = cache_statistics()
    assert sum(after[k] for k in ("compiled", "disk_hits", "memory_hits")) == \
        sum(before[k] for k in ("compiled", "disk_hits", "memory_hits")) + 1
    assert "@njit" in fast.code and "def forward" in fast.code
    assert "lowering" in fast.passes_report and "layer_norm" in fast.traced_graph
    assert summary(fast.graph) == "1 node: 1 fused (10 ops)"  # layer norm: 8 primitives; gelu; * 2
    drawing = figure(fast.graph)
    assert len(drawing.data) >= 2
    again = jit(lambda x: F.gelu(F.layer_norm(x, (16,))) * 2)  # another function, same kernel
    with ds.no_grad():
        again(x)
    assert again.stats["kernels"] == ["memory"]


def _mlp():
    ds.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("make_optimizer", [
    lambda p: ds.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: ds.optim.SGD(p, lr=0.1),
    lambda p: ds.optim.SGD(p, lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
    lambda p: ds.optim.SGD(p, lr=0.1, momentum=0.5, dampening=0.3, maximize=True),
    lambda p: ds.optim.Adam(p, lr=0.01),
    lambda p: ds.optim.AdamW(p, lr=0.01, weight_decay=0.1),
], ids=["sgd-momentum", "sgd-plain", "sgd-nesterov-weight-decay", "sgd-dampening-maximize", "adam", "adamw"])
def test_a_compiled_training_step_matches_eager_training(make_optimizer):
    eager_model, compiled_model = _mlp(), _mlp()
    eager_opt, compiled_opt = make_optimizer(eager_model.parameters()), make_optimizer(compiled_model.parameters())
    step = jit(lambda x, y: ds.cross_entropy(compiled_model(x), y), optimizer=compiled_opt)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, y = ds.tensor(rng.standard_normal((5, 3, 4)).astype(np.float32)), ds.tensor(rng.integers(0, 3, 5))
        eager_opt.zero_grad()
        loss = ds.cross_entropy(eager_model(x), y)
        loss.backward()
        eager_opt.step()
        compiled_loss = step(x, y)
        assert not compiled_loss.requires_grad
        np.testing.assert_allclose(compiled_loss.item(), loss.item(), rtol=1e-6)
    for p, q in zip(eager_model.parameters(), compiled_model.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert step.cache_info()["versions"] == 1 and compiled_opt._step_count == 3
    assert "optimizer_step" in str(step.graph) and "cross_entropy_backward" in str(step.graph)


def test_a_training_step_sees_learning_rate_changes_and_retraces_for_new_parameters():
    model = _mlp()
    optimizer = ds.optim.SGD(model.parameters(), lr=0.0)
    step = jit(lambda x, y: ds.cross_entropy(model(x), y), optimizer=optimizer, backend="numpy")
    x, y = ds.randn(4, 12), ds.tensor([0, 1, 2, 0])
    before = model[1].weight.detach().numpy().copy()
    step(x, y)
    np.testing.assert_allclose(model[1].weight.detach().numpy(), before)  # lr 0: no change
    optimizer.param_groups[0]["lr"] = 0.5
    step(x, y)
    assert np.abs(model[1].weight.detach().numpy() - before).max() > 1e-4
    optimizer.add_param_group({"params": [ds.zeros(2, requires_grad=True)]})
    step(x, y)
    assert "parameter groups changed" in step.cache_info()["retraces"][-1]


def test_a_training_step_needs_a_scalar_loss_that_depends_on_parameters():
    model = _mlp()
    optimizer = ds.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(JitTraceError, match="one scalar tensor"):
        jit(lambda x: model(x), optimizer=optimizer, backend="numpy")(ds.randn(2, 12))
    with pytest.raises(JitTraceError, match="does not depend on any parameter"):
        jit(lambda x: model(x).detach().sum(), optimizer=optimizer, backend="numpy")(ds.randn(2, 12))


def test_cross_entropy_targets_are_still_checked_in_a_compiled_step():
    model = _mlp()
    step = jit(lambda x, y: ds.cross_entropy(model(x), y), optimizer=ds.optim.SGD(model.parameters(), lr=0.1))
    x = ds.randn(2, 12)
    step(x, ds.tensor([0, 1]))
    with pytest.raises(IndexError, match="target class 7 is out of range"):
        step(x, ds.tensor([0, 7]))


class _JittedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    @jit
    def forward(self, x):
        return self.fc(x).tanh()


def test_jit_on_a_method_compiles_it_per_instance_and_copies_recompile():
    first, second = _JittedNet(), _JittedNet()
    x = ds.randn(4, 3, requires_grad=True)
    for net in (first, second):
        got = net(x)
        expected = F.linear(x, net.fc.weight, net.fc.bias).tanh()
        np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-6)
        got.sum().backward()
        assert net.fc.weight.grad is not None
    assert first.forward is first.forward and first.forward is not second.forward
    assert first.forward.cache_info()["versions"] == 1 and "captured fc.weight" in str(first.forward.graph)
    twin = copy.deepcopy(first)
    with ds.no_grad():
        twin.fc.weight.mul_(0.0)
        assert twin.forward is not first.forward
        np.testing.assert_allclose(twin(x).numpy(), np.tanh(twin.fc.bias.detach().numpy()) + np.zeros((4, 2)),
                                   rtol=1e-6)
        expected = F.linear(x, first.fc.weight, first.fc.bias).tanh()
        np.testing.assert_allclose(first(x).numpy(), expected.numpy(), rtol=1e-6)
    assert isinstance(_JittedNet.forward, type(jit(lambda t: t)))


def test_jit_on_a_bound_method_reads_its_module():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    fast = jit(net.forward, backend="numpy")
    x = ds.randn(4, 3)
    with ds.no_grad():
        np.testing.assert_allclose(fast(x).numpy(), net(x).numpy(), rtol=1e-6)
    assert "captured 0.weight" in str(fast.graph)
