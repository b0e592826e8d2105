"""Layer norm, batch norm and group norm: forward, gradients and running statistics against
torch, kernels against their NumPy references, double backward, and every argument error."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dslearn.kernels.cpu import norm as kernels
from dslearn.kernels.reference import norm as reference
from hypothesis import assume, given
from hypothesis import strategies as st

import dslearn as ds
from dslearn.ops.normalization import batch_norm, group_norm, layer_norm
from tests.oracle import check_against_torch, check_gradcheck

FLOATS = st.sampled_from([np.float32, np.float64])


def _array(rng, shape, dtype=np.float64, scale=2.0, shift=0.5):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


# -- layer norm --------------------------------------------------------------------------------------


@given(lead=st.lists(st.integers(1, 4), max_size=2), normalized=st.lists(st.integers(1, 6), min_size=1, max_size=2),
       affine=st.sampled_from(["none", "weight", "both"]), dtype=FLOATS, eps=st.sampled_from([1e-5, 0.1]))
def test_layer_norm_matches_torch(lead, normalized, affine, dtype, eps):
    rng = np.random.default_rng(len(lead) * 10 + sum(normalized))
    shape = tuple(normalized)
    x = _array(rng, (*lead, *shape), dtype)
    weight = _array(rng, shape, dtype) if affine != "none" else None
    bias = _array(rng, shape, dtype) if affine == "both" else None
    arrays = [a for a in (x, weight, bias) if a is not None]

    def call(fn, x, *affine):
        return fn(x, shape, affine[0] if affine else None, affine[1] if len(affine) > 1 else None, eps)

    check_against_torch(lambda *t: call(layer_norm, *t), lambda *t: call(F.layer_norm, *t), *arrays)


def test_layer_norm_accepts_an_int_shape_and_keeps_half_precision():
    x = _array(np.random.default_rng(0), (3, 8)).astype(np.float16)
    out = check_against_torch(lambda t: layer_norm(t, 8), lambda t: F.layer_norm(t.float(), (8,)).half(), x,
                              grad=False, rtol=2e-3, atol=2e-3)
    assert out.dtype == ds.float16


@pytest.mark.parametrize("dtype, mean", [(np.float32, 1e4), (np.float64, 1e8)])
def test_norms_stay_accurate_when_the_mean_dwarfs_the_spread(dtype, mean):
    x = (mean + _array(np.random.default_rng(1), (8, 3, 64), np.float64, scale=1.0, shift=0.0)).astype(dtype)
    ulp = float(np.spacing(dtype(mean)))  # the mean itself is only known to half an ulp: allow 3
    for ours, axes in [(layer_norm(ds.tensor(x), 64), (2,)), (group_norm(ds.tensor(x), 1), (1, 2)),
                       (batch_norm(ds.tensor(x), None, None, training=True), (0, 2))]:
        np.testing.assert_allclose(ours.numpy(), _extended_precision_normalize(x, axes), rtol=1e-5, atol=3 * ulp)


def _extended_precision_normalize(x: np.ndarray, axes: tuple[int, ...], eps: float = 1e-5) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) in long double: the oracle where float64 torch is itself 10 ulp off."""
    wide = x.astype(np.longdouble)
    centered = wide - wide.mean(axis=axes, keepdims=True)
    return (centered / np.sqrt((centered ** 2).mean(axis=axes, keepdims=True) + eps)).astype(np.float64)


def test_layer_norm_gradients_pass_finite_differences():
    rng = np.random.default_rng(2)
    check_gradcheck(lambda x, w, b: layer_norm(x, (2, 3), w, b), _array(rng, (4, 2, 3)), _array(rng, (2, 3)),
                    _array(rng, (2, 3)))


# -- batch norm --------------------------------------------------------------------------------------

BATCH_SHAPES = st.sampled_from([(5, 3), (4, 2, 7), (3, 4, 5, 2), (2, 3, 1, 1)])


@given(shape=BATCH_SHAPES, affine=st.booleans(), dtype=FLOATS, momentum=st.sampled_from([0.1, 0.5]),
       track=st.booleans())
