"""Module mechanics checked against torch.nn: registration, traversal, modes, dtype moves, state dicts,
printing, containers and hooks (forward, pre-forward and full backward)."""

from __future__ import annotations

import contextlib
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as tnn

import dslearn as ds
import dslearn.nn as nn
from dslearn.nn import Parameter

# -- helpers ----------------------------------------------------------------------------------------


def copy_weights(ds_module: nn.Module, torch_module: tnn.Module) -> None:
    """Load torch's state into the dslearn module (this also checks that the keys agree)."""
    ds_module.load_state_dict({k: v.detach().numpy().copy() for k, v in torch_module.state_dict().items()})


def as_torch(t: ds.Tensor | None):
    return None if t is None else torch.from_numpy(np.array(t.detach().numpy()))


def make_block(lib, ones, zeros):
    """The same small module written against either library (so that reprs and names agree)."""

    class Block(lib.Module):
        def __init__(self):
            super().__init__()
            self.fc = lib.Linear(4, 3)
            self.act = lib.ReLU()
            self.register_buffer("scale", ones(3))
            self.register_buffer("scratch", zeros(2), persistent=False)

        def forward(self, x):
            return self.act(self.fc(x)) * self.scale

    return Block()


def build_model(lib, ones, zeros):
    return lib.Sequential(OrderedDict(block=make_block(lib, ones, zeros),
                                      head=lib.ModuleList([lib.Linear(3, 2), lib.Tanh()]),
                                      extra=lib.ModuleDict({"a": lib.Linear(2, 2), "b": lib.Identity()})))


def torch_model():
    return build_model(tnn, torch.ones, torch.zeros)


def ds_model():
    return build_model(nn, ds.ones, ds.zeros)


# -- Parameter ----------------------------------------------------------------------------------------


def test_parameter_is_a_leaf_tensor_sharing_memory_and_requiring_grad():
    data = ds.zeros(3)
    p = Parameter(data)
    assert isinstance(p, ds.Tensor) and p.requires_grad and p.is_leaf
    data._data[0] = 5.0
    assert p.tolist()[0] == 5.0
    assert not Parameter(ds.zeros(2), requires_grad=False).requires_grad
    assert Parameter().shape == (0,)


def test_parameter_repr_matches_torch():
    ours = repr(Parameter(ds.tensor([1.0, 2.0])))
    theirs = repr(tnn.Parameter(torch.tensor([1.0, 2.0])))
    assert ours == theirs


def test_parameter_rejects_non_tensor_data_and_integer_grad():
    with pytest.raises(TypeError, match="Parameter: data must be a Tensor"):
        Parameter([1.0, 2.0])
    with pytest.raises(RuntimeError, match="only floating point"):
        Parameter(ds.tensor([1, 2]))


def test_parameter_survives_deepcopy_and_pickle():
    p = Parameter(ds.tensor([1.0, 2.0]))
    for clone in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert type(clone) is Parameter and clone.requires_grad and clone.tolist() == [1.0, 2.0]


# -- registration and traversal ----------------------------------------------------------------------------


def test_named_parameters_buffers_and_modules_match_torch():
    ours, theirs = ds_model(), torch_model()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [n for n, _ in ours.block.named_buffers(recurse=False)] == ["scale", "scratch"]
    assert list(ours.block.parameters(recurse=False)) == []
    assert [n for n, _ in ours.block.fc.named_parameters(prefix="p")] == ["p.weight", "p.bias"]
    assert len(list(ours.modules())) == len(list(theirs.modules()))
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())


def test_shared_parameters_and_modules_are_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as torch: every path


def test_setattr_registers_and_reassignment_moves_between_registries():
    m = nn.Module()
    m.w = Parameter(ds.ones(2))
    m.child = nn.Linear(2, 2)
    m.plain = 3
    assert list(m._parameters) == ["w"] and list(m._modules) == ["child"] and m.plain == 3
    m.w = None  # a parameter slot may be emptied
    assert m._parameters["w"] is None and m.w is None
    m.child = Parameter(ds.zeros(1))  # now a parameter, no longer a module
    assert "child" not in m._modules and "child" in m._parameters
    del m.child
    assert not hasattr(m, "child")


def test_getattr_reports_the_missing_attribute():
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'wieght'"):
        nn.Linear(2, 2).wieght  # noqa: B018


