"""dslearn.nn.init against closed forms and torch.nn.init; dslearn.nn.utils (clipping, vector conversion)
against torch.nn.utils."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as tnn
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
import dslearn.nn as nn
from dslearn.nn import init
from dslearn.nn.utils import clip_grad_norm_, clip_grad_value_, parameters_to_vector, vector_to_parameters

# -- gains and fans -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None),
    ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("leaky_relu", 1),
    ("selu", None),
])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param))


@pytest.mark.parametrize("nonlinearity, param, message", [
    ("swish", None, "unsupported nonlinearity 'swish'"),
    ("leaky_relu", "0.1", "negative_slope '0.1' is not a valid number"),
    ("leaky_relu", True, "not a valid number"),
])
def test_calculate_gain_errors(nonlinearity, param, message):
    with pytest.raises(ValueError, match=message):
        init.calculate_gain(nonlinearity, param)


@given(st.lists(st.integers(1, 6), min_size=2, max_size=5))
def test_fan_in_and_fan_out_match_torch(shape):
    expected = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert init.calculate_fan_in_and_fan_out(ds.empty(*shape)) == expected
    assert init._calculate_fan_in_and_fan_out(ds.empty(*shape)) == expected


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions, got shape \\(5,\\)"):
        init.calculate_fan_in_and_fan_out(ds.empty(5))


# -- initialiser statistics --------------------------------------------------------------------------------------

SHAPE = (400, 100, 3)  # fan_in 300, fan_out 1200; 120k samples: sample std within ~0.5% of the truth


def _stats(t: ds.Tensor) -> tuple[float, float, float]:
    values = t.detach().numpy().astype(np.float64)
    return values.mean(), values.std(), np.abs(values).max()


def test_uniform_and_normal_have_the_requested_moments():
    _ = ds.manual_seed(0)
    mean, std, _ = _stats(init.uniform_(ds.empty(*SHAPE), -2.0, 4.0))
    assert mean == pytest.approx(1.0, abs=0.03) and std == pytest.approx(6 / math.sqrt(12), rel=0.01)
    mean, std, _ = _stats(init.normal_(ds.empty(*SHAPE), 3.0, 0.5))
    assert mean == pytest.approx(3.0, abs=0.01) and std == pytest.approx(0.5, rel=0.01)


@pytest.mark.parametrize("fn, gain, expected_std, bound", [
    (init.xavier_uniform_, 1.0, math.sqrt(2 / 1500), math.sqrt(6 / 1500)),
    (init.xavier_uniform_, 2.0, 2 * math.sqrt(2 / 1500), 2 * math.sqrt(6 / 1500)),
    (init.xavier_normal_, 1.5, 1.5 * math.sqrt(2 / 1500), None),
])
def test_xavier_initialisers_follow_the_closed_form(fn, gain, expected_std, bound):
    mean, std, largest = _stats(fn(ds.empty(*SHAPE), gain=gain))
    assert mean == pytest.approx(0.0, abs=0.02 * expected_std)
    assert std == pytest.approx(expected_std, rel=0.02)
    if bound is not None:
        assert largest <= bound


@pytest.mark.parametrize("fn", [init.kaiming_uniform_, init.kaiming_normal_])
@pytest.mark.parametrize("a, mode, nonlinearity", [
    (0.0, "fan_in", "relu"), (0.0, "fan_out", "relu"), (math.sqrt(5), "fan_in", "leaky_relu"), (0.0, "fan_in", "tanh"),
])
def test_kaiming_initialisers_follow_the_closed_form(fn, a, mode, nonlinearity):
    fan = 300 if mode == "fan_in" else 1200
    expected_std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    t = fn(ds.empty(*SHAPE), a=a, mode=mode, nonlinearity=nonlinearity)
    _, std, largest = _stats(t)
    assert std == pytest.approx(expected_std, rel=0.02)
    if fn is init.kaiming_uniform_:
        assert largest <= math.sqrt(3) * expected_std


def test_kaiming_rejects_an_unknown_mode_and_skips_empty_tensors():
    with pytest.raises(ValueError, match="mode 'fan_avg' is not supported"):
        init.kaiming_uniform_(ds.empty(3, 3), mode="fan_avg")
    assert init.kaiming_normal_(ds.empty(0, 3)).shape == (0, 3)


def test_trunc_normal_stays_in_range_with_the_truncated_normal_moments():
    _ = ds.manual_seed(1)
    a, b, std = -1.0, 2.0, 1.0
    values = init.trunc_normal_(ds.empty(200_000), mean=0.0, std=std, a=a, b=b).numpy()
    assert values.min() >= a and values.max() <= b
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    z = cdf(b) - cdf(a)
    expected_mean = (pdf(a) - pdf(b)) / z
    expected_var = 1 + (a * pdf(a) - b * pdf(b)) / z - expected_mean**2
    assert values.mean() == pytest.approx(expected_mean, abs=0.01)
    assert values.var() == pytest.approx(expected_var, rel=0.02)
    with pytest.raises(ValueError, match="is empty"):
        init.trunc_normal_(ds.empty(3), a=1.0, b=-1.0)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 2, 3, 3)])
def test_orthogonal_gives_orthonormal_rows_or_columns_scaled_by_gain(shape):
    w = init.orthogonal_(ds.empty(*shape, dtype=ds.float64), gain=2.0).numpy().reshape(shape[0], -1)
    small = min(w.shape)
    product = w @ w.T if w.shape[0] == small else w.T @ w
    np.testing.assert_allclose(product, 4.0 * np.eye(small), atol=1e-10)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(ds.empty(3))


def test_constant_zeros_and_ones_fill_in_place():
    t = ds.empty(2, 3)
    assert init.constant_(t, 0.25) is t and t.tolist() == [[0.25] * 3] * 2
    assert init.zeros_(t).tolist() == [[0.0] * 3] * 2
    assert init.ones_(t).tolist() == [[1.0] * 3] * 2


def test_initialisers_work_on_parameters_without_recording_a_graph():
    w = nn.Parameter(ds.empty(4, 4, dtype=ds.float64))
    for fn in (init.xavier_uniform_, init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_,
               init.normal_, init.uniform_, init.trunc_normal_, init.orthogonal_, init.zeros_, init.ones_):
        assert fn(w) is w
        assert w.is_leaf and w.requires_grad and w.grad_fn is None and w.dtype == ds.float64


def test_generators_make_initialisation_repeatable():
    first = init.kaiming_uniform_(ds.empty(5, 5), generator=ds.Generator().manual_seed(7)).numpy().copy()
    again = init.kaiming_uniform_(ds.empty(5, 5), generator=ds.Generator().manual_seed(7)).numpy()
    other = init.kaiming_uniform_(ds.empty(5, 5), generator=ds.Generator().manual_seed(8)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    _ = ds.manual_seed(3)
    a = nn.Linear(6, 6).weight.detach().numpy().copy()
    _ = ds.manual_seed(3)
    np.testing.assert_array_equal(a, nn.Linear(6, 6).weight.detach().numpy())


def test_linear_default_init_is_uniform_in_one_over_sqrt_fan_in():
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    _, std, largest = _stats(layer.weight)
    assert largest <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert _stats(layer.bias)[2] <= bound


# -- clip_grad_norm_ / clip_grad_value_ ------------------------------------------------------------------------------


def _params_with_grads(scale: float, seed: int = 0):
    """Three dslearn parameters and three torch ones holding the same float64 gradients."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    grads = [rng.standard_normal(s) * scale for s in shapes]
    ours = [nn.Parameter(ds.zeros(*s, dtype=ds.float64)) for s in shapes]
    theirs = [tnn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = ds.tensor(g.copy()), torch.tensor(g.copy())
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, 0.5])
@pytest.mark.parametrize("scale, max_norm", [(1.0, 0.5), (0.01, 10.0)])
def test_clip_grad_norm_matches_torch(norm_type, scale, max_norm):
    ours, theirs = _params_with_grads(scale)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total.shape == () and total.dtype == ds.float64
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_clip_grad_norm_accepts_a_single_tensor_and_skips_missing_grads():
    ours, theirs = _params_with_grads(5.0)
    extra = nn.Parameter(ds.zeros(3))
    total = clip_grad_norm_(ours[0], 1.0)
    assert total.item() == pytest.approx(torch.nn.utils.clip_grad_norm_(theirs[0], 1.0).item())
    assert clip_grad_norm_([extra], 1.0).item() == 0.0 and extra.grad is None


