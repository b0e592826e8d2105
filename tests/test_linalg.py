"""matmul (batched, broadcasting, 1-D rules) and linear against torch, half precision, and errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from tests.oracle import check_against_torch, check_gradcheck


@st.composite
def matmul_shapes(draw):
    n, k, m = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    batch_a = draw(st.lists(st.sampled_from([1, 2, 3]), max_size=2))
    batch_b = [draw(st.sampled_from([1, s])) for s in batch_a][draw(st.integers(0, len(batch_a))):]
    a = tuple(batch_a) + (n, k)
    b = tuple(batch_b) + (k, m)
    if draw(st.booleans()):
        a = (k,)  # vector @ matrix
    elif draw(st.booleans()):
        b = (k,)  # matrix @ vector
    return a, b


@given(matmul_shapes())
def test_matmul_matches_torch(shapes):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    check_against_torch(lambda x, y: x @ y, lambda x, y: x @ y, a, b)


@given(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.booleans(), st.booleans())
def test_linear_matches_torch(batch, fan_in, fan_out, bias, three_d):
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 2, fan_in) if three_d else (batch, fan_in))
    w, b = rng.standard_normal((fan_out, fan_in)), rng.standard_normal(fan_out)
    if bias:
        check_against_torch(ds.linear, F.linear, x, w, b)
    else:
        check_against_torch(ds.linear, F.linear, x, w)


def test_matmul_and_linear_pass_gradcheck():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2))
    check_gradcheck(lambda x, y: x @ y, a, b)
    check_gradcheck(lambda x, w, c: ds.linear(x, w, c), rng.standard_normal((3, 4)), rng.standard_normal((2, 4)),
                    rng.standard_normal(2))


def test_linear_second_derivative_matches_torch():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    xs, ws = ds.tensor(x, requires_grad=True), ds.tensor(w, requires_grad=True)
    (g,) = ds.autograd.grad((ds.linear(xs, ws) ** 2).sum(), ws, create_graph=True)
    (gg,) = ds.autograd.grad(g.sum(), xs)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (tg,) = torch.autograd.grad((F.linear(xt, wt) ** 2).sum(), wt, create_graph=True)
    (tgg,) = torch.autograd.grad(tg.sum(), xt)
    np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-10)


@pytest.mark.parametrize("dtype", [ds.float16, ds.bfloat16])
def test_half_precision_matmul_accumulates_in_float32(dtype):
    a = ds.full((1, 4096), 0.1, dtype=dtype)
    b = ds.ones(4096, 1, dtype=dtype)
    out = a @ b
    assert out.dtype == dtype and abs(out.item() - 0.1 * 4096) < 0.5 + 409.6 * 2 ** -7


@pytest.mark.parametrize(("call", "error", "pattern"), [
    (lambda: ds.ones(64, 784) @ ds.ones(256, 10), ValueError,
     r"matmul: shapes \(64, 784\) and \(256, 10\) are not aligned \(784 != 256\)"),
    (lambda: ds.ones(2, 2, 3) @ ds.ones(3, 3, 2), ValueError, "batch dimensions"),
    (lambda: ds.tensor(1.0) @ ds.ones(2), ValueError, "at least one dimension"),
    (lambda: ds.linear(ds.ones(2, 3), ds.ones(4, 5)), ValueError, r"linear: input of shape \(2, 3\)"),
    (lambda: ds.linear(ds.ones(2, 3), ds.ones(4, 3), ds.ones(5)), ValueError, r"bias must have shape \(4,\)"),
    (lambda: ds.linear(ds.ones(2, 3), ds.ones(3)), ValueError, "weight must be 2-D"),
    (lambda: ds.linear(ds.ones(2, 3), ds.ones(4, 3, dtype=ds.float64)), TypeError, "must share a dtype"),
])
def test_linalg_errors_are_clear(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