@pytest.mark.parametrize("action, error, message", [
    (lambda m: setattr(m, "weight", ds.ones(2)), TypeError, "cannot assign 'Tensor' as parameter 'weight'"),
    (lambda m: m.register_buffer("a.b", ds.ones(1)), KeyError, "cannot contain"),
    (lambda m: m.register_buffer("", ds.ones(1)), KeyError, "cannot be an empty string"),
    (lambda m: m.register_buffer("weight", ds.ones(1)), KeyError, "attribute 'weight' already exists"),
    (lambda m: m.register_buffer("buf", [1.0]), TypeError, "cannot assign 'list' object to buffer 'buf'"),
    (lambda m: m.register_parameter("p", ds.ones(1)), TypeError, "cannot assign 'Tensor' object to parameter"),
    (lambda m: m.register_parameter("p", Parameter(ds.ones(1)) * 2), TypeError, "to parameter 'p'"),
    (lambda m: m.add_module("sub", 3), TypeError, "int is not a Module subclass"),
    (lambda m: m.add_module(1, nn.ReLU()), TypeError, "name should be a string"),
    (lambda m: m.train("yes"), ValueError, "mode is expected to be a bool"),
    (lambda m: m.to(ds.int64), TypeError, "only accepts floating point dtypes"),
    (lambda m: m.forward_unknown(), AttributeError, "no attribute 'forward_unknown'"),
])
def test_registration_errors(action, error, message):
    with pytest.raises(error, match=message):
        action(nn.Linear(2, 2))


def test_non_leaf_parameter_is_rejected():
    m = nn.Module()
    fake = Parameter(ds.ones(1))
    fake._ctx = (Parameter(ds.ones(1)) * 2)._ctx
    with pytest.raises(ValueError, match="non-leaf"):
        m.register_parameter("p", fake)


@pytest.mark.parametrize("assign", [
    lambda m: setattr(m, "w", Parameter(ds.ones(1))),
    lambda m: setattr(m, "child", nn.ReLU()),
    lambda m: m.register_buffer("b", ds.ones(1)),
    lambda m: m.register_parameter("p", None),
])
def test_assignment_before_init_is_an_error(assign):
    class Broken(nn.Module):
        def __init__(self):
            assign(self)

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) call"):
        Broken()


def test_registered_slots_only_accept_their_kind():
    model = nn.Sequential(nn.ReLU())
    model.register_buffer("stats", ds.zeros(2))
    with pytest.raises(TypeError, match="cannot assign 'int' as child module '0'"):
        setattr(model, "0", 3)
    with pytest.raises(TypeError, match="cannot assign 'str' as buffer 'stats'"):
        model.stats = "zeros"
    model.stats = ds.ones(2)
    assert model.state_dict()["stats"].tolist() == [1.0, 1.0]
    setattr(model, "0", None)
    assert model._modules["0"] is None and list(model.children()) == []


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(ds.ones(1))


def test_get_submodule_and_dir():
    model = ds_model()
    assert model.get_submodule("head.0") is model.head[0]
    assert model.get_submodule("") is model
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        model.get_submodule("block.nope")
    assert {"fc", "act", "scale"} <= set(dir(model.block))


# -- modes and bulk changes ----------------------------------------------------------------------------------


def test_train_and_eval_reach_every_descendant():
    model = ds_model().eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_apply_visits_children_before_parents_like_torch():
    ours, theirs = [], []
    ds_model().apply(lambda m: ours.append(type(m).__name__))
    torch_model().apply(lambda m: theirs.append(type(m).__name__))
    assert ours == theirs


def test_to_dtype_keeps_parameter_identity_and_casts_grads_but_not_integer_buffers():
    model = nn.Sequential(nn.Linear(2, 2))
    model.register_buffer("count", ds.tensor(3))
    weight = model[0].weight
    model(ds.ones(1, 2)).sum().backward()
    assert model.to(ds.float64) is model
    assert model[0].weight is weight and weight.dtype == ds.float64 and weight.grad.dtype == ds.float64
    assert model.count.dtype == ds.int64
    model.float()
    assert weight.dtype == ds.float32
    model.to(ds.zeros(1, dtype=ds.float64))
    assert weight.dtype == ds.float64
    model.to("cpu", dtype=ds.float32)
    assert weight.dtype == ds.float32 and model.cpu() is model
    assert model.double()[0].bias.dtype == ds.float64