def test_clip_grad_norm_scales_gradients_that_share_memory_once_each():
    a, b = nn.Parameter(ds.zeros(2)), nn.Parameter(ds.zeros(2))
    (a + b).sum().backward()  # add's backward hands the same gradient array to both
    clip_grad_norm_([a, b], 1.0)
    expected = 1.0 / (2.0 + 1e-6)
    np.testing.assert_allclose(a.grad.numpy(), [expected] * 2, rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), [expected] * 2, rtol=1e-6)


def test_clip_grad_norm_with_non_finite_gradients():
    ours, theirs = _params_with_grads(1.0)
    ours[1].grad._data[0], theirs[1].grad[0] = np.inf, np.inf
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is non-finite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isinf(total.item()) and math.isinf(expected.item())
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(np.isnan(p.grad.numpy()), np.isnan(t.grad.numpy()))


def test_clip_grad_norm_keeps_the_gradient_dtype():
    p = nn.Parameter(ds.zeros(3))
    p.grad = ds.tensor([3.0, 4.0, 0.0])
    assert clip_grad_norm_([p], 1.0).dtype == ds.float32 and p.grad.dtype == ds.float32


@pytest.mark.parametrize("clip_value", [0.1, 1.0, 5])
def test_clip_grad_value_matches_torch(clip_value):
    ours, theirs = _params_with_grads(2.0)
    clip_grad_value_(ours, clip_value)
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())
        assert p.grad.dtype == ds.float64


