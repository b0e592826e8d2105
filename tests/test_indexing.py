"""Indexing: getitem/setitem semantics as in torch, gather/scatter_add/index_select/masked_fill."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from tests.oracle import check_against_torch, check_gradcheck

X = np.random.default_rng(0).standard_normal((4, 5, 3))

KEYS = [
    1, -1, slice(1, 3), (slice(None), 2), (Ellipsis, 0), (None, 1), (slice(None, None, 2), slice(1, None), 0),
    [0, 2, 2], (slice(None), [4, 0]), ([0, 1], [2, 3]), ([[0, 1], [2, 3]], slice(None), 1),
    (slice(None), [1, 1, 3], slice(0, 2)), (0, [1, 2], [0, 2]), np.array([True, False, True, True]),
    (1, np.array([True, False, True, False, True])), ([0, 0, 3], slice(None), [2, 1, 0]),
]


@pytest.mark.parametrize("key", KEYS, ids=repr)
def test_getitem_matches_torch_forward_and_backward(key):
    torch_key = tuple(torch.tensor(k) if isinstance(k, (list, np.ndarray)) else k
                      for k in (key if isinstance(key, tuple) else (key,)))
    check_against_torch(lambda t: t[key], lambda t: t[torch_key], X)


def test_getitem_accepts_tensor_indices():
    idx = ds.tensor([3, 0, 3])
    check_against_torch(lambda t: t[idx], lambda t: t[torch.tensor([3, 0, 3])], X)
    mask = ds.tensor(X > 0)
    check_against_torch(lambda t: t[mask], lambda t: t[torch.from_numpy(X > 0)], X)


@pytest.mark.parametrize("key", KEYS[:10], ids=repr)
def test_setitem_matches_torch_and_differentiates_both_sides(key):
    torch_key = tuple(torch.tensor(k) if isinstance(k, (list, np.ndarray)) else k
                      for k in (key if isinstance(key, tuple) else (key,)))
    value_shape = torch.tensor(X)[torch_key].shape
    value = np.random.default_rng(1).standard_normal(value_shape[-1:] if value_shape else ())

    def ours(x, v):
        y = x * 1.0
        y[key] = v
        return y * 2

    def theirs(x, v):
        y = x * 1.0
        y[torch_key] = v
        return y * 2

    check_against_torch(ours, theirs, X, value)


def test_setitem_without_grad_writes_in_place_and_views_see_it():
    x = ds.zeros(3, 4)
    row = x[1]
    x[1, 2] = 7.0
    assert row.tolist() == [0.0, 0.0, 7.0, 0.0]
    x[:, 0] = ds.tensor([1.0, 2.0, 3.0])
    assert x[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_setitem_on_leaf_requiring_grad_is_refused_like_torch():
    w = ds.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="a leaf tensor that requires grad"):
        w[0] = 2.0
    with ds.no_grad():
        w[0] = 2.0
    assert w.tolist() == [2.0, 1.0, 1.0]


@given(st.data())
def test_gather_and_scatter_add_match_torch(data):
    rows, cols = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    dim = data.draw(st.integers(0, 1))
    x = np.random.default_rng(data.draw(st.integers(0, 99))).standard_normal((rows, cols))
    size = (rows, cols)[dim]
    idx_shape = (data.draw(st.integers(1, 5)), data.draw(st.integers(1, cols))) if dim == 0 else \
        (data.draw(st.integers(1, rows)), data.draw(st.integers(1, 5)))
    index = np.random.default_rng(1).integers(0, size, size=idx_shape)
    check_against_torch(lambda t: t.gather(dim, ds.tensor(index)), lambda t: t.gather(dim, torch.tensor(index)), x)
    src = np.random.default_rng(2).standard_normal(idx_shape)
    check_against_torch(lambda t, s: t.scatter_add(dim, ds.tensor(index), s),
                        lambda t, s: t.scatter_add(dim, torch.tensor(index), s), x, src)


def test_scatter_add_with_a_larger_src_uses_its_leading_block():
    # torch's own backward rejects this case (it is a bug there), so finite differences are the oracle
    index = ds.tensor([[0, 2], [1, 1]])
    out = ds.zeros(3, 3).scatter_add(0, index, ds.arange(9.0).reshape(3, 3))
    assert out.tolist() == torch.zeros(3, 3).scatter_add(0, torch.tensor([[0, 2], [1, 1]]),
                                                         torch.arange(9.0).reshape(3, 3)).tolist()
    check_gradcheck(lambda s: ds.zeros(3, 3, dtype=ds.float64).scatter_add(0, index, s), np.ones((3, 3)))


def test_index_select_and_masked_fill_match_torch():
    index = np.array([2, 0, 2])
    check_against_torch(lambda t: t.index_select(1, ds.tensor(index)),
                        lambda t: t.index_select(1, torch.tensor(index)), X)
    mask = np.random.default_rng(0).random((5, 1)) > 0.5
    check_against_torch(lambda t: t.masked_fill(ds.tensor(mask), -1.5),
                        lambda t: t.masked_fill(torch.from_numpy(mask), -1.5), X)


def test_indexing_ops_pass_gradcheck():
    x = np.random.default_rng(3).standard_normal((3, 4))
    index = ds.tensor([[0, 0, 2], [1, 3, 3], [2, 2, 2]])
    for fn in (lambda t: t[[0, 0, 2], 1:], lambda t: t.gather(1, index),
               lambda t: t.index_select(0, ds.tensor([2, 2])), lambda t: t.masked_fill(t > 0, 0.0),
               lambda t: ds.zeros(3, 4, dtype=ds.float64).scatter_add(1, index, t)):
        check_gradcheck(fn, x)


def test_second_derivative_through_getitem():
    x = ds.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = ds.autograd.grad((x[[0, 0, 2]] ** 2).sum(), x, create_graph=True)
    (gg,) = ds.autograd.grad(g.sum(), x)
    assert g.tolist() == [4.0, 0.0, 6.0] and gg.tolist() == [4.0, 0.0, 2.0]


@pytest.mark.parametrize(("call", "error", "pattern"), [
    (lambda: ds.ones(3)[5], IndexError, "getitem: index 5 is out of bounds"),
    (lambda: ds.ones(3)[ds.tensor([0.5])], IndexError, "getitem: tensors used as indices must be integer or bool"),
    (lambda: ds.ones(3)["a"], IndexError, "getitem: unsupported index"),
    (lambda: ds.ones(2, 3).gather(1, ds.tensor([[3]])), IndexError, "gather: index 3 is out of range"),
    (lambda: ds.ones(2, 3).gather(1, ds.tensor([0, 1])), ValueError, "gather: index .* same number|dimensions"),
    (lambda: ds.ones(2, 3).gather(1, ds.tensor([[0.0]])), TypeError, "gather: index must be an integer tensor"),
    (lambda: ds.ones(2, 3).index_select(0, ds.tensor([[0]])), ValueError, "index_select: index must be 1-D"),
    (lambda: ds.ones(2, 3).index_select(0, ds.tensor([-1])), IndexError, "index_select: index -1 is out of range"),
    (lambda: ds.ones(2, 3).masked_fill(ds.ones(2, 3), 0.0), TypeError, "masked_fill: mask must be a bool tensor"),
    (lambda: ds.ones(2, 3).masked_fill(ds.ones(3, 2).bool(), 0.0), ValueError, "does not broadcast"),
    (lambda: ds.ones(2, 3).scatter_add(0, ds.tensor([[2]]), ds.ones(1, 1)), IndexError, "scatter_add: index 2"),
])
def test_indexing_errors_are_clear(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_setitem_shape_mismatch_is_clear():
    x = ds.zeros(3, 4)
    with pytest.raises(ValueError, match="setitem: .*shape"):
        x[0] = ds.ones(5)
