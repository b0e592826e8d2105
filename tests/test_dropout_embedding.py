"""Dropout (statistics, mask reuse in backward, determinism) and embedding (forward, scatter-add
backward, padding row, double backward) against torch and closed forms, and their errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dslearn as ds
from dslearn.ops.dropout import dropout
from dslearn.ops.embedding import EmbeddingGradient, embedding
from tests.oracle import check_against_torch, check_gradcheck

# -- dropout ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_preserves_the_mean(p):
    ds.manual_seed(0)
    x = ds.full((400, 500), 3.0)
    out = dropout(x, p).numpy()
    dropped = np.mean(out == 0)
    # 200k Bernoulli(p) draws: the fraction is within 5 standard deviations of p
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / out.size)
    np.testing.assert_allclose(out[out != 0], 3.0 / (1 - p), rtol=1e-6)
    assert abs(out.mean() - 3.0) < 5 * 3.0 * np.sqrt(p / (1 - p) / out.size)


def test_dropout_gradient_uses_the_same_mask():
    ds.manual_seed(1)
    x = ds.ones(50, 40, requires_grad=True)
    out = dropout(x, 0.3)
    out.backward(ds.full((50, 40), 2.0))
    np.testing.assert_array_equal(x.grad.numpy(), 2.0 * out.detach().numpy())


def test_dropout_is_repeatable_under_manual_seed_and_with_a_generator():
    x = ds.randn(20, 30)
    ds.manual_seed(7)
    first = dropout(x, 0.5).numpy()
    ds.manual_seed(7)
    np.testing.assert_array_equal(dropout(x, 0.5).numpy(), first)
    a, b = ds.Generator().manual_seed(3), ds.Generator().manual_seed(3)
    np.testing.assert_array_equal(dropout(x, 0.5, generator=a).numpy(), dropout(x, 0.5, generator=b).numpy())
    assert not np.array_equal(dropout(x, 0.5, generator=a).numpy(), dropout(x, 0.5, generator=a).numpy())


def test_dropout_is_the_identity_in_evaluation_or_at_p_0_and_zero_at_p_1():
    x = ds.randn(4, 5, requires_grad=True)
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0) is x
    out = dropout(x, 1.0)
    out.sum().backward()
    assert np.all(out.detach().numpy() == 0) and np.all(x.grad.numpy() == 0)


def test_dropout_keeps_the_dtype_and_is_differentiable_twice():
    x = ds.ones(10, dtype=ds.float64, requires_grad=True)
    out = dropout(x, 0.5)
    assert out.dtype == ds.float64
    (g,) = ds.grad((out * out).sum(), [x], create_graph=True)
    (gg,) = ds.grad(g.sum(), [x])
    mask = out.detach().numpy()
    np.testing.assert_allclose(gg.numpy(), 2 * mask * mask)


def test_dropout_errors_name_the_problem():
    with pytest.raises(ValueError, match="dropout: probability p must be between 0 and 1, got 1.5"):
        dropout(ds.ones(2), 1.5)
    with pytest.raises(ValueError, match="got -0.1"):
        dropout(ds.ones(2), -0.1)
    with pytest.raises(TypeError, match="dropout: expected a floating point tensor"):
        dropout(ds.tensor([1, 2]), 0.5)


# -- embedding -------------------------------------------------------------------------------------


@given(index_shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6), rows=st.integers(1, 8),
       width=st.integers(1, 5), padding=st.one_of(st.none(), st.integers(-1, 0)),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_embedding_matches_torch_with_repeated_indices_and_padding(index_shape, rows, width, padding, dtype):
    rng = np.random.default_rng(rows * 10 + width)
    indices = rng.integers(0, rows, index_shape)
    weight = rng.standard_normal((rows, width)).astype(dtype)
    check_against_torch(lambda i, w: embedding(i, w, padding_idx=padding),
                        lambda i, w: F.embedding(i, w, padding_idx=padding), indices, weight)


def test_embedding_gradient_equals_np_add_at_on_many_repeats():
    rng = np.random.default_rng(2)
    indices = rng.integers(0, 50, (64, 30))
    grad = rng.standard_normal((64, 30, 16)).astype(np.float32)
    expected = np.zeros((50, 16), np.float32)
    np.add.at(expected, indices, grad)
    got = EmbeddingGradient.apply(ds.tensor(grad), ds.tensor(indices), num_rows=50, padding_idx=None)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_embedding_gradients_pass_finite_differences():
    indices = ds.tensor([[0, 2, 2], [1, 0, 3]])
    check_gradcheck(lambda w: embedding(indices, w) * w[:1], np.random.default_rng(3).random((4, 2)))


def test_embedding_double_backward_matches_torch():
    rng = np.random.default_rng(4)
    indices = rng.integers(0, 5, (3, 4))
    weight, upstream, direction = rng.random((5, 3)), rng.random((3, 4, 3)), rng.random((5, 3))
    results = []
    for lib, fn in ((ds, lambda i, w: embedding(i, w, padding_idx=1)),
                    (torch, lambda i, w: F.embedding(i, w, padding_idx=1))):
        w = lib.tensor(weight, requires_grad=True)
        out = fn(lib.tensor(indices), w)
        grad_fn = ds.grad if lib is ds else torch.autograd.grad
        (g,) = grad_fn((out * out * lib.tensor(upstream)).sum(), [w], create_graph=True)
        (gg,) = grad_fn((g * lib.tensor(direction)).sum(), [w])
        results.append((g.detach().numpy(), gg.numpy()))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-12)


def test_embedding_errors_name_the_problem():
    weight = ds.randn(3, 2)
    with pytest.raises(IndexError, match=r"embedding: index 5 is out of range for a weight with 3 rows \(expected 0"):
        embedding(ds.tensor([0, 5]), weight)
    with pytest.raises(IndexError, match="embedding: index -1 is out of range"):
        embedding(ds.tensor([-1, 1]), weight)
    with pytest.raises(TypeError, match="embedding: input must be an integer tensor"):
        embedding(ds.tensor([1.0]), weight)
    with pytest.raises(ValueError, match=r"embedding: weight must be 2-D \(num_embeddings, embedding_dim\)"):
        embedding(ds.tensor([0]), ds.ones(3))
    with pytest.raises(ValueError, match=r"embedding: padding_idx 3 must be within num_embeddings \(3\)"):
        embedding(ds.tensor([0]), weight, padding_idx=3)
