"""Elementwise ops: forward and gradients against torch, broadcasting, dtype promotion, errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from tests.oracle import check_against_torch, check_gradcheck
from tests.strategies import broadcastable_pair, floats_array, positive_array, small_shapes

BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "maximum": (ds.maximum, torch.maximum),
    "minimum": (ds.minimum, torch.minimum),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_ops_broadcast_like_torch(name, data):
    shapes = data.draw(broadcastable_pair())
    a = data.draw(floats_array(shapes.input_shapes[0]))
    b = data.draw(floats_array(shapes.input_shapes[1]))
    ds_fn, torch_fn = BINARY[name]
    check_against_torch(ds_fn, torch_fn, a, b)


@given(data=st.data())
def test_div_and_pow_broadcast_like_torch(data):
    shapes = data.draw(broadcastable_pair())
    a = data.draw(positive_array(shapes.input_shapes[0]))
    b = data.draw(positive_array(shapes.input_shapes[1]))
    check_against_torch(lambda x, y: x / y, lambda x, y: x / y, a, b)
    check_against_torch(lambda x, y: x ** y, lambda x, y: x ** y, a, b)


UNARY = {
    "neg": (lambda x: -x, lambda x: -x, floats_array),
    "abs": (ds.abs, torch.abs, floats_array),
    "exp": (ds.exp, torch.exp, floats_array),
    "log": (ds.log, torch.log, positive_array),
    "sqrt": (ds.sqrt, torch.sqrt, positive_array),
    "rsqrt": (ds.rsqrt, torch.rsqrt, positive_array),
    "sin": (ds.sin, torch.sin, floats_array),
    "cos": (ds.cos, torch.cos, floats_array),
    "tanh": (ds.tanh, torch.tanh, floats_array),
    "sigmoid": (ds.sigmoid, torch.sigmoid, floats_array),
    "relu": (ds.relu, torch.relu, floats_array),
    "leaky_relu": (lambda x: ds.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2), floats_array),
    "gelu": (ds.gelu, F.gelu, floats_array),
    "gelu_tanh": (lambda x: ds.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh"), floats_array),
    "softplus": (ds.softplus, F.softplus, floats_array),
    "softplus_beta": (lambda x: ds.softplus(x, 2.0, 3.0), lambda x: F.softplus(x, 2.0, 3.0), floats_array),
    "erf": (ds.erf, torch.erf, floats_array),
    "clamp": (lambda x: x.clamp(-1.0, 0.5), lambda x: x.clamp(-1.0, 0.5), floats_array),
    "clamp_min": (lambda x: x.clamp(min=0.2), lambda x: x.clamp(min=0.2), floats_array),
    "pow_scalar": (lambda x: x ** 3, lambda x: x ** 3, floats_array),
    "pow_half": (lambda x: x ** 0.5, lambda x: x ** 0.5, positive_array),
    "scalar_pow": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, floats_array),
    "rsub": (lambda x: 1.0 - x, lambda x: 1.0 - x, floats_array),
    "rdiv": (lambda x: 2.0 / x, lambda x: 2.0 / x, positive_array),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_ops_match_torch(name, data):
    ds_fn, torch_fn, values = UNARY[name]
    x = data.draw(values(data.draw(small_shapes)))
    if name in ("abs", "relu", "leaky_relu", "clamp", "clamp_min"):  # keep off the kinks
        x = np.where(np.abs(x - np.round(x * 2) / 2) < 1e-3, x + 0.01, x)
    check_against_torch(ds_fn, torch_fn, x)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_pass_gradcheck(name):
    ds_fn, _, values = UNARY[name]
    signs = 1 if values is positive_array else np.sign(np.random.default_rng(2).standard_normal((3, 4)))
    x = np.random.default_rng(1).uniform(0.2, 2.0, size=(3, 4)) * signs
    check_gradcheck(ds_fn, x)


def test_where_routes_gradients_to_the_chosen_branch():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    cond = rng.random((3, 4)) > 0.5
    check_against_torch(lambda x, y: ds.where(ds.tensor(cond), x, y),
                        lambda x, y: torch.where(torch.from_numpy(cond), x, y), a, b)


def test_ties_in_maximum_share_the_gradient_like_torch():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 5.0, 0.0])
    check_against_torch(ds.maximum, torch.maximum, a, b)
    check_against_torch(ds.minimum, torch.minimum, a, b)


def test_remainder_and_floor_divide_match_torch():
    a = np.array([5.5, -3.0, 7.0])
    b = np.array([2.0, 2.0, -3.0])
    check_against_torch(lambda x, y: x % y, lambda x, y: x % y, a, b)
    check_against_torch(lambda x, y: x // y, lambda x, y: x // y, a, b, grad=False)


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons_give_bool_tensors_without_gradient(op):
    a = ds.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = getattr(a, op)(2.0)
    expected = getattr(torch.tensor([1.0, 2.0, 3.0]), op)(2.0)
    assert out.dtype == ds.bool and not out.requires_grad
    assert out.tolist() == expected.tolist()


def test_logical_ops_and_predicates():
    x = ds.tensor([0.0, float("nan"), float("inf"), 1.0])
    assert ds.isnan(x).tolist() == [False, True, False, False]
    assert ds.isfinite(x).tolist() == [True, False, False, True]
    t, f = ds.tensor([True, False]), ds.tensor([True, True])
    assert (t & f).tolist() == [True, False] and (t | f).tolist() == [True, True]
    assert (t ^ f).tolist() == [False, True] and (~t).tolist() == [False, True]


@pytest.mark.parametrize(("left", "right"), [
    ("float32", "float64"), ("float16", "float32"), ("int64", "float32"), ("int32", "int64"),
    ("bool", "int32"), ("float16", "bfloat16"), ("uint8", "int8"),
])
def test_dtype_promotion_matches_torch(left, right):
    a = ds.ones(2, dtype=left) + ds.ones(2, dtype=right)
    b = torch.ones(2, dtype=getattr(torch, left)) + torch.ones(2, dtype=getattr(torch, right))
    assert a.dtype.name == str(b.dtype).removeprefix("torch.")


@pytest.mark.parametrize(("dtype", "scalar"), [("float16", 2.5), ("int64", 2.5), ("int32", 3), ("float32", 2),
                                               ("bool", 1), ("bfloat16", 0.5)])
def test_python_scalars_are_weak_like_torch(dtype, scalar):
    ours = (ds.ones(2, dtype=dtype) * scalar).dtype.name
    theirs = str((torch.ones(2, dtype=getattr(torch, dtype)) * scalar).dtype).removeprefix("torch.")
    assert ours == theirs


def test_zero_dim_tensor_does_not_widen_a_dimensioned_tensor():
    out = ds.ones(3, dtype=ds.float16) + ds.tensor(2.0)
    assert out.dtype == ds.float16


def test_integer_true_division_gives_float():
    assert (ds.tensor([1, 2]) / 2).tolist() == [0.5, 1.0]
    assert (ds.tensor([1, 2]) / 2).dtype == ds.float32


def test_half_and_bfloat16_arithmetic_keep_their_dtype():
    for dtype in (ds.float16, ds.bfloat16):
        x = ds.tensor([1.0, 2.0], dtype=dtype, requires_grad=True)
        y = (x * x).exp().sum()
        y.backward()
        assert y.dtype == dtype and x.grad.dtype == dtype


def test_broadcast_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError, match=r"add: .*\(2, 3\).*\(4,\)"):
        ds.ones(2, 3) + ds.ones(4)


def test_bad_operand_type_is_a_clear_error():
    with pytest.raises(TypeError, match="mul: expected a Tensor or a number"):
        ds.ones(2) * "a"


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="gelu: approximate"):
        ds.gelu(ds.ones(2), approximate="fast")


def test_clamp_needs_a_bound_and_an_order():
    with pytest.raises(ValueError, match="clamp: at least one"):
        ds.ones(2).clamp()
    with pytest.raises(ValueError, match="min .* greater than max"):
        ds.ones(2).clamp(1.0, 0.0)


def test_clamp_with_tensor_bounds_matches_torch():
    rng = np.random.default_rng(3)
    x, low, high = rng.standard_normal(5), rng.standard_normal(5) - 1, rng.standard_normal(5) + 1
    check_against_torch(lambda a, lo, hi: a.clamp(lo, hi), lambda a, lo, hi: a.clamp(lo, hi), x, low, high)


def test_where_requires_bool_condition():
    with pytest.raises(TypeError, match="where: condition must be a bool tensor"):
        ds.where(ds.ones(2), ds.ones(2), ds.zeros(2))


def test_sigmoid_is_stable_at_extremes():
    out = ds.sigmoid(ds.tensor([-1000.0, 1000.0]))
    assert out.tolist() == [0.0, 1.0]


def test_second_derivatives_match_torch():
    x = np.linspace(-2, 2, 7)
    for ds_fn, torch_fn in [(ds.tanh, torch.tanh), (ds.sigmoid, torch.sigmoid), (ds.gelu, F.gelu),
                            (lambda t: ds.gelu(t, "tanh"), lambda t: F.gelu(t, approximate="tanh")),
                            (ds.erf, torch.erf), (ds.softplus, F.softplus), (ds.sin, torch.sin),
                            (lambda t: t ** 3, lambda t: t ** 3)]:
        a = ds.tensor(x, requires_grad=True)
        (g,) = ds.autograd.grad(ds_fn(a).sum(), a, create_graph=True)
        (gg,) = ds.autograd.grad(g.sum(), a)
        t = torch.tensor(x, requires_grad=True)
        (tg,) = torch.autograd.grad(torch_fn(t).sum(), t, create_graph=True)
        (tgg,) = torch.autograd.grad(tg.sum(), t)
        np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-6, atol=1e-9)


def test_abs_sign_and_rounding_match_torch():
    x = np.array([-2.5, -1.5, -0.4, 0.0, 0.5, 1.5, 2.7])
    for name in ("sign", "floor", "ceil", "round"):
        ours = getattr(ds, name)(ds.tensor(x))
        assert ours.tolist() == getattr(torch, name)(torch.tensor(x)).tolist() and not ours.requires_grad