def test_zero_grad_and_requires_grad():
    model = nn.Linear(3, 1)
    model(ds.ones(2, 3)).sum().backward()
    model.zero_grad(set_to_none=False)
    assert model.weight.grad.tolist() == [[0.0, 0.0, 0.0]]
    model.zero_grad()
    assert model.weight.grad is None and model.bias.grad is None
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    assert model.num_parameters(only_trainable=True) == 0 and model.num_parameters() == 4


# -- state dicts ---------------------------------------------------------------------------------------------------


def test_state_dict_keys_order_and_values_match_torch():
    ours, theirs = ds_model(), torch_model()
    copy_weights(ours, theirs)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert isinstance(ours_sd, OrderedDict)
    assert list(ours_sd) == list(theirs_sd)
    for key in theirs_sd:
        np.testing.assert_array_equal(ours_sd[key].numpy(), theirs_sd[key].numpy())


def test_state_dict_values_share_memory_and_are_detached_unless_keep_vars():
    model = nn.Linear(2, 2)
    sd = model.state_dict()
    assert not sd["weight"].requires_grad
    sd["weight"]._data[0, 0] = 42.0
    assert model.weight.tolist()[0][0] == 42.0
    assert model.state_dict(keep_vars=True)["weight"] is model.weight
    assert list(model.state_dict(prefix="enc.")) == ["enc.weight", "enc.bias"]


def test_load_state_dict_copies_into_existing_tensors():
    source, target = ds_model(), ds_model()
    weight = target.block.fc.weight
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert target.block.fc.weight is weight and weight.requires_grad and weight.is_leaf
    np.testing.assert_array_equal(weight.detach().numpy(), source.block.fc.weight.detach().numpy())
    source.block.fc.weight._data[...] = 0  # a copy, not shared memory
    assert weight.detach().numpy().any()


def test_load_state_dict_casts_values_to_the_parameter_dtype():
    model = nn.Linear(2, 1)
    model.load_state_dict({"weight": np.array([[1.0, 2.0]]), "bias": ds.tensor([0.5], dtype=ds.float64)})
    assert model.weight.dtype == ds.float32 and model.weight.tolist() == [[1.0, 2.0]]


def test_load_state_dict_strict_reports_missing_and_unexpected_keys_like_torch():
    sd = ds_model().state_dict()
    del sd["block.fc.bias"]
    sd["block.fc.gamma"] = ds.zeros(1)
    with pytest.raises(RuntimeError) as ours:
        ds_model().load_state_dict(sd)
    with pytest.raises(RuntimeError) as theirs:
        torch_model().load_state_dict({k: torch.zeros(v.shape) for k, v in sd.items()})
    assert str(ours.value) == str(theirs.value)
    assert 'Missing key(s) in state_dict: "block.fc.bias".' in str(ours.value)


def test_load_state_dict_non_strict_returns_the_mismatched_keys():
    sd = ds_model().state_dict()
    del sd["head.0.weight"]
    sd["surplus"] = ds.zeros(1)
    ours = ds_model().load_state_dict(sd, strict=False)
    theirs = torch_model().load_state_dict({k: torch.zeros(v.shape) for k, v in sd.items()}, strict=False)
    assert ours.missing_keys == theirs.missing_keys == ["head.0.weight"]
    assert ours.unexpected_keys == theirs.unexpected_keys == ["surplus"]


