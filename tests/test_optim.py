"""Optimizers: ten steps match torch.optim for every option, state dicts round-trip, deferred binding, errors."""

import copy
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from dslearn import optim

SHAPES = [(3, 4), (4,), (2, 3)]
STEPS = 10

OPTIMIZERS = {"SGD": (optim.SGD, torch.optim.SGD), "Adam": (optim.Adam, torch.optim.Adam),
              "AdamW": (optim.AdamW, torch.optim.AdamW), "RMSprop": (optim.RMSprop, torch.optim.RMSprop)}


@st.composite
def sgd_options(draw):
    nesterov = draw(st.booleans())
    momentum = draw(st.sampled_from([0.5, 0.9])) if nesterov else draw(st.sampled_from([0.0, 0.9]))
    dampening = 0.0 if nesterov else draw(st.sampled_from([0.0, 0.3]))
    return {"momentum": momentum, "dampening": dampening, "nesterov": nesterov,
            "weight_decay": draw(st.sampled_from([0.0, 0.01])), "maximize": draw(st.booleans())}


def adam_options(default_weight_decay):
    return st.fixed_dictionaries({
        "betas": st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)]),
        "eps": st.sampled_from([1e-8, 1e-3]),
        "weight_decay": st.sampled_from([0.0, default_weight_decay, 0.1]),
        "amsgrad": st.booleans(),
        "maximize": st.booleans(),
    })


rmsprop_options = st.fixed_dictionaries({
    "alpha": st.sampled_from([0.99, 0.5]),
    "eps": st.sampled_from([1e-8, 1e-2]),
    "weight_decay": st.sampled_from([0.0, 0.05]),
    "momentum": st.sampled_from([0.0, 0.8]),
    "centered": st.booleans(),
    "maximize": st.booleans(),
})

OPTIONS = {"SGD": sgd_options(), "Adam": adam_options(0.01), "AdamW": adam_options(0.01), "RMSprop": rmsprop_options}