def test_batch_norm_training_matches_torch_and_updates_running_stats(shape, affine, dtype, momentum, track):
    rng = np.random.default_rng(sum(shape))
    channels = shape[1]
    x = _array(rng, shape, dtype)
    weight, bias = (_array(rng, channels, dtype), _array(rng, channels, dtype)) if affine else (None, None)
    mean0, var0 = _array(rng, channels, dtype), rng.uniform(0.5, 2.0, channels).astype(dtype)
    ours = [ds.tensor(mean0.copy()), ds.tensor(var0.copy())] if track else [None, None]
    theirs = [torch.tensor(mean0.copy()), torch.tensor(var0.copy())] if track else [None, None]
    arrays = [x] + ([weight, bias] if affine else [])
    check_against_torch(lambda t, *wb: batch_norm(t, *ours, *wb, training=True, momentum=momentum),
                        lambda t, *wb: F.batch_norm(t, *theirs, *wb, training=True, momentum=momentum), *arrays)
    if track:
        for mine, torchs in zip(ours, theirs):
            np.testing.assert_allclose(mine.numpy(), torchs.numpy(), rtol=1e-5, atol=1e-6)


@given(shape=BATCH_SHAPES, affine=st.booleans(), dtype=FLOATS)
def test_batch_norm_evaluation_uses_running_stats_like_torch(shape, affine, dtype):
    rng = np.random.default_rng(sum(shape) + 1)
    channels = shape[1]
    x = _array(rng, shape, dtype)
    mean, var = _array(rng, channels, dtype), rng.uniform(0.5, 2.0, channels).astype(dtype)
    arrays = [x] + ([_array(rng, channels, dtype), _array(rng, channels, dtype)] if affine else [])
    check_against_torch(lambda t, *wb: batch_norm(t, ds.tensor(mean), ds.tensor(var), *wb),
                        lambda t, *wb: F.batch_norm(t, torch.tensor(mean), torch.tensor(var), *wb), *arrays)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients_pass_finite_differences(training):
    rng = np.random.default_rng(3)
    mean, var = ds.zeros(3, dtype=ds.float64), ds.ones(3, dtype=ds.float64)
    check_gradcheck(lambda x, w, b: batch_norm(x, mean, var, w, b, training=training), _array(rng, (4, 3, 2)),
                    _array(rng, 3), _array(rng, 3))


# -- group norm --------------------------------------------------------------------------------------


@given(samples=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), max_size=2), affine=st.booleans(), dtype=FLOATS)
def test_group_norm_matches_torch(samples, groups, per_group, spatial, affine, dtype):
    assume(per_group * math.prod(spatial) > 1)  # one value per group: torch refuses or rounds 0 to nonzero
    rng = np.random.default_rng(samples * 100 + groups * 10 + per_group)
    channels = groups * per_group
    x = _array(rng, (samples, channels, *spatial), dtype)
    arrays = [x] + ([_array(rng, channels, dtype), _array(rng, channels, dtype)] if affine else [])
    check_against_torch(lambda t, *wb: group_norm(t, groups, *wb), lambda t, *wb: F.group_norm(t, groups, *wb),
                        *arrays)


def test_group_norm_gradients_pass_finite_differences():
    rng = np.random.default_rng(4)
    check_gradcheck(lambda x, w, b: group_norm(x, 2, w, b), _array(rng, (2, 4, 3)), _array(rng, 4), _array(rng, 4))


# -- double backward ---------------------------------------------------------------------------------

DOUBLE_BACKWARD_CASES = {
    "layer_norm": (lambda x, w, b: layer_norm(x, (4,), w, b), lambda x, w, b: F.layer_norm(x, (4,), w, b), (3, 4)),
    "batch_norm": (lambda x, w, b: batch_norm(x, None, None, w, b, training=True),
                   lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (3, 4, 2)),
    "group_norm": (lambda x, w, b: group_norm(x, 2, w, b), lambda x, w, b: F.group_norm(x, 2, w, b), (2, 4, 3)),
}


