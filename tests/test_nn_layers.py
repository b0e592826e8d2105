"""Every dslearn.nn layer against its torch.nn twin: same weights, same float64 inputs -> same outputs,
input gradients, parameter gradients and buffers, in train and eval mode; plus reprs, state-dict keys,
layer-specific errors and the functional extras (silu, elu, one_hot)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
import dslearn.nn as nn
import dslearn.nn.functional as F

ATOL = 1e-6


def copy_weights(ours: nn.Module, theirs: tnn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})


def assert_close(ours: ds.Tensor, theirs: torch.Tensor, what: str, atol: float = ATOL) -> None:
    assert ours.shape == tuple(theirs.shape), f"{what}: shape {ours.shape} != torch {tuple(theirs.shape)}"
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=atol, rtol=1e-6, err_msg=what)


def run_and_compare(ours: nn.Module, theirs: tnn.Module, inputs: list[np.ndarray], training: bool = True,
                    steps: int = 1, seed: int = 0, grad_input: bool = True) -> None:
    """Drive both modules ``steps`` times on the same inputs; compare outputs, gradients and final state."""
    theirs.double().train(training)
    ours.double().train(training)
    copy_weights(ours, theirs)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        arrays = [a if step == 0 else a + rng.standard_normal(a.shape) if a.dtype.kind == "f" else a for a in inputs]
        wants = [grad_input and a.dtype.kind == "f" for a in arrays]
        ds_in = [ds.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
        torch_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, wants)]
        out, expected = ours(*ds_in), theirs(*torch_in)
        assert_close(out, expected, f"output at step {step}")
        if not expected.requires_grad:
            continue
        upstream = rng.standard_normal(expected.shape)
        out.backward(ds.tensor(upstream))
        expected.backward(torch.tensor(upstream))
        for i, (d, t) in enumerate(zip(ds_in, torch_in)):
            if wants[i]:
                assert_close(d.grad, t.grad, f"gradient of input {i} at step {step}")
        for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            if q.grad is None:
                assert p.grad is None or not p.grad.numpy().any(), name
            else:
                assert_close(p.grad, q.grad, f"gradient of {name} at step {step}")
        ours.zero_grad()
        theirs.zero_grad()
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key in theirs_state:
        assert_close(ours_state[key], theirs_state[key], f"state {key}")


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- activations and simple layers ------------------------------------------------------------------------------

SIMPLE = [
    ("ReLU", {}), ("ReLU", {"inplace": True}), ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}),
    ("GELU", {}), ("GELU", {"approximate": "tanh"}), ("Sigmoid", {}), ("Tanh", {}), ("Softplus", {}),
    ("Softplus", {"beta": 2.0, "threshold": 1.0}), ("SiLU", {}), ("ELU", {}), ("ELU", {"alpha": 0.5}),
    ("Softmax", {"dim": 1}), ("Softmax", {"dim": -1}), ("LogSoftmax", {"dim": 1}), ("Identity", {}),
    ("Flatten", {}), ("Flatten", {"start_dim": 0, "end_dim": 1}), ("Unflatten", {"dim": 2, "unflattened_size": (2, 2)}),
]


@pytest.mark.parametrize("name, kwargs", SIMPLE, ids=[f"{n}{k}" for n, k in SIMPLE])
def test_simple_layers_match_torch(name, kwargs):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(tnn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    x = randn(3, 5, 4) * 3
    if kwargs.get("inplace"):  # in-place layers need a non-leaf input
        ds_x, torch_x = ds.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        out, expected = ours(ds_x * 1.0), theirs(torch_x * 1.0)
        out.sum().backward()
        expected.sum().backward()
        assert_close(out, expected, "output")
        assert_close(ds_x.grad, torch_x.grad, "input gradient")
    else:
        run_and_compare(ours, theirs, [x])


def test_softmax_without_dim_uses_torchs_legacy_choice():
    x = randn(2, 3, 4)
    with pytest.warns(UserWarning, match="implicit dimension"):
        out = nn.Softmax()(ds.tensor(x))
    with pytest.warns(UserWarning):
        assert_close(out, tnn.Softmax()(torch.tensor(x)), "softmax")
    with pytest.warns(UserWarning):
        assert_close(nn.LogSoftmax()(ds.tensor(x[0])), tnn.LogSoftmax()(torch.tensor(x[0])), "log_softmax")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7,), (4, 7), (2, 3, 7)])
def test_linear_matches_torch(bias, shape):
    ours, theirs = nn.Linear(7, 5, bias=bias), tnn.Linear(7, 5, bias=bias)
    assert repr(ours) == repr(theirs)
    run_and_compare(ours, theirs, [randn(*shape)])


def test_linear_from_the_seed_document():
    out = ds.nn.Linear(784, 256)(ds.Tensor([1.0] * 784)).relu()
    assert out.shape == (256,) and out.dtype == ds.float32 and bool((out >= 0).all())


def test_linear_accepts_dtype_and_rejects_bad_inputs():
    assert nn.Linear(2, 3, dtype=ds.float64).weight.dtype == ds.float64
    with pytest.raises(ValueError, match="linear: input of shape \\(4, 3\\) does not match weight of shape \\(5, 2\\)"):
        nn.Linear(2, 5)(ds.ones(4, 3))


def test_unflatten_rejects_a_bad_size():
    with pytest.raises(TypeError, match="unflattened_size must be a tuple of ints"):
        nn.Unflatten(1, 6)


# -- functional extras --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ours, theirs", [(F.silu, TF.silu), (F.elu, TF.elu),
                                          (lambda x: F.elu(x, 0.3), lambda x: TF.elu(x, 0.3))])
def test_composite_activations_match_torch_including_large_inputs(ours, theirs):
    x = np.concatenate([randn(20) * 3, [0.0, 800.0, -800.0]])
    ds_x, torch_x = ds.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = ours(ds_x), theirs(torch_x)
    assert_close(out, expected, "output")
    out.sum().backward()
    expected.sum().backward()
    assert_close(ds_x.grad, torch_x.grad, "gradient")
    assert np.isfinite(ds_x.grad.numpy()).all()


@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.sampled_from([-1, 7, 9]))
def test_one_hot_matches_torch(labels, num_classes):
    ours = F.one_hot(ds.tensor(labels), num_classes)
    theirs = TF.one_hot(torch.tensor(labels), num_classes)
    assert ours.dtype == ds.int64
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_one_hot_keeps_leading_dimensions_and_rejects_bad_labels():
    assert F.one_hot(ds.tensor([[0, 1], [2, 0]]), 3).shape == (2, 2, 3)
    with pytest.raises(TypeError, match="one_hot: tensor must be an integer tensor"):
        F.one_hot(ds.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="class values must lie in \\[0, 2\\)"):
        F.one_hot(ds.tensor([0, 2]), 2)
    with pytest.raises(ValueError, match="class values must lie"):
        F.one_hot(ds.tensor([-1, 0]))
    with pytest.raises(ValueError, match="cannot infer num_classes"):
        F.one_hot(ds.tensor([], dtype=ds.int64))


# -- convolution and pooling --------------------------------------------------------------------------------------

CONV = [
    dict(kernel_size=3),
    dict(kernel_size=3, padding=1, bias=False),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=3, dilation=2, padding=2),
    dict(kernel_size=3, groups=2, padding=1),
    dict(kernel_size=3, padding=1, padding_mode="reflect"),
    dict(kernel_size=3, padding=(1, 2), padding_mode="replicate"),
    dict(kernel_size=3, padding=1, padding_mode="circular"),
    dict(kernel_size=4, padding="same"),
    dict(kernel_size=3, padding="same", dilation=2),
    dict(kernel_size=2, padding="valid"),
]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kwargs", CONV, ids=[str(k) for k in CONV])
def test_conv2d_matches_torch(kwargs):
    ours, theirs = nn.Conv2d(4, 6, **kwargs), tnn.Conv2d(4, 6, **kwargs)
    assert repr(ours) == repr(theirs)
    run_and_compare(ours, theirs, [randn(2, 4, 7, 6)])


@given(kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.integers(1, 2), padding=st.integers(0, 2),
       dilation=st.integers(1, 2), groups=st.sampled_from([1, 2]), bias=st.booleans(),
       padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_conv2d_matches_torch_over_random_settings(kernel, stride, padding, dilation, groups, bias, padding_mode):
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias,
                  padding_mode=padding_mode)
    run_and_compare(nn.Conv2d(2, 4, **kwargs), tnn.Conv2d(2, 4, **kwargs), [randn(2, 2, 6, 7)])


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=3), "must both be divisible by groups"),
    (dict(groups=0), "groups must be a positive integer"),
    (dict(padding_mode="mirror"), "padding_mode must be one of"),
    (dict(padding="full"), "padding must be a number, a pair, 'same' or 'valid'"),
    (dict(padding="same", stride=2), "not supported for strided convolutions"),
    (dict(kernel_size=(1, 2, 3)), "expected an int or a pair of ints"),
])
def test_conv2d_rejects_bad_settings(kwargs, message):
    kwargs = {"kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        nn.Conv2d(4, 8, **kwargs)


POOL = [
    ("MaxPool2d", dict(kernel_size=2)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("MaxPool2d", dict(kernel_size=(2, 3), stride=1, dilation=(2, 1), ceil_mode=True)),
    ("AvgPool2d", dict(kernel_size=2)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ("AvgPool2d", dict(kernel_size=3, stride=2, ceil_mode=True, divisor_override=4)),
    ("AdaptiveAvgPool2d", dict(output_size=1)),
    ("AdaptiveAvgPool2d", dict(output_size=(3, 2))),
    ("AdaptiveMaxPool2d", dict(output_size=(3, 4))),
    ("AdaptiveMaxPool2d", dict(output_size=1)),
]


@pytest.mark.parametrize("name, kwargs", POOL, ids=[f"{n}{k}" for n, k in POOL])
def test_pooling_layers_match_torch(name, kwargs):
    ours, theirs = getattr(nn, name)(**kwargs), getattr(tnn, name)(**kwargs)
    assert repr(ours) == repr(theirs)
    run_and_compare(ours, theirs, [randn(2, 3, 7, 8)])


@pytest.mark.parametrize("name, kwargs", [("MaxPool2d", dict(kernel_size=2, return_indices=True)),
                                          ("AdaptiveMaxPool2d", dict(output_size=3, return_indices=True))])
def test_max_pools_return_indices_like_torch(name, kwargs):
    x = randn(2, 3, 6, 6)
    (out, indices), (expected, expected_indices) = getattr(nn, name)(**kwargs)(ds.tensor(x)), \
        getattr(tnn, name)(**kwargs)(torch.tensor(x))
    assert_close(out, expected, "output")
    np.testing.assert_array_equal(indices.numpy(), expected_indices.numpy())


# -- normalisation ------------------------------------------------------------------------------------------------

NORM = [
    ("BatchNorm1d", (6,), dict(), (8, 6)),
    ("BatchNorm1d", (6,), dict(momentum=0.3, eps=1e-3), (8, 6, 5)),
    ("BatchNorm1d", (6,), dict(affine=False), (8, 6)),
    ("BatchNorm1d", (6,), dict(bias=False), (8, 6)),
    ("BatchNorm1d", (6,), dict(momentum=None), (8, 6)),
    ("BatchNorm2d", (3,), dict(), (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), dict(track_running_stats=False), (4, 3, 5, 5)),
    ("LayerNorm", (5,), dict(), (4, 3, 5)),
    ("LayerNorm", ((3, 5),), dict(eps=1e-3), (4, 3, 5)),
    ("LayerNorm", (5,), dict(elementwise_affine=False), (4, 5)),
    ("LayerNorm", (5,), dict(bias=False), (4, 5)),
    ("GroupNorm", (2, 6), dict(), (4, 6, 3, 3)),
    ("GroupNorm", (3, 6), dict(affine=False, eps=1e-3), (4, 6, 5)),
    ("GroupNorm", (3, 6), dict(bias=False), (4, 6, 5)),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name, args, kwargs, shape", NORM, ids=[f"{n}{k}{s}" for n, _, k, s in NORM])
def test_normalisation_layers_match_torch_over_several_steps(name, args, kwargs, shape, training):
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(tnn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    if ours.weight is not None:  # non-trivial affine parameters, so that their gradients matter
        with torch.no_grad():
            theirs.weight.copy_(torch.tensor(1 + randn(*theirs.weight.shape, seed=5) * 0.1))
            if theirs.bias is not None:
                theirs.bias.copy_(torch.tensor(randn(*theirs.bias.shape, seed=6)))
    run_and_compare(ours, theirs, [randn(*shape) * 2 + 1], training=training, steps=3)


def test_batchnorm_switches_from_batch_to_running_statistics_in_eval_mode():
    ours, theirs = nn.BatchNorm2d(3), tnn.BatchNorm2d(3)
    run_and_compare(ours, theirs, [randn(4, 3, 2, 2) * 3 + 2], training=True, steps=4)
    assert ours.num_batches_tracked.item() == 4
    run_and_compare(ours, theirs, [randn(2, 3, 2, 2, seed=1)], training=False, steps=1)


def test_batchnorm_checks_the_input_rank_and_moves_with_to():
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4D input, got 3D input"):
        nn.BatchNorm2d(3)(ds.ones(2, 3, 4))
    with pytest.raises(ValueError, match="BatchNorm1d: expected 2D or 3D input, got 4D input"):
        nn.BatchNorm1d(3)(ds.ones(2, 3, 4, 4))
    bn = nn.BatchNorm1d(3).double()
    assert bn.running_mean.dtype == ds.float64 and bn.num_batches_tracked.dtype == ds.int64


def test_batchnorm_reset_running_stats():
    bn = nn.BatchNorm1d(2)
    bn(ds.randn(5, 2) + 3)
    bn.reset_running_stats()
    assert bn.running_mean.tolist() == [0.0, 0.0] and bn.running_var.tolist() == [1.0, 1.0]
    assert bn.num_batches_tracked.item() == 0


def test_group_norm_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="num_channels \\(5\\) must be divisible by num_groups \\(2\\)"):
        nn.GroupNorm(2, 5)


# -- dropout and embedding ---------------------------------------------------------------------------------------


def test_dropout_is_the_identity_in_eval_mode():
    ours, theirs = nn.Dropout(0.7), tnn.Dropout(0.7)
    assert repr(ours) == repr(theirs)
    run_and_compare(ours, theirs, [randn(4, 5)], training=False)


def test_dropout_in_training_zeros_a_fraction_p_and_rescales_the_rest():
    x = ds.ones(200, 500)
    out = nn.Dropout(0.3)(x).numpy()
    kept = out != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.01)
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    assert nn.Dropout(0.0)(x).numpy().min() == 1.0


def test_dropout_gradient_is_the_mask_scaled_and_inplace_dropout_writes_its_input():
    x = ds.ones(50, 40, requires_grad=True)
    out = nn.Dropout(0.5)(x)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out.detach().numpy())
    hidden = x * 1.0
    assert nn.Dropout(0.5, inplace=True)(hidden) is hidden
    assert (hidden.detach().numpy() == 0).mean() == pytest.approx(0.5, abs=0.1)
    with pytest.raises(ValueError, match="probability has to be between 0 and 1, got 1.5"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("kwargs", [dict(), dict(padding_idx=1), dict(padding_idx=-2)])
def test_embedding_matches_torch(kwargs):
    ours, theirs = nn.Embedding(10, 4, **kwargs), tnn.Embedding(10, 4, **kwargs)
    assert repr(ours) == repr(theirs)
    assert ours.padding_idx == theirs.padding_idx
    if ours.padding_idx is not None:
        assert not ours.weight.detach().numpy()[ours.padding_idx].any()
    run_and_compare(ours, theirs, [np.array([[1, 2, 8], [8, 1, 0]])])


def test_embedding_from_pretrained_and_errors():
    table = np.arange(12.0).reshape(4, 3)
    frozen = nn.Embedding.from_pretrained(ds.tensor(table))
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(ds.tensor([3])).numpy(), table[[3]])
    assert nn.Embedding.from_pretrained(ds.tensor(table), freeze=False).weight.requires_grad
    with pytest.raises(ValueError, match="padding_idx 10 must be within"):
        nn.Embedding(10, 3, padding_idx=10)
    with pytest.raises(ValueError, match="embeddings must be 2-D"):
        nn.Embedding.from_pretrained(ds.ones(3))


# -- losses ----------------------------------------------------------------------------------------------------------

CLASS_WEIGHT = np.array([0.2, 1.0, 2.0, 0.5])


def _loss_cases():
    logits, labels = randn(6, 4), np.array([0, 3, 1, 1, 2, 3])
    spatial, spatial_labels = randn(2, 4, 3, 3), np.random.default_rng(1).integers(0, 4, (2, 3, 3))
    probs = np.random.default_rng(2).uniform(0.05, 0.95, (5, 3))
    binary = (np.random.default_rng(3).uniform(size=(5, 3)) > 0.5).astype(np.float64)
    log_p = np.log(np.random.default_rng(4).dirichlet(np.ones(4), 3))
    q = np.random.default_rng(5).dirichlet(np.ones(4), 3)
    w = np.array([1.0, 2.0, 0.5])
    return [
        ("CrossEntropyLoss", {}, [logits, labels]),
        ("CrossEntropyLoss", {"reduction": "sum", "label_smoothing": 0.1}, [logits, labels]),
        ("CrossEntropyLoss", {"weight": CLASS_WEIGHT, "ignore_index": 1}, [logits, labels]),
        ("CrossEntropyLoss", {"reduction": "none"}, [spatial, spatial_labels]),
        ("CrossEntropyLoss", {}, [logits, np.random.default_rng(6).dirichlet(np.ones(4), 6)]),
        ("NLLLoss", {}, [log_p, np.array([0, 2, 3])]),
        ("NLLLoss", {"weight": CLASS_WEIGHT, "reduction": "sum"}, [log_p, np.array([0, 2, 3])]),
        ("MSELoss", {}, [randn(4, 3), randn(4, 3, seed=1)]),
        ("MSELoss", {"reduction": "none"}, [randn(4, 3), randn(4, 3, seed=1)]),
        ("L1Loss", {"reduction": "sum"}, [randn(4, 3), randn(4, 3, seed=1)]),
        ("SmoothL1Loss", {}, [randn(4, 3) * 2, randn(4, 3, seed=1)]),
        ("SmoothL1Loss", {"beta": 0.5, "reduction": "none"}, [randn(4, 3) * 2, randn(4, 3, seed=1)]),
        ("BCELoss", {}, [probs, binary]),
        ("BCELoss", {"weight": w, "reduction": "sum"}, [probs, binary]),
        ("BCEWithLogitsLoss", {}, [randn(5, 3) * 3, binary]),
        ("BCEWithLogitsLoss", {"pos_weight": w, "weight": w[::-1].copy()}, [randn(5, 3) * 3, binary]),
        ("KLDivLoss", {"reduction": "batchmean"}, [log_p, q]),
        ("KLDivLoss", {"reduction": "sum", "log_target": True}, [log_p, np.log(q)]),
    ]


@pytest.mark.parametrize("name, kwargs, arrays", _loss_cases(), ids=[f"{n}{sorted(k)}" for n, k, _ in _loss_cases()])
def test_losses_match_torch(name, kwargs, arrays):
    ds_kwargs = {k: ds.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    torch_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    ours, theirs = getattr(nn, name)(**ds_kwargs), getattr(tnn, name)(**torch_kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    input, target = arrays
    ds_input, torch_input = ds.tensor(input, requires_grad=True), torch.tensor(input, requires_grad=True)
    loss, expected = ours(ds_input, ds.tensor(target)), theirs(torch_input, torch.tensor(target))
    assert_close(loss, expected, "loss")
    upstream = randn(*expected.shape, seed=9)
    loss.backward(ds.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    assert_close(ds_input.grad, torch_input.grad, "input gradient")


def test_losses_reject_an_unknown_reduction_when_built():
    with pytest.raises(ValueError, match="MSELoss: reduction must be one of \\('none', 'mean', 'sum'\\), got 'avg'"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="CrossEntropyLoss: reduction must be one of"):
        nn.CrossEntropyLoss(reduction="batchmean")
    assert nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"


def test_loss_weights_are_buffers_that_move_with_the_module():
    criterion = nn.CrossEntropyLoss(weight=ds.tensor([1.0, 2.0])).double()
    assert criterion.weight.dtype == ds.float64 and list(criterion.state_dict()) == ["weight"]


# -- whole models -------------------------------------------------------------------------------------------------


def _cnn(lib):
    return lib.Sequential(
        lib.Conv2d(1, 4, 3, padding=1), lib.BatchNorm2d(4), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(4, 8, 3, bias=False), lib.GroupNorm(2, 8), lib.GELU(), lib.AdaptiveAvgPool2d(2),
        lib.Flatten(), lib.Dropout(0.5), lib.Linear(32, 16), lib.LayerNorm(16), lib.Tanh(), lib.Linear(16, 10),
        lib.LogSoftmax(dim=1),
    )


def test_a_cnn_has_torchs_state_dict_keys_repr_and_numbers():
    ours, theirs = _cnn(nn), _cnn(tnn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    run_and_compare(ours, theirs, [randn(3, 1, 10, 10)], training=False, steps=2)


def test_a_cnn_trains_like_torch_for_a_few_sgd_steps():
    ours, theirs = _cnn(nn)[:-1], _cnn(tnn)[:-1]
    del ours[9], theirs[9]  # no dropout: random masks differ between libraries
    theirs.double()
    ours.double()
    copy_weights(ours, theirs)
    ours_loss, theirs_loss = nn.CrossEntropyLoss(), tnn.CrossEntropyLoss()
    x, labels = randn(6, 1, 10, 10), np.array([0, 1, 2, 3, 4, 5])
    for _ in range(3):
        loss = ours_loss(ours(ds.tensor(x)), ds.tensor(labels))
        expected = theirs_loss(theirs(torch.tensor(x)), torch.tensor(labels))
        assert loss.item() == pytest.approx(expected.item(), rel=1e-9)
        loss.backward()
        expected.backward()
        with ds.no_grad(), torch.no_grad():
            for p, q in zip(ours.parameters(), theirs.parameters()):
                p -= 0.1 * p.grad
                q -= 0.1 * q.grad
        ours.zero_grad()
        theirs.zero_grad()
    for key, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[key], value, key, atol=1e-9)
