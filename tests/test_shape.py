"""Shape ops: forward and gradients against torch, and their errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from tests.oracle import check_against_torch, check_gradcheck
from tests.strategies import floats_array, nonscalar_shapes


@given(st.data())
def test_reshape_and_flatten_match_torch(data):
    shape = data.draw(nonscalar_shapes)
    x = data.draw(floats_array(shape))
    check_against_torch(lambda t: t.reshape(-1), lambda t: t.reshape(-1), x)
    check_against_torch(lambda t: t.reshape(x.size, 1), lambda t: t.reshape(x.size, 1), x)
    start = data.draw(st.integers(0, len(shape) - 1))
    end = data.draw(st.integers(start, len(shape) - 1))
    check_against_torch(lambda t: t.flatten(start, end), lambda t: t.flatten(start, end), x)


@given(st.data())
def test_permute_transpose_and_mT_match_torch(data):
    shape = data.draw(nonscalar_shapes)
    x = data.draw(floats_array(shape))
    perm = data.draw(st.permutations(range(len(shape))))
    check_against_torch(lambda t: t.permute(*perm), lambda t: t.permute(*perm), x)
    a, b = data.draw(st.integers(0, len(shape) - 1)), data.draw(st.integers(0, len(shape) - 1))
    check_against_torch(lambda t: t.transpose(a, b), lambda t: t.transpose(a, b), x)
    if len(shape) >= 2:
        check_against_torch(lambda t: t.mT, lambda t: t.mT, x)


@given(st.data())
def test_expand_squeeze_unsqueeze_match_torch(data):
    shape = data.draw(st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=4).map(tuple))
    x = data.draw(floats_array(shape))
    target = tuple(data.draw(st.sampled_from([2, 3])) if s == 1 else s for s in shape)
    check_against_torch(lambda t: t.expand(*target), lambda t: t.expand(*target), x)
    check_against_torch(lambda t: t.expand(2, *shape), lambda t: t.expand(2, *shape), x)
    check_against_torch(lambda t: t.squeeze(), lambda t: t.squeeze(), x)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_against_torch(lambda t: t.squeeze(dim), lambda t: t.squeeze(dim), x)
    udim = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check_against_torch(lambda t: t.unsqueeze(udim), lambda t: t.unsqueeze(udim), x)


@given(st.data())
def test_cat_stack_split_chunk_match_torch(data):
    shape = data.draw(nonscalar_shapes)
    dim = data.draw(st.integers(0, len(shape) - 1))
    other = list(shape)
    other[dim] = data.draw(st.integers(1, 4))
    a, b = data.draw(floats_array(shape)), data.draw(floats_array(tuple(other)))
    check_against_torch(lambda x, y: ds.cat([x, y], dim), lambda x, y: torch.cat([x, y], dim), a, b)
    c = data.draw(floats_array(shape))
    check_against_torch(lambda x, y: ds.stack([x, y], dim), lambda x, y: torch.stack([x, y], dim), a, c)
    size = data.draw(st.integers(1, 4))
    check_against_torch(lambda x: ds.cat([p * (i + 1) for i, p in enumerate(x.split(size, dim))], dim),
                        lambda x: torch.cat([p * (i + 1) for i, p in enumerate(x.split(size, dim))], dim), a)
    chunks = data.draw(st.integers(1, 4))
    ours, theirs = ds.tensor(a).chunk(chunks, dim), torch.tensor(a).chunk(chunks, dim)
    assert [p.shape for p in ours] == [tuple(p.shape) for p in theirs]


def test_split_with_sections_and_unbind_match_torch():
    x = np.random.default_rng(0).standard_normal((5, 3))
    check_against_torch(lambda t: t.split([2, 3])[1], lambda t: t.split([2, 3])[1], x)
    check_against_torch(lambda t: ds.stack(t.unbind(1)[::-1], 0), lambda t: torch.stack(t.unbind(1)[::-1], 0), x)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@given(data=st.data())
def test_pad_matches_torch(mode, data):
    shape = data.draw(st.lists(st.integers(3, 5), min_size=3, max_size=4).map(tuple))
    x = data.draw(floats_array(shape))
    dims = 2 if mode != "constant" else data.draw(st.integers(1, len(shape)))
    widths = tuple(data.draw(st.integers(0, 2)) for _ in range(2 * dims))
    value = 1.5 if mode == "constant" else 0.0
    kwargs = {"value": value} if mode == "constant" else {}
    check_against_torch(lambda t: ds.pad(t, widths, mode, value), lambda t: F.pad(t, widths, mode, **kwargs), x)


def test_negative_constant_padding_crops_like_torch():
    x = np.random.default_rng(0).standard_normal((3, 5))
    check_against_torch(lambda t: ds.pad(t, (-1, 2, 1, -2)), lambda t: F.pad(t, (-1, 2, 1, -2)), x)


def test_repeat_clone_contiguous_match_torch():
    x = np.random.default_rng(0).standard_normal((2, 3))
    check_against_torch(lambda t: t.repeat(2, 1, 3), lambda t: t.repeat(2, 1, 3), x)
    check_against_torch(lambda t: t.clone() * 2, lambda t: t.clone() * 2, x)
    check_against_torch(lambda t: t.T.contiguous(), lambda t: t.T.contiguous(), x)


def test_shape_ops_pass_gradcheck():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    for fn in (lambda t: t.permute(2, 0, 1) * ds.arange(3.0, dtype=ds.float64), lambda t: ds.pad(t, (1, 2), "reflect"),
               lambda t: t[:, None].expand(2, 5, 3, 4), lambda t: ds.cat([t, t * 2], 1), lambda t: t.repeat(1, 2, 1)):
        check_gradcheck(fn, x)


def test_view_refuses_non_contiguous_like_torch():
    x = ds.ones(2, 3).T
    with pytest.raises(RuntimeError, match="view: .* cannot be viewed as"):
        x.view(6)
    assert x.reshape(6).shape == (6,)


@pytest.mark.parametrize(("call", "error", "pattern"), [
    (lambda: ds.ones(2, 3).reshape(4), ValueError, r"reshape: cannot reshape a tensor of shape \(2, 3\)"),
    (lambda: ds.ones(2, 3).reshape(-1, -1), ValueError, "at most one dimension may be -1"),
    (lambda: ds.ones(2, 3).permute(0, 0), ValueError, "permute: dims"),
    (lambda: ds.ones(2, 3).expand(4, 3), ValueError, r"expand: the size of dimension 0 \(2\)"),
    (lambda: ds.cat([ds.ones(2, 3), ds.ones(3, 2)]), ValueError, "cat: tensors must have the same shape"),
    (lambda: ds.cat([]), ValueError, "cat: expected a non-empty"),
    (lambda: ds.stack([ds.ones(2), ds.ones(3)]), ValueError, "stack: all tensors must have the same shape"),
    (lambda: ds.ones(5).split([2, 2]), ValueError, "split: sections"),
    (lambda: ds.pad(ds.ones(2, 2), (1,)), ValueError, "pad: padding"),
    (lambda: ds.pad(ds.ones(2, 2), (1, 1), "mirror"), ValueError, "pad: unknown mode"),
    (lambda: ds.pad(ds.ones(2, 2), (2, 2), "reflect"), ValueError, "reflect padding"),
    (lambda: ds.ones(2).unsqueeze(3), IndexError, "unsqueeze: dim 3"),
])
def test_shape_errors_are_clear(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_cat_promotes_dtypes_like_torch():
    out = ds.cat([ds.ones(2, dtype=ds.int64), ds.ones(2, dtype=ds.float32)])
    assert out.dtype == ds.float32