@pytest.mark.parametrize("name", list(DOUBLE_BACKWARD_CASES))
def test_double_backward_matches_torch(name):
    ours, theirs, shape = DOUBLE_BACKWARD_CASES[name]
    rng = np.random.default_rng(5)
    channels = shape[-1] if name == "layer_norm" else shape[1]
    arrays = [_array(rng, shape), _array(rng, channels), _array(rng, channels)]
    upstream = rng.standard_normal(shape)
    directions = [rng.standard_normal(a.shape) for a in arrays]
    d_inputs = [ds.tensor(a, requires_grad=True) for a in arrays]
    t_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    d_grads = ds.grad((ours(*d_inputs) * ds.tensor(upstream)).sum(), d_inputs, create_graph=True)
    t_grads = torch.autograd.grad((theirs(*t_inputs) * torch.tensor(upstream)).sum(), t_inputs, create_graph=True)
    for g_ds, g_t in zip(d_grads, t_grads):
        np.testing.assert_allclose(g_ds.detach().numpy(), g_t.detach().numpy(), rtol=1e-7, atol=1e-9)
    d_total = sum((g * ds.tensor(v)).sum() for g, v in zip(d_grads, directions))
    t_total = sum((g * torch.tensor(v)).sum() for g, v in zip(t_grads, directions))
    d_second = ds.grad(d_total, d_inputs, allow_unused=True)
    t_second = torch.autograd.grad(t_total, t_inputs, allow_unused=True)
    for mine, torchs, a in zip(d_second, t_second, arrays):
        expected = np.zeros_like(a) if torchs is None else torchs.numpy()
        got = np.zeros_like(a) if mine is None else mine.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


# -- kernels against the NumPy references -------------------------------------------------------------


@given(rows=st.integers(1, 30), width=st.integers(1, 40), dtype=FLOATS, affine=st.booleans())
def test_layer_norm_kernels_match_the_reference(rows, width, dtype, affine):
    rng = np.random.default_rng(rows * 100 + width)
    x, grad = _array(rng, (rows, width), dtype), _array(rng, (rows, width), dtype)
    weight, bias = (_array(rng, width, dtype), _array(rng, width, dtype)) if affine else (None, None)
    _compare(kernels.layer_norm_forward(x, weight, bias, 1e-5), reference.layer_norm_forward(x, weight, bias, 1e-5))
    _, mean, rstd = kernels.layer_norm_forward(x, weight, bias, 1e-5)
    _compare(kernels.layer_norm_backward(grad, x, mean, rstd, weight),
             reference.layer_norm_backward(grad, x, mean, rstd, weight))


@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 9)), dtype=FLOATS)
def test_batch_norm_kernels_match_the_reference(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x, grad = _array(rng, shape, dtype), _array(rng, shape, dtype)
    weight, bias = _array(rng, shape[1], dtype), _array(rng, shape[1], dtype)
    mean, var = kernels.batch_norm_statistics(x)
    _compare((mean, var), reference.batch_norm_statistics(x))
    rstd = (1 / np.sqrt(var + 1e-5)).astype(mean.dtype)
    scale = weight * rstd
    _compare(kernels.channel_affine(x, scale, mean, bias), reference.channel_affine(x, scale, mean, bias))
    _compare(kernels.batch_norm_backward(grad, x, mean, rstd, weight),
             reference.batch_norm_backward(grad, x, mean, rstd, weight))


@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 6)), dtype=FLOATS)
def test_group_norm_kernels_match_the_reference(shape, dtype):
    rng = np.random.default_rng(sum(shape) + 7)
    x, grad = _array(rng, shape, dtype), _array(rng, shape, dtype)
    channels = shape[1] * shape[2]
    weight, bias = _array(rng, channels, dtype), _array(rng, channels, dtype)
    _compare(kernels.group_norm_forward(x, weight, bias, 1e-5), reference.group_norm_forward(x, weight, bias, 1e-5))
    _, mean, rstd = kernels.group_norm_forward(x, weight, bias, 1e-5)
    _compare(kernels.group_norm_backward(grad, x, mean, rstd, weight),
             reference.group_norm_backward(grad, x, mean, rstd, weight))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norm_kernels_match_the_reference_on_the_parallel_path(dtype):
    rng = np.random.default_rng(8)
    x, grad = _array(rng, (64, 600), dtype), _array(rng, (64, 600), dtype)  # above PARALLEL_MIN_ELEMENTS
    weight, bias = _array(rng, 600, dtype), _array(rng, 600, dtype)
    _, mean, rstd = kernels.layer_norm_forward(x, weight, bias, 1e-5)
    _compare(kernels.layer_norm_backward(grad, x, mean, rstd, weight),
             reference.layer_norm_backward(grad, x, mean, rstd, weight))
    x3, grad3 = x.reshape(64, 6, 100), grad.reshape(64, 6, 100)
    mean, var = kernels.batch_norm_statistics(x3)
    _compare((mean, var), reference.batch_norm_statistics(x3))
    rstd = (1 / np.sqrt(var + 1e-5)).astype(mean.dtype)
    _compare(kernels.batch_norm_backward(grad3, x3, mean, rstd, weight[:6]),
             reference.batch_norm_backward(grad3, x3, mean, rstd, weight[:6]))
    x4, grad4 = x.reshape(64, 3, 2, 100), grad.reshape(64, 3, 2, 100)
    _, mean, rstd = kernels.group_norm_forward(x4, weight[:6], bias[:6], 1e-5)
    _compare(kernels.group_norm_backward(grad4, x4, mean, rstd, weight[:6]),
             reference.group_norm_backward(grad4, x4, mean, rstd, weight[:6]))