def test_size_mismatch_is_an_error_even_when_not_strict():
    class Net(nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.fc = nn.Linear(hidden, 10)

    with pytest.raises(RuntimeError) as error:
        Net(64).load_state_dict(Net(128).state_dict(), strict=False)
    assert str(error.value) == ("Error(s) in loading state_dict for Net:\n\tsize mismatch for fc.weight: copying a "
                                "param with shape (10, 128) from checkpoint, the shape in current model is (10, 64).")


def test_load_state_dict_rejects_values_that_are_not_tensors():
    with pytest.raises(RuntimeError, match='parameter named "bias", expected a Tensor or NumPy array'):
        nn.Linear(2, 1).load_state_dict({"weight": ds.zeros(1, 2), "bias": [0.0]})
    with pytest.raises(TypeError, match="expected a dict"):
        nn.Linear(2, 1).load_state_dict([("weight", ds.zeros(1, 2))])


def test_non_persistent_buffers_are_not_saved_nor_expected():
    model = make_block(nn, ds.ones, ds.zeros)
    assert "scratch" not in model.state_dict()
    assert model.load_state_dict(model.state_dict()).missing_keys == []


# -- printing -----------------------------------------------------------------------------------------------------


def test_repr_of_nested_containers_matches_torch():
    assert repr(ds_model()) == repr(torch_model())


def test_repr_with_multiline_extra_repr_matches_torch():
    def make(base, linear):
        class Custom(base):
            def __init__(self):
                super().__init__()
                self.inner = linear(2, 2)

            def extra_repr(self):
                return "first=1\nsecond=2"

        return Custom()

    assert repr(make(nn.Module, nn.Linear)) == repr(make(tnn.Module, tnn.Linear))


def test_module_list_repr_groups_repeated_layers_like_torch():
    ours = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)] + [nn.ReLU(), nn.ReLU(), nn.Linear(2, 2)])
    theirs = tnn.ModuleList([tnn.Linear(2, 2) for _ in range(3)] + [tnn.ReLU(), tnn.ReLU(), tnn.Linear(2, 2)])
    assert repr(ours) == repr(theirs)
    assert repr(nn.ModuleList()) == repr(tnn.ModuleList())


# -- containers ------------------------------------------------------------------------------------------------------


def test_sequential_indexing_slicing_and_editing_match_torch():
    def build(lib):
        return lib.Sequential(lib.Linear(2, 3), lib.ReLU(), lib.Linear(3, 4), lib.Tanh())

    ours, theirs = build(nn), build(tnn)
    assert len(ours) == 4 and isinstance(ours[-2], nn.Linear) and ours[-2] is list(ours)[2]
    assert repr(ours[1:3]) == repr(theirs[1:3]) and isinstance(ours[1:3], nn.Sequential)
    for seq, lib in ((ours, nn), (theirs, tnn)):
        seq.append(lib.Sigmoid())
        seq.insert(1, lib.Identity())
        seq[0] = lib.Linear(2, 5)
        del seq[2]
        del seq[-1:]
    assert repr(ours) == repr(theirs)
    with pytest.raises(IndexError, match="index 9 is out of range"):
        ours[9]  # noqa: B018
    with pytest.raises(IndexError, match="out of range"):
        ours.insert(10, nn.ReLU())
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        ours.insert(0, 3)
    assert len(nn.Sequential().extend([nn.ReLU(), nn.Tanh()])) == 2


def test_sequential_runs_layers_in_order():
    seq = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    x = ds.randn(5, 3)
    np.testing.assert_allclose(seq(x).detach().numpy(), seq[0](x).relu().detach().numpy())


def test_module_list_operations_match_torch():
    ours = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    theirs = tnn.ModuleList([tnn.ReLU(), tnn.Tanh()])
    for lst, lib in ((ours, nn), (theirs, tnn)):
        lst.append(lib.Sigmoid())
        lst += [lib.Identity()]
        lst.insert(0, lib.Linear(1, 1))
        lst[1] = lib.GELU()
        lst.pop(2)
        del lst[0]
    assert repr(ours) == repr(theirs) and len(ours) == len(theirs)
    assert repr(ours[1:]) == repr(theirs[1:])
    with pytest.raises(TypeError, match="expected an iterable"):
        ours.extend(nn.ReLU())
    with pytest.raises(NotImplementedError):
        ours(ds.ones(1))


def test_module_dict_operations_match_torch():
    ours = nn.ModuleDict({"a": nn.ReLU()})
    theirs = tnn.ModuleDict({"a": tnn.ReLU()})
    for d, lib in ((ours, nn), (theirs, tnn)):
        d["b"] = lib.Tanh()
        d.update([("c", lib.Linear(1, 1))])
        d.pop("a")
    assert repr(ours) == repr(theirs)
    assert list(ours) == list(ours.keys()) == ["b", "c"] and "b" in ours and len(ours) == 2
    assert [type(m).__name__ for m in ours.values()] == ["Tanh", "Linear"]
    del ours["b"]
    assert list(ours.items())[0][0] == "c"
    ours.clear()
    assert len(ours) == 0
    with pytest.raises(ValueError, match="should be a \\(key, module\\) pair"):
        ours.update(["abc"])