# -- parameters <-> vector ----------------------------------------------------------------------------------------


def test_parameters_to_vector_and_back_match_torch():
    ours, theirs = nn.Linear(3, 2).double(), tnn.Linear(3, 2).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    vec = parameters_to_vector(ours.parameters())
    expected = torch.nn.utils.parameters_to_vector(theirs.parameters())
    np.testing.assert_array_equal(vec.detach().numpy(), expected.detach().numpy())
    assert vec.requires_grad  # differentiable, as in torch
    new = np.arange(8, dtype=np.float64)
    weight = ours.weight
    vector_to_parameters(ds.tensor(new), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), theirs.parameters())
    assert ours.weight is weight
    for (name, p), (_, t) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), t.detach().numpy(), err_msg=name)


def test_parameters_to_vector_gradient_flows_to_each_parameter():
    layer = nn.Linear(2, 2)
    (parameters_to_vector(layer.parameters()) * 2).sum().backward()
    assert layer.weight.grad.tolist() == [[2.0, 2.0], [2.0, 2.0]] and layer.bias.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize("call, error, message", [
    (lambda: parameters_to_vector([ds.ones(2), [1.0]]), TypeError, "expected Tensors, got list"),
    (lambda: vector_to_parameters([1.0, 2.0], [ds.ones(2)]), TypeError, "expected a Tensor, got list"),
    (lambda: vector_to_parameters(ds.ones(2, 1), [ds.ones(2)]), ValueError, "expected a 1-D vector"),
    (lambda: vector_to_parameters(ds.ones(3), [ds.ones(2)]), ValueError, "has 3 elements but the parameters need 2"),
    (lambda: vector_to_parameters(ds.ones(2, dtype=ds.float64), [ds.ones(2)]), TypeError, "differs"),
])
def test_vector_conversion_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
