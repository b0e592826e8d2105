"""Reductions with dim/keepdim: forward and gradients against torch, ties, errors."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from tests.oracle import check_against_torch, check_gradcheck
from tests.strategies import floats_array, nonscalar_shapes


@st.composite
def array_and_dims(draw):
    shape = draw(nonscalar_shapes)
    x = draw(floats_array(shape))
    dims = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True)
                          .map(tuple)))
    return x, dims, draw(st.booleans())


def _torch_dims(dims, ndim):
    return tuple(range(ndim)) if dims is None else dims


@given(array_and_dims())
def test_sum_and_mean_match_torch(case):
    x, dims, keepdim = case
    if dims is None and keepdim:
        keepdim = False  # torch.sum(x, keepdim=True) needs an explicit dim
    check_against_torch(lambda t: t.sum(dims, keepdim), lambda t: t.sum(_torch_dims(dims, x.ndim), keepdim), x)
    check_against_torch(lambda t: t.mean(dims, keepdim), lambda t: t.mean(_torch_dims(dims, x.ndim), keepdim), x)


@given(array_and_dims(), st.sampled_from([0, 1]))
def test_var_and_std_match_torch(case, correction):
    x, dims, keepdim = case
    count = x.size if dims is None else int(np.prod([x.shape[d] for d in np.atleast_1d(dims)]))
    if count <= correction:
        return  # torch returns nan/inf there; covered by test_var_of_a_single_element_is_nan
    td = _torch_dims(dims, x.ndim)
    check_against_torch(lambda t: t.var(dims, keepdim, correction=correction),
                        lambda t: torch.var(t, td, correction=correction, keepdim=keepdim), x)
    x = x + np.random.default_rng(0).standard_normal(x.shape)  # keep std away from 0
    check_against_torch(lambda t: t.std(dims, keepdim, correction=correction),
                        lambda t: torch.std(t, td, correction=correction, keepdim=keepdim), x)


@given(array_and_dims())
def test_amax_amin_and_logsumexp_match_torch(case):
    x, dims, keepdim = case
    td = _torch_dims(dims, x.ndim)
    check_against_torch(lambda t: t.amax(dims, keepdim), lambda t: t.amax(td, keepdim), x)
    check_against_torch(lambda t: t.amin(dims, keepdim), lambda t: t.amin(td, keepdim), x)
    check_against_torch(lambda t: t.logsumexp(dims, keepdim), lambda t: t.logsumexp(td, keepdim), x)


@given(array_and_dims(), st.sampled_from([2, 1, 3, float("inf")]))
def test_norm_matches_torch(case, p):
    x, dims, keepdim = case
    x = np.where(np.abs(x) < 1e-30, 0.0, x)  # torch's p-norm gradient underflows there (see the next test)
    td = None if dims is None else dims
    check_against_torch(lambda t: t.norm(p, dims, keepdim), lambda t: torch.linalg.vector_norm(t, p, td, keepdim), x)


@pytest.mark.parametrize("p", [3.0, 0.5])
@pytest.mark.parametrize("scale", [1e-243, 1e200])
def test_p_norm_neither_underflows_nor_overflows(p, scale):
    x = ds.tensor(np.array([3.0, -4.0]) * scale, dtype=ds.float64, requires_grad=True)
    expected = scale * (3.0**p + 4.0**p) ** (1 / p)
    norm = x.norm(p)
    norm.backward()
    np.testing.assert_allclose(norm.item(), expected, rtol=1e-12)
    closed_form = np.sign([3.0, -4.0]) * (np.array([3.0, 4.0]) * scale / expected) ** (p - 1)
    np.testing.assert_allclose(x.grad.numpy(), closed_form, rtol=1e-12)


@given(st.data())
def test_max_min_with_dim_return_values_and_indices_like_torch(data):
    shape = data.draw(nonscalar_shapes)
    x = data.draw(floats_array(shape, low=-100, high=100).filter(lambda a: len(np.unique(a)) == a.size))
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    keepdim = data.draw(st.booleans())
    for name in ("max", "min"):
        pick = lambda t, name=name: getattr(t, name)(dim, keepdim).values  # noqa: E731
        check_against_torch(pick, pick, x)
        ours = getattr(ds.tensor(x), name)(dim, keepdim).indices
        theirs = getattr(torch.tensor(x), name)(dim, keepdim).indices
        assert ours.tolist() == theirs.tolist() and ours.dtype == ds.int64


def test_full_max_shares_gradient_among_ties_like_torch():
    x = np.array([[1.0, 3.0, 3.0], [0.0, 3.0, 2.0]])
    check_against_torch(lambda t: t.max(), lambda t: t.max(), x)
    check_against_torch(lambda t: t.amax(1), lambda t: t.amax(1), x)


def test_argmax_argmin_match_torch():
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    for dim in (None, 0, 2, -1):
        for keepdim in (False, True):
            if dim is None and keepdim:
                continue
            assert ds.tensor(x).argmax(dim, keepdim).tolist() == torch.tensor(x).argmax(dim, keepdim).tolist()
            assert ds.tensor(x).argmin(dim, keepdim).tolist() == torch.tensor(x).argmin(dim, keepdim).tolist()


def test_norm_gradient_at_zero_is_zero_like_torch():
    check_against_torch(lambda t: t.norm(), lambda t: t.norm(), np.zeros(3))


def test_logsumexp_is_stable_for_large_values():
    assert ds.tensor([1000.0, 1000.0]).logsumexp(0).item() == pytest.approx(1000 + np.log(2))
    assert ds.tensor([-np.inf, -np.inf]).logsumexp(0).item() == -np.inf


def test_integer_sum_gives_int64_and_mean_refuses_integers():
    assert ds.tensor([1, 2, 3], dtype=ds.int32).sum().dtype == ds.int64
    assert ds.tensor([True, True]).sum().item() == 2
    with pytest.raises(TypeError, match="mean: expected a floating point tensor"):
        ds.tensor([1, 2]).mean()


def test_half_precision_sum_accumulates_in_float32():
    x = ds.full((4096,), 0.1, dtype=ds.float16)
    assert x.sum().dtype == ds.float16
    assert abs(x.sum().item() - 409.6) < 0.5  # naive float16 accumulation stalls far below


def test_reductions_pass_gradcheck():
    x = np.random.default_rng(0).standard_normal((3, 4)) + np.arange(12).reshape(3, 4)
    for fn in (lambda t: t.sum(1), lambda t: t.mean(0, True), lambda t: t.var(1), lambda t: t.std(),
               lambda t: t.amax(1), lambda t: t.logsumexp(0), lambda t: t.norm(dim=1), lambda t: t.max(1).values):
        check_gradcheck(fn, x)


def test_all_and_any():
    x = ds.tensor([[True, False], [True, True]])
    assert x.all(1).tolist() == [False, True] and x.any(0).tolist() == [True, True] and not x.all().item()


def test_dim_errors_name_the_op():
    with pytest.raises(IndexError, match=r"sum: dim 2 is out of range for a tensor with 2 dimensions"):
        ds.ones(2, 3).sum(2)
    with pytest.raises(ValueError, match="mean: dim .* repeats"):
        ds.ones(2, 3).mean((0, -2))
    with pytest.raises(RuntimeError, match="amax: cannot reduce an empty tensor"):
        ds.ones(0).amax()


def test_var_of_a_single_element_is_nan_like_torch():
    assert np.isnan(ds.tensor([1.0]).var().item()) and torch.tensor([1.0]).var().isnan()