def make_problem(seed: int, dtype=np.float64):
    """Initial parameters and a sequence of gradients; some gradients are None (the parameter is skipped)."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(dtype) if (t == 0 or rng.random() > 0.25) else None
              for shape in SHAPES] for t in range(STEPS)]
    return initial, grads


def groups_of(params, group_lrs):
    """Two groups: the first with its own lr and weight decay, the second on the defaults."""
    return [{"params": params[:2], "lr": group_lrs, "weight_decay": 0.2}, {"params": params[2:]}]


class Run:
    """The same optimizer in dslearn and torch, over copies of the same parameters."""

    def __init__(self, name, initial, options, lr=0.05, group_lr=0.1, grouped=True, dtype=np.float64):
        ds_cls, torch_cls = OPTIMIZERS[name]
        self.ds_params = [ds.tensor(a.copy(), requires_grad=True) for a in initial]
        self.torch_params = [torch.tensor(a.copy(), requires_grad=True) for a in initial]
        torch_options = {k: v for k, v in options.items() if k != "fused"}
        if grouped:
            self.ds_opt = ds_cls(groups_of(self.ds_params, group_lr), lr=lr, **options)
            self.torch_opt = torch_cls(groups_of(self.torch_params, group_lr), lr=lr, **torch_options)
        else:
            self.ds_opt = ds_cls(self.ds_params, lr=lr, **options)
            self.torch_opt = torch_cls(self.torch_params, lr=lr, **torch_options)

    def step(self, grads):
        for p, q, g in zip(self.ds_params, self.torch_params, grads):
            p.grad = None if g is None else ds.tensor(g.copy())
            q.grad = None if g is None else torch.tensor(g.copy())
        self.ds_opt.step()
        self.torch_opt.step()

    def assert_same(self, atol=1e-6, rtol=0.0):
        for i, (p, q) in enumerate(zip(self.ds_params, self.torch_params)):
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), atol=atol, rtol=rtol,
                                       err_msg=f"parameter {i} differs from torch")


def assert_same_state_dicts(ours: dict, theirs: dict) -> None:
    assert ours["state"].keys() == theirs["state"].keys()
    for key, state in ours["state"].items():
        assert state.keys() == theirs["state"][key].keys()
        for name, value in state.items():
            expected = theirs["state"][key][name]
            assert value.dtype.name == str(expected.dtype).removeprefix("torch."), name
            np.testing.assert_allclose(value.numpy(), expected.numpy(), atol=1e-6, err_msg=name)
    assert len(ours["param_groups"]) == len(theirs["param_groups"])
    for mine, torch_group in zip(ours["param_groups"], theirs["param_groups"]):
        assert mine["params"] == torch_group["params"]
        for key, value in mine.items():
            if key in torch_group and key != "fused":
                assert value == torch_group[key], key


# -- same numbers as torch -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@given(data=st.data())
def test_ten_steps_match_torch_with_groups_and_missing_grads(name, data):
    options = data.draw(OPTIONS[name])
    initial, grads = make_problem(data.draw(st.integers(0, 2**16)))
    run = Run(name, initial, options)
    for t in range(STEPS):
        run.step(grads[t])
        run.assert_same()
    assert_same_state_dicts(run.ds_opt.state_dict(), run.torch_opt.state_dict())


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
@pytest.mark.parametrize("fused", [None, True, False])
@given(data=st.data())
def test_adam_numpy_and_fused_kernel_both_match_torch(name, fused, data):
    options = {**data.draw(OPTIONS[name]), "fused": fused}
    initial, grads = make_problem(data.draw(st.integers(0, 2**16)))
    run = Run(name, initial, options)
    for t in range(STEPS):
        run.step(grads[t])
    run.assert_same()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_parameters_match_torch(name):
    initial, grads = make_problem(1, dtype=np.float32)
    run = Run(name, initial, {})
    for t in range(STEPS):
        run.step(grads[t])
    run.assert_same(atol=1e-5, rtol=1e-5)
    assert all(p.dtype == ds.float32 for p in run.ds_params)


@pytest.mark.parametrize("dtype,tolerance", [(np.float64, 1e-9), (np.float32, 1e-5)])
def test_fused_kernel_on_a_large_parameter_runs_in_parallel_and_matches_torch(dtype, tolerance):
    from dslearn.kernels.cpu.optim import PARALLEL_MIN_SIZE

    rng = np.random.default_rng(7)
    initial = [rng.standard_normal((130, 130)).astype(dtype)]
    assert initial[0].size >= PARALLEL_MIN_SIZE
    run = Run("AdamW", initial, {"fused": True, "amsgrad": True, "weight_decay": 0.1}, grouped=False)
    for _ in range(3):
        run.step([rng.standard_normal((130, 130)).astype(dtype)])
    run.assert_same(atol=tolerance, rtol=tolerance)


def test_non_contiguous_parameters_and_gradients_match_torch():
    rng = np.random.default_rng(8)
    values, grads = rng.standard_normal((4, 3)), [rng.standard_normal((3, 4)) for _ in range(3)]
    w = ds.from_numpy(values.copy().T).requires_grad_()  # a transposed view: the NumPy path updates it
    fused_w = ds.tensor(values.T.copy(), requires_grad=True)
    t = torch.tensor(values.T.copy(), requires_grad=True)
    opts = [optim.Adam([w], lr=0.1), optim.Adam([fused_w], lr=0.1, fused=True), torch.optim.Adam([t], lr=0.1)]
    for g in grads:
        w.grad, fused_w.grad = ds.from_numpy(g.T.copy().T), ds.from_numpy(g.T.copy().T)  # non-contiguous grads
        t.grad = torch.tensor(g)
        for opt in opts:
            opt.step()
    assert not w._data.flags.c_contiguous
    for ours in (w, fused_w):
        np.testing.assert_allclose(ours.detach().numpy(), t.detach().numpy(), atol=1e-12)


def test_fused_kernel_agrees_with_the_numpy_implementation_to_rounding():
    initial, grads = make_problem(2)
    runs = {}
    for fused in (True, False):
        params = [ds.tensor(a.copy(), requires_grad=True) for a in initial]
        opt = optim.AdamW(params, lr=0.01, amsgrad=True, fused=fused)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = None if g is None else ds.tensor(g)
            opt.step()
        runs[fused] = [p.detach().numpy() for p in params]
    for kernel, reference in zip(runs[True], runs[False]):
        np.testing.assert_allclose(kernel, reference, rtol=1e-12, atol=1e-14)


def test_float16_parameters_use_the_numpy_path_and_stay_close_to_float64():
    initial, grads = make_problem(3)
    half = [ds.tensor(a.astype(np.float16), requires_grad=True) for a in initial]
    full = [ds.tensor(a.copy(), requires_grad=True) for a in initial]
    opts = [optim.Adam(half, lr=0.01), optim.Adam(full, lr=0.01)]
    for step_grads in grads:
        for params, opt in zip((half, full), opts):
            for p, g in zip(params, step_grads):
                p.grad = None if g is None else ds.tensor(g).to(p.dtype)
            opt.step()
    for h, f in zip(half, full):
        assert h.dtype == ds.float16
        np.testing.assert_allclose(h.detach().numpy().astype(np.float64), f.detach().numpy(), atol=2e-2)


# -- how a step treats parameters ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("options", [{}, {"weight_decay": 0.1, "maximize": True, "momentum": 0.9}])
def test_step_updates_in_place_without_recording_a_graph(name, options):
    if name.startswith("Adam"):
        options = {k: v for k, v in options.items() if k != "momentum"}
    if name == "SGD" and options:
        options["nesterov"] = True
    w = ds.tensor(np.ones((2, 3)), requires_grad=True)
    array, version = w._data, w._version
    grad = np.full((2, 3), 0.5)
    w.grad = ds.tensor(grad.copy())
    opt = OPTIMIZERS[name][0]([w], lr=0.1, **options)
    for step in range(1, 3):
        opt.step()
        assert w._data is array and w.is_leaf and w.grad_fn is None and w.requires_grad
        assert w._version == version + step
        np.testing.assert_array_equal(w.grad.numpy(), grad)  # the gradient is read, never modified
    assert not np.allclose(w.detach().numpy(), 1.0)


def test_step_with_a_closure_returns_its_loss_and_runs_it_with_gradients_on():
    w = ds.tensor([2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with ds.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 4.0
    assert w.item() == 1.0


def test_zero_grad_sets_none_by_default_or_zeros():
    w = ds.ones(3, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros(3, dtype=np.float32))
    assert w.grad.dtype == ds.float32
    opt.zero_grad()
    assert w.grad is None


def test_a_parameter_without_a_gradient_keeps_its_value_and_gets_no_state():
    a, b = ds.ones(2, requires_grad=True), ds.ones(2, requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = ds.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.detach().numpy(), np.ones(2))
    assert list(opt.state_dict()["state"]) == [0]


def test_sgd_without_momentum_keeps_no_state_like_torch():
    w = ds.ones(2, requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    w.grad = ds.ones(2)
    opt.step()
    assert opt.state_dict()["state"] == {}


def test_an_optimizer_can_be_subclassed_with_one_update_method():
    class SignDescent(optim.Optimizer):
        def __init__(self, params=None, lr=0.1):
            super().__init__(params, {"lr": lr})

        def _update(self, param, grad, group):
            param._data -= group["lr"] * np.sign(grad)

    w = ds.tensor([1.0, -1.0], requires_grad=True)
    w.grad = ds.tensor([3.0, -0.5])
    SignDescent([w], lr=0.5).step()
    np.testing.assert_array_equal(w.detach().numpy(), [0.5, -0.5])


# -- checkpoints -----------------------------------------------------------------------------------


def _train(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else ds.tensor(g.copy())
        opt.step()


@pytest.mark.parametrize("name,options", [("SGD", {"momentum": 0.9, "nesterov": True}), ("Adam", {"amsgrad": True}),
                                          ("AdamW", {}), ("RMSprop", {"momentum": 0.5, "centered": True})])
@pytest.mark.parametrize("through", ["deepcopy", "pickle"])
def test_state_dict_round_trip_mid_training_continues_exactly(name, options, through):
    initial, grads = make_problem(4)
    cls = OPTIMIZERS[name][0]
    params = [ds.tensor(a.copy(), requires_grad=True) for a in initial]
    opt = cls(groups_of(params, 0.1), lr=0.05, **options)
    _train(opt, params, grads[:5])
    saved = copy.deepcopy(opt.state_dict()) if through == "deepcopy" else pickle.loads(pickle.dumps(opt.state_dict()))
    resumed_params = [ds.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    resumed = cls(groups_of(resumed_params, 0.7), lr=0.9, **options)  # hyper-parameters come from the state dict
    resumed.load_state_dict(saved)
    _train(opt, params, grads[5:])
    _train(resumed, resumed_params, grads[5:])
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())
    assert resumed.param_groups[0]["lr"] == 0.1 and resumed.param_groups[1]["lr"] == 0.05


def test_load_state_dict_copies_the_saved_tensors():
    w = ds.ones(2, requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    w.grad = ds.ones(2)
    opt.step()
    saved = opt.state_dict()
    other_w = ds.ones(2, requires_grad=True)
    other = optim.Adam([other_w], lr=0.1)
    other.load_state_dict(saved)
    assert other.state[other_w]["exp_avg"]._data is not saved["state"][0]["exp_avg"]._data
    assert other.state[other_w]["step"].dtype == ds.float32


@pytest.mark.parametrize("name,options", [("SGD", {"momentum": 0.9}), ("Adam", {"amsgrad": True}),
                                          ("RMSprop", {"centered": True, "momentum": 0.3})])
def test_a_torch_state_dict_loads_and_training_continues_like_torch(name, options):
    initial, grads = make_problem(5)
    run = Run(name, initial, options)
    for t in range(5):
        run.step(grads[t])
    run.ds_opt.load_state_dict(run.torch_opt.state_dict())  # torch tensors in, dslearn tensors kept
    assert all(isinstance(v, ds.Tensor) for s in run.ds_opt.state.values() for v in s.values())
    for t in range(5, STEPS):
        run.step(grads[t])
    run.assert_same()


def test_load_state_dict_casts_state_to_the_parameter_dtype():
    w64 = ds.ones(2, dtype=ds.float64, requires_grad=True)
    opt64 = optim.Adam([w64])
    w64.grad = ds.ones(2, dtype=ds.float64)
    opt64.step()
    w32 = ds.ones(2, requires_grad=True)
    opt32 = optim.Adam([w32])
    opt32.load_state_dict(opt64.state_dict())
    assert opt32.state[w32]["exp_avg"].dtype == ds.float32


# -- created before its parameters -----------------------------------------------------------------


def test_optimizer_created_with_only_a_learning_rate_binds_later_and_matches_torch():
    initial, grads = make_problem(6)
    opt = optim.Adam(0.01)
    assert not opt.is_bound and opt.defaults["lr"] == 0.01
    params = [ds.tensor(a.copy(), requires_grad=True) for a in initial]
    assert opt.bind(params) is opt and opt.is_bound
    torch_params = [torch.tensor(a.copy(), requires_grad=True) for a in initial]
    torch_opt = torch.optim.Adam(torch_params, lr=0.01)
    for step_grads in grads:
        for p, q, g in zip(params, torch_params, step_grads):
            p.grad, q.grad = (None, None) if g is None else (ds.tensor(g), torch.tensor(g))
        opt.step()
        torch_opt.step()
    for p, q in zip(params, torch_params):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("action", ["step", "zero_grad", "state_dict"])
def test_using_an_unbound_optimizer_says_how_it_was_created_and_what_to_do(action):
    opt = optim.Adam(0.01)
    message = "Adam has no parameters yet: it was created as Adam(lr=0.01); call .bind(params) first"
    with pytest.raises(RuntimeError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        getattr(opt, action)()


def test_unbound_message_lists_the_hyperparameters_that_were_given():
    with pytest.raises(RuntimeError, match=r"created as SGD\(lr=0\.1, momentum=0\.9\)"):
        optim.SGD(0.1, momentum=0.9).step()
    with pytest.raises(RuntimeError, match=r"created as AdamW\(lr=0\.001\)"):
        optim.AdamW().load_state_dict({"state": {}, "param_groups": []})


def test_learning_rate_may_be_the_second_positional_argument_as_in_torch():
    w = ds.ones(2, requires_grad=True)
    assert optim.Adam([w], 0.01).param_groups[0]["lr"] == 0.01
    assert optim.SGD(params=[ds.ones(1, requires_grad=True)], lr=0.2).param_groups[0]["lr"] == 0.2


def test_add_param_group_binds_an_unbound_optimizer():
    opt = optim.SGD(0.1, momentum=0.9)
    opt.add_param_group({"params": [ds.ones(2, requires_grad=True)], "lr": 0.5})
    assert opt.is_bound and opt.param_groups[0]["lr"] == 0.5 and opt.param_groups[0]["momentum"] == 0.9


def test_add_param_group_to_a_bound_optimizer_trains_the_new_group():
    a, b = ds.ones(1, requires_grad=True), ds.ones(1, requires_grad=True)
    opt = optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": b, "lr": 0.5})
    a.grad, b.grad = ds.ones(1), ds.ones(1)
    opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [0.9, 0.5], rtol=1e-6)


def test_repr_lists_groups_or_says_unbound():
    assert "no parameters yet" in repr(optim.RMSprop(0.01))
    text = repr(optim.SGD([ds.ones(1, requires_grad=True)], lr=0.1))
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "lr: 0.1" in text


# -- errors ----------------------------------------------------------------------------------------


def test_learning_rate_given_twice_is_an_error():
    with pytest.raises(TypeError, match="learning rate twice"):
        optim.Adam(0.01, lr=0.1)


def test_binding_twice_is_an_error():
    opt = optim.Adam([ds.ones(1, requires_grad=True)])
    with pytest.raises(RuntimeError, match="already has parameters"):
        opt.bind([ds.ones(1, requires_grad=True)])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_empty_parameter_list_is_an_error(name):
    with pytest.raises(ValueError, match="empty parameter list"):
        OPTIMIZERS[name][0]([])


def test_parameter_in_two_groups_is_an_error():
    w = ds.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)


def test_same_parameter_twice_in_a_group_is_an_error():
    w = ds.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="same parameter twice"):
        optim.SGD([w, w], lr=0.1)


def test_non_leaf_parameter_is_an_error():
    w = ds.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.Adam([w * 2])


@pytest.mark.parametrize("params,match", [
    ([np.ones(2)], "can only optimize Tensors"),
    ([ds.tensor([1, 2])], "floating point"),
    ({ds.ones(1, requires_grad=True)}, "not a set"),
])
def test_bad_parameters_are_type_errors(params, match):
    with pytest.raises(TypeError, match=match):
        optim.SGD(params, lr=0.1)


def test_a_single_tensor_instead_of_a_list_is_an_error():
    with pytest.raises(TypeError, match="wrap it in a list"):
        optim.SGD(ds.ones(2, requires_grad=True), lr=0.1)


def test_bad_parameter_groups_are_errors():
    opt = optim.SGD([ds.ones(1, requires_grad=True)], lr=0.1)
    with pytest.raises(TypeError, match="must be a dict"):
        opt.add_param_group([ds.ones(1, requires_grad=True)])
    with pytest.raises(ValueError, match="no 'params' key"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(ValueError, match="invalid learning rate"):
        opt.add_param_group({"params": [ds.ones(1, requires_grad=True)], "lr": -1.0})


@pytest.mark.parametrize("name,options,match", [
    ("SGD", {"lr": -0.1}, "invalid learning rate"),
    ("Adam", {"lr": -1e-3}, "invalid learning rate"),
    ("RMSprop", {"lr": float("nan")}, "invalid learning rate"),
    ("SGD", {"momentum": -0.5}, "invalid momentum"),
    ("RMSprop", {"momentum": -0.5}, "invalid momentum"),
    ("SGD", {"weight_decay": -1.0}, "invalid weight_decay"),
    ("AdamW", {"weight_decay": -1.0}, "invalid weight_decay"),
    ("Adam", {"betas": (1.0, 0.999)}, "beta parameter at index 0"),
    ("Adam", {"betas": (0.9, -0.1)}, "beta parameter at index 1"),
    ("AdamW", {"betas": (0.9,)}, "must be a pair"),
    ("Adam", {"eps": -1e-8}, "invalid epsilon"),
    ("RMSprop", {"eps": -1e-8}, "invalid epsilon"),
    ("RMSprop", {"alpha": -0.1}, "invalid alpha"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "Nesterov momentum requires"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires"),
])
def test_out_of_range_hyperparameters_are_errors(name, options, match):
    with pytest.raises(ValueError, match=match):
        OPTIMIZERS[name][0]([ds.ones(1, requires_grad=True)], **options)
    with pytest.raises(ValueError, match=match):  # also when the optimizer is created unbound
        OPTIMIZERS[name][0](**options)


def test_fused_adam_refuses_parameters_the_kernel_cannot_take():
    w = ds.ones(2, dtype=ds.float16, requires_grad=True)
    w.grad = ds.ones(2, dtype=ds.float16)
    with pytest.raises(RuntimeError, match="fused=True.*float16"):
        optim.Adam([w], fused=True).step()


def _adam_with_state(*group_sizes):
    groups = [{"params": [ds.ones(1, requires_grad=True) for _ in range(n)]} for n in group_sizes]
    return optim.Adam(groups)


def test_load_state_dict_with_a_different_number_of_groups_is_an_error():
    with pytest.raises(ValueError, match="2 parameter groups but the optimizer has 1"):
        _adam_with_state(2).load_state_dict(_adam_with_state(1, 1).state_dict())


def test_load_state_dict_with_a_group_of_another_size_is_an_error():
    with pytest.raises(ValueError, match="parameter group 0 has 3 parameters in the state dict but 2"):
        _adam_with_state(2).load_state_dict(_adam_with_state(3).state_dict())


def test_load_state_dict_with_state_for_an_unknown_parameter_is_an_error():
    saved = _adam_with_state(1).state_dict()
    saved["state"][7] = {"step": ds.tensor(1.0)}
    with pytest.raises(ValueError, match="parameter id 7"):
        _adam_with_state(1).load_state_dict(saved)


def test_optimizers_without_a_cuda_path_refuse_gpu_parameters():
    class DeviceArray:  # stands in for a CUDA device array, which RMSprop cannot update
        dtype = np.dtype(np.float32)
        shape = (2,)
        device = ds.device("cuda:0")

    with pytest.raises(TypeError, match="lives on cuda:0; RMSprop updates CPU tensors only"):
        optim.RMSprop([ds.Tensor._make(DeviceArray())], lr=0.1)