# -- forward hooks ------------------------------------------------------------------------------------------------


def test_forward_hooks_run_in_order_and_can_replace_inputs_and_outputs():
    for lib, tensor in ((nn, ds.ones), (tnn, torch.ones)):
        layer, log = lib.Identity(), []
        layer.register_forward_pre_hook(lambda m, args, log=log: log.append("pre1"))
        layer.register_forward_pre_hook(lambda m, args, log=log: log.append("pre0"), prepend=True)
        layer.register_forward_pre_hook(lambda m, args: args[0] * 2)
        layer.register_forward_hook(lambda m, args, out, log=log: log.append(("fwd", float(args[0].sum()))))
        layer.register_forward_hook(lambda m, args, out: out + 1)
        out = layer(tensor(3))
        assert log == ["pre0", "pre1", ("fwd", 6.0)]
        assert out.tolist() == [3.0, 3.0, 3.0]


def test_hooks_with_kwargs_see_keyword_arguments():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            return x * factor

    m, seen = Scale(), []
    m.register_forward_pre_hook(lambda mod, args, kwargs: (args, {"factor": kwargs["factor"] * 10}),
                                with_kwargs=True)
    m.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs["factor"]), with_kwargs=True)
    assert m(ds.ones(1), factor=2.0).tolist() == [20.0] and seen == [20.0]
    m.register_forward_pre_hook(lambda mod, args, kwargs: "bad", with_kwargs=True)
    with pytest.raises(RuntimeError, match="must return None or"):
        m(ds.ones(1), factor=2.0)


def test_hook_handles_remove_the_hook():
    layer, calls = nn.Identity(), []
    handle = layer.register_forward_hook(lambda m, a, o: calls.append(1))
    with layer.register_forward_pre_hook(lambda m, a: calls.append(0)):
        layer(ds.ones(1))
    handle.remove()
    layer(ds.ones(1))
    assert calls == [0, 1]
    assert not layer._forward_hooks and not layer._forward_pre_hooks
    with pytest.raises(TypeError, match="expected a callable"):
        layer.register_forward_hook(3)


# -- full backward hooks ------------------------------------------------------------------------------------------


def _assert_grads_match(ours: tuple, theirs: tuple) -> None:
    """Tuples of gradients equal; where we report None, torch must report None or zeros."""
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs):
        if mine is None:
            assert expected is None or not expected.any()
        else:
            np.testing.assert_allclose(mine.numpy(), expected.numpy(), atol=1e-10)