def test_a_group_of_one_value_gets_an_exactly_zero_input_gradient():
    rng = np.random.default_rng(9)
    x, grad, weight = (_array(rng, (4, 3, 1, 1), np.float32) for _ in range(3))
    _, mean, rstd = kernels.layer_norm_forward(x.reshape(12, 1), weight.reshape(12)[:1], None, 1e-5)
    assert np.all(kernels.layer_norm_backward(grad.reshape(12, 1), x.reshape(12, 1), mean, rstd,
                                              weight.reshape(12)[:1])[0] == 0)
    _, mean, rstd = kernels.group_norm_forward(x, weight[0, :, 0, 0], None, 1e-5)
    assert np.all(kernels.group_norm_backward(grad, x, mean, rstd, weight[0, :, 0, 0])[0] == 0)
    mean, var = kernels.batch_norm_statistics(x[:1, :, 0])
    rstd = (1 / np.sqrt(var + 1e-5)).astype(np.float32)
    assert np.all(kernels.batch_norm_backward(grad[:1, :, 0], x[:1, :, 0], mean, rstd, weight[0, :, 0, 0])[0] == 0)


def _compare(got: tuple, expected: tuple) -> None:
    for g, e in zip(got, expected):
        tol = {"rtol": 1e-4, "atol": 1e-4} if g.dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-10}
        np.testing.assert_allclose(g, e, **tol)


# -- errors ------------------------------------------------------------------------------------------


def test_normalization_errors_name_the_problem():
    x = ds.randn(3, 4)
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(5,\) must match the last dims"):
        layer_norm(x, (5,))
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape \(2, 3, 4\) must match"):
        layer_norm(x, (2, 3, 4))
    with pytest.raises(ValueError, match=r"layer_norm: weight must have shape \(4,\)"):
        layer_norm(x, 4, weight=ds.ones(3))
    with pytest.raises(TypeError, match="layer_norm: expected a floating point tensor"):
        layer_norm(ds.tensor([[1, 2]]), 2)
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var are needed in evaluation mode"):
        batch_norm(x, None, None)
    with pytest.raises(ValueError, match="batch_norm: expected more than 1 value per channel when training"):
        batch_norm(ds.randn(1, 4), None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: running_mean must have shape \(4,\)"):
        batch_norm(x, ds.zeros(3), ds.ones(4))
    with pytest.raises(TypeError, match="batch_norm: running_var must be a Tensor"):
        batch_norm(x, ds.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match=r"batch_norm: bias must have shape \(4,\)"):
        batch_norm(x, None, None, bias=ds.ones(2), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: expected an input of shape \(N, C, ...\)"):
        batch_norm(ds.ones(4), None, None, training=True)
    with pytest.raises(ValueError, match=r"group_norm: the number of channels \(4\) must be divisible by num_groups, "
                                         "got num_groups=3"):
        group_norm(ds.randn(2, 4, 5), 3)
    with pytest.raises(ValueError, match="num_groups=0"):
        group_norm(ds.randn(2, 4), 0)
    with pytest.raises(ValueError, match="group_norm: expected an input of shape"):
        group_norm(ds.randn(4), 2)
