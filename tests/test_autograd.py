"""The autograd engine: accumulation, retain_graph, hooks, grad(), create_graph, grad modes, in-place safety."""

import threading

import numpy as np
import pytest
import torch

import dslearn as ds
from dslearn.autograd.function import Function


def test_gradients_accumulate_across_backward_calls_like_torch():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]


def test_a_tensor_used_twice_receives_the_sum_of_both_paths():
    x = ds.tensor(3.0, requires_grad=True)
    y = x * x + x.exp() * x
    y.backward()
    t = torch.tensor(3.0, requires_grad=True)
    (t * t + t.exp() * t).backward()
    assert x.grad.item() == pytest.approx(t.grad.item())


def test_backward_with_explicit_gradient():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).backward(ds.tensor([1.0, 10.0]))
    assert x.grad.tolist() == [2.0, 20.0]


def test_non_scalar_backward_without_gradient_is_refused():
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar outputs"):
        (ds.ones(2, requires_grad=True) * 2).backward()


def test_backward_on_a_tensor_without_history_is_refused():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ds.ones(1).backward()


def test_second_backward_needs_retain_graph():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (np.exp([1.0, 2.0]) * np.array([2.0, 3.0])))
    z = (x.exp() * x).sum()
    z.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        z.backward()


def test_deep_graphs_do_not_hit_the_recursion_limit():
    x = ds.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001 ** 5000, rel=1e-4)


def test_grad_returns_gradients_without_touching_dot_grad():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    w = ds.tensor([3.0, 4.0], requires_grad=True)
    gx, gw = ds.autograd.grad((x * w).sum(), [x, w])
    assert gx.tolist() == [3.0, 4.0] and gw.tolist() == [1.0, 2.0]
    assert x.grad is None and w.grad is None


def test_grad_of_an_intermediate_tensor():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    (gh,) = ds.autograd.grad((h * h).sum(), h)
    assert gh.tolist() == [4.0, 8.0]


def test_grad_reports_unused_inputs():
    x, y = ds.ones(2, requires_grad=True), ds.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="input 1 .* was not used"):
        ds.autograd.grad((x * 2).sum(), [x, y])
    assert ds.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)[1] is None


def test_create_graph_gives_hessian_vector_products_like_torch():
    rng = np.random.default_rng(0)
    a, v = rng.standard_normal(4), rng.standard_normal(4)
    x = ds.tensor(a, requires_grad=True)
    (g,) = ds.autograd.grad((x.tanh() * x.sin()).sum() ** 2, x, create_graph=True)
    (hv,) = ds.autograd.grad((g * ds.tensor(v)).sum(), x)
    t = torch.tensor(a, requires_grad=True)
    (tg,) = torch.autograd.grad((t.tanh() * t.sin()).sum() ** 2, t, create_graph=True)
    (thv,) = torch.autograd.grad((tg * torch.tensor(v)).sum(), t)
    np.testing.assert_allclose(hv.numpy(), thv.numpy(), rtol=1e-10)


def test_tensor_hooks_see_and_replace_gradients():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = x * 3
    h.register_hook(lambda g: seen.append(g.tolist()))
    handle = x.register_hook(lambda g: g * 10)
    h.sum().backward()
    assert seen == [[1.0, 1.0]] and x.grad.tolist() == [30.0, 30.0]
    handle.remove()
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_retain_grad_keeps_intermediate_gradients():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    h.retain_grad()
    h.sum().backward()
    assert h.grad.tolist() == [1.0, 1.0] and x.grad.tolist() == [2.0, 4.0]


def test_no_grad_enable_grad_and_set_grad_enabled_nest():
    x = ds.ones(2, requires_grad=True)
    with ds.no_grad():
        assert not (x * 2).requires_grad
        with ds.enable_grad():
            assert (x * 2).requires_grad
    with ds.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad

    @ds.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad


def test_seed_style_set_grad_mode_switches_recording_off_and_on():
    ds.debug.set_grad_mode(False)
    try:
        y = ds.linear(ds.ones(3), ds.ones(2, 3, requires_grad=True)).relu()
        assert not y.requires_grad and not ds.is_grad_enabled()
    finally:
        ds.debug.set_grad_mode(True)
    assert ds.is_grad_enabled()


def test_grad_mode_is_per_thread():
    seen = []

    def worker():
        with ds.no_grad():
            seen.append(ds.is_grad_enabled())

    with ds.enable_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert ds.is_grad_enabled() and seen == [False]


def test_in_place_change_of_a_saved_input_is_detected():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    y = (h * h).sum()
    with ds.no_grad():
        h.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_in_place_ops_on_non_leaf_tensors_are_differentiated():
    a = np.array([1.0, -2.0, 3.0])
    x = ds.tensor(a, requires_grad=True)
    h = x * 2
    h.add_(1).mul_(h)
    h[0] = 0.0
    h.sum().backward()
    t = torch.tensor(a, requires_grad=True)  # torch refuses x.mul_(x) here; the out-of-place form is the oracle
    th = t * 2
    th.add_(1)
    th = th * th
    th[0] = 0.0
    th.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())
    np.testing.assert_allclose(h.detach().numpy(), th.detach().numpy())


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    w = ds.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.add_(1)
    with ds.no_grad():
        w.add_(1)
    assert w.tolist() == [2.0, 2.0]


def test_in_place_shape_and_dtype_errors():
    with pytest.raises(RuntimeError, match=r"add_: the result has shape \(2, 2\)"):
        ds.ones(2).add_(ds.ones(2, 2))
    with pytest.raises(TypeError, match="mul_: the result dtype float32 cannot be stored in a int64 tensor"):
        ds.ones(2, dtype=ds.int64).mul_(1.5)


def test_custom_function_with_needs_input_grad():
    class ScaleFirst(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * 2 + b

        @staticmethod
        def backward(ctx, grad):
            need_a, need_b = ctx.needs_input_grad
            return (grad * 2 if need_a else None), (grad if need_b else None)

    a, b = ds.ones(2, requires_grad=True), ds.ones(2)
    ScaleFirst.apply(a, b).sum().backward()
    assert a.grad.tolist() == [2.0, 2.0] and b.grad is None


def test_wrong_gradient_shape_from_a_backward_is_reported():
    class Broken(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            return grad.sum()

    with pytest.raises(RuntimeError, match=r"broken backward: gradient of shape \(\) for an input of shape \(3,\)"):
        Broken.apply(ds.ones(3, requires_grad=True)).sum().backward()


def test_detach_shares_data_and_cuts_history():
    x = ds.ones(2, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    d2 = x.detach()
    with ds.no_grad():
        d2[0] = 5.0
    assert x.tolist() == [5.0, 1.0]


def test_grad_fn_and_is_leaf():
    x = ds.ones(2, requires_grad=True)
    y = x * 2
    assert x.is_leaf and x.grad_fn is None and not y.is_leaf and y.grad_fn.fn.name == "mul"
    assert "grad_fn=<MulBackward>" in repr(y)