def _mlp_pair():
    theirs = tnn.Sequential(tnn.Linear(4, 5), tnn.Tanh(), tnn.Linear(5, 3), tnn.Sigmoid()).double()
    ours = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Sigmoid()).double()
    copy_weights(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_full_backward_hooks_match_torch_on_every_layer_of_an_mlp(input_requires_grad):
    ours, theirs = _mlp_pair()
    calls = {"ours": [], "theirs": []}
    for key, model in (("ours", ours), ("theirs", theirs)):
        for name, layer in model.named_children():
            layer.register_full_backward_hook(
                lambda m, gi, go, name=name, key=key: calls[key].append((name, gi, go)))
    x = np.random.default_rng(0).standard_normal((6, 4))
    upstream = np.random.default_rng(1).standard_normal((6, 3))
    x_ours = ds.tensor(x, requires_grad=input_requires_grad)
    x_theirs = torch.tensor(x, requires_grad=input_requires_grad)
    with pytest.warns(UserWarning) if not input_requires_grad else contextlib.nullcontext():
        theirs(x_theirs).backward(torch.from_numpy(upstream))
    ours(x_ours).backward(ds.tensor(upstream))
    assert [c[0] for c in calls["ours"]] == [c[0] for c in calls["theirs"]] == ["3", "2", "1", "0"]
    for (_, gi, go), (_, tgi, tgo) in zip(calls["ours"], calls["theirs"]):
        _assert_grads_match(gi, tgi)
        _assert_grads_match(go, tgo)


def test_backward_hook_sees_grads_of_several_inputs_and_outputs_like_torch():
    def build(base):
        class Mix(base):
            def forward(self, a, b, scale):
                return a * b * scale, a + 1, b.sum()

        return Mix()

    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    results = []
    for module, make in ((build(nn.Module), ds.tensor), (build(tnn.Module), torch.tensor)):
        seen = []
        module.register_full_backward_hook(lambda m, gi, go, seen=seen: seen.append((gi, go)))
        ta, tb = make(a, requires_grad=True), make(b, requires_grad=True)
        first, _unused, third = module(ta, tb, 2.0)
        (first.sum() + 3 * third).backward()
        results.append(seen)
    (ours,), (theirs,) = results
    assert len(ours[0]) == 3 and ours[0][2] is None and ours[1][1] is None
    _assert_grads_match(ours[0], theirs[0])
    _assert_grads_match(ours[1], theirs[1])


def test_backward_hook_can_replace_the_input_gradient_like_torch():
    grads = []
    for lib, make in ((nn, ds.tensor), (tnn, torch.tensor)):
        layer = lib.Tanh()
        layer.register_full_backward_hook(lambda m, gi, go: (gi[0] * 10,))
        x = make(np.array([0.5, -1.0]), requires_grad=True)
        layer(x * 1.0).sum().backward()
        grads.append(np.array(x.grad.tolist()))
    np.testing.assert_allclose(grads[0], grads[1])


def test_backward_hook_replacement_errors():
    layer = nn.Tanh()
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
    with pytest.raises(RuntimeError, match="returned 2 grad_input values, expected 1"):
        layer(ds.ones(2, requires_grad=True)).sum().backward()

    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    add = Add()
    add.register_full_backward_hook(lambda m, gi, go: (gi[0] * 2, gi[1] * 2))
    with pytest.raises(RuntimeError, match="only when a single input receives a gradient"):
        add(ds.ones(2, requires_grad=True), ds.ones(2, requires_grad=True)).sum().backward()
    first_layer = nn.Linear(2, 2)  # its input does not require grad: there is no grad_input to replace
    first_layer.register_full_backward_hook(lambda m, gi, go: (ds.ones(1, 2),))
    with pytest.raises(RuntimeError, match="this call has 0"):
        first_layer(ds.ones(1, 2)).sum().backward()


def test_backward_hook_fires_once_per_call_and_again_with_retain_graph():
    layer, count = nn.Linear(2, 2), []
    layer.register_full_backward_hook(lambda m, gi, go: count.append(1))
    x = ds.ones(1, 2, requires_grad=True)
    out = layer(x) + layer(x)  # two calls: two firings
    out.sum().backward(retain_graph=True)
    assert len(count) == 2
    out.sum().backward()
    assert len(count) == 4


def test_backward_hook_is_skipped_under_no_grad_and_after_removal():
    layer, count = nn.Linear(2, 2), []
    handle = layer.register_full_backward_hook(lambda m, gi, go: count.append(1))
    with ds.no_grad():
        assert not layer(ds.ones(1, 2, requires_grad=True)).requires_grad
    handle.remove()
    layer(ds.ones(1, 2, requires_grad=True)).sum().backward()
    assert count == []


def test_backward_hook_captures_per_layer_output_gradients_for_parameter_gradients():
    """What DP-SGD relies on: activations (forward hook) and output grads (backward hook) give weight grads."""
    layer = nn.Linear(3, 2).double()
    acts, outs = [], []
    layer.register_forward_hook(lambda m, args, out: acts.append(args[0].detach()))
    layer.register_full_backward_hook(lambda m, gi, go: outs.append(go[0]))
    x = ds.tensor(np.random.default_rng(3).standard_normal((5, 3)))
    (layer(x) ** 2).sum().backward()
    per_sample = np.einsum("ni,nj->nij", outs[0].numpy(), acts[0].numpy())
    np.testing.assert_allclose(per_sample.sum(0), layer.weight.grad.numpy(), atol=1e-12)


def test_models_survive_deepcopy_and_pickle_with_parameters_and_buffers():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    model(ds.ones(2, 4)).sum().backward()
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert repr(clone) == repr(model) and clone[0].weight.grad is not None
        assert isinstance(clone[0].weight, Parameter) and clone[0].weight is not model[0].weight
        for (name, a), (_, b) in zip(clone.state_dict().items(), model.state_dict().items()):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
