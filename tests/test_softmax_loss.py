"""Softmax, log-softmax and the loss functions: forward and gradients against torch, kernels
against their NumPy references, double backward, and every argument error."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dslearn.kernels.cpu import softmax as kernels
from dslearn.kernels.reference import softmax as reference
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dslearn as ds
from dslearn.ops import loss as L
from dslearn.ops.softmax import log_softmax, softmax
from tests.oracle import check_against_torch, check_gradcheck
from tests.strategies import nonscalar_shapes

REDUCTIONS = st.sampled_from(["none", "mean", "sum"])
FLOATS = st.sampled_from([np.float32, np.float64])


def _array(rng, shape, dtype=np.float64, scale=3.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# -- softmax and log-softmax ----------------------------------------------------------------------


@given(shape=nonscalar_shapes, data=st.data(), dtype=FLOATS, which=st.sampled_from(["softmax", "log_softmax"]))
def test_softmax_and_log_softmax_match_torch_along_any_dim(shape, data, dtype, which):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = _array(np.random.default_rng(len(shape)), shape, dtype)
    ours, theirs = (softmax, F.softmax) if which == "softmax" else (log_softmax, F.log_softmax)
    check_against_torch(lambda t: ours(t, dim), lambda t: theirs(t, dim), x)


@pytest.mark.skipif(not callable(getattr(ds.ops, "softmax", None)), reason="softmax not yet exported by dslearn.ops")
def test_softmax_tensor_methods_match_torch():
    x = np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32)
    check_against_torch(lambda t: t.softmax(1), lambda t: t.softmax(1), x)
    check_against_torch(lambda t: t.log_softmax(0), lambda t: t.log_softmax(0), x)


def test_softmax_of_a_scalar_is_one():
    assert softmax(ds.tensor(3.0), 0).item() == 1.0


def test_softmax_is_stable_for_huge_logits_and_masks_minus_infinity():
    x = np.array([[1000.0, 1000.0, -np.inf], [-1e30, 0.0, 1e30]], dtype=np.float32)
    check_against_torch(lambda t: softmax(t, 1), lambda t: F.softmax(t, 1), x, grad=False)
    check_against_torch(lambda t: log_softmax(t, 1), lambda t: F.log_softmax(t, 1), x[:1, :2], grad=False)


def test_a_nan_makes_its_row_nan_like_torch():
    x = ds.tensor([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]])
    out = softmax(x, 1).numpy()
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


def test_half_precision_softmax_keeps_its_dtype():
    x = _array(np.random.default_rng(0), (4, 33)).astype(np.float16)
    check_against_torch(lambda t: softmax(t, 1), lambda t: F.softmax(t, 1), x, grad=False, rtol=2e-3, atol=1e-3)
    assert softmax(ds.tensor(x), 1, dtype=ds.float32).dtype == ds.float32


def test_softmax_gradients_pass_finite_differences():
    x = _array(np.random.default_rng(1), (3, 5))
    check_gradcheck(lambda t: softmax(t, 1), x)
    check_gradcheck(lambda t: log_softmax(t, 0), x)


@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax_double_backward_matches_torch(which):
    ours, theirs = (softmax, F.softmax) if which == "softmax" else (log_softmax, F.log_softmax)
    _check_double_backward(lambda t: ours(t, 1), lambda t: theirs(t, 1), _array(np.random.default_rng(2), (3, 4)))


def _check_double_backward(ds_fn, torch_fn, x: np.ndarray, *extra):
    """d/dx of sum(v * d(sum(u * f(x)))/dx), computed by both frameworks."""
    rng = np.random.default_rng(7)
    dx, tx = ds.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out_ds, out_t = ds_fn(dx, *extra[:1]), torch_fn(tx, *extra[1:])
    u = rng.standard_normal(tuple(out_t.shape))
    (g_ds,) = ds.grad((out_ds * ds.tensor(u)).sum(), [dx], create_graph=True)
    (g_t,) = torch.autograd.grad((out_t * torch.tensor(u)).sum(), [tx], create_graph=True)
    v = rng.standard_normal(x.shape)
    (gg_ds,) = ds.grad((g_ds * ds.tensor(v)).sum(), [dx])
    (gg_t,) = torch.autograd.grad((g_t * torch.tensor(v)).sum(), [tx])
    np.testing.assert_allclose(g_ds.detach().numpy(), g_t.detach().numpy(), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gg_ds.numpy(), gg_t.numpy(), rtol=1e-6, atol=1e-9)


def test_softmax_rejects_integer_input_and_bad_dim():
    with pytest.raises(TypeError, match="softmax: expected a floating point tensor"):
        softmax(ds.tensor([1, 2]), 0)
    with pytest.raises(IndexError, match="log_softmax: dim 2 is out of range"):
        log_softmax(ds.ones(2, 2), 2)


# -- kernels against the NumPy references -----------------------------------------------------------

ROW_SHAPES = st.tuples(st.integers(1, 40), st.integers(1, 70))


@given(shape=ROW_SHAPES, dtype=FLOATS, dim=st.sampled_from([0, 1]))
def test_softmax_kernels_match_the_reference(shape, dtype, dim):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    x, grad = _array(rng, shape, dtype, 5.0), _array(rng, shape, dtype)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for name in ("softmax", "log_softmax"):
        y = getattr(kernels, name)(x, dim)
        np.testing.assert_allclose(y, getattr(reference, name)(x, dim), **tol)
        np.testing.assert_allclose(getattr(kernels, name + "_backward")(y, grad, dim),
                                   getattr(reference, name + "_backward")(y, grad, dim), **tol)


@given(shape=ROW_SHAPES, dtype=FLOATS, smoothing=st.sampled_from([0.0, 0.3]), ignore=st.booleans())
def test_cross_entropy_kernels_match_the_reference(shape, dtype, smoothing, ignore):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    logits, weight, scale = _array(rng, shape, dtype), rng.random(shape[1]).astype(dtype), _array(rng, shape[0], dtype)
    target = rng.integers(0, shape[1], shape[0])
    if ignore:
        target[::2] = -100
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    loss, lse = kernels.cross_entropy_forward(logits, target, weight, -100, smoothing)
    expected_loss, expected_lse = reference.cross_entropy_forward(logits, target, weight, -100, smoothing)
    np.testing.assert_allclose(loss, expected_loss, **tol)
    np.testing.assert_allclose(lse, expected_lse, **tol)
    np.testing.assert_allclose(kernels.cross_entropy_backward(logits, lse, target, weight, -100, smoothing, scale),
                               reference.cross_entropy_backward(logits, lse, target, weight, -100, smoothing, scale),
                               **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_the_reference_on_the_parallel_path(dtype):
    rng = np.random.default_rng(3)
    x, grad = _array(rng, (70, 1003), dtype), _array(rng, (70, 1003), dtype)  # above PARALLEL_MIN_ELEMENTS
    target = rng.integers(0, 1003, 70)
    tol = {"rtol": 1e-5, "atol": 2e-5}  # float32 sums over 1003 elements
    for name in ("softmax", "log_softmax"):
        y = getattr(kernels, name)(x, 1)
        np.testing.assert_allclose(y, getattr(reference, name)(x, 1), **tol)
        np.testing.assert_allclose(getattr(kernels, name + "_backward")(y, grad, 1),
                                   getattr(reference, name + "_backward")(y, grad, 1), **tol)
    weight = np.ones(1003, dtype)
    loss, lse = kernels.cross_entropy_forward(x, target, weight, -100, 0.1)
    np.testing.assert_allclose(loss, reference.cross_entropy_forward(x, target, weight, -100, 0.1)[0], rtol=1e-5)
    np.testing.assert_allclose(kernels.cross_entropy_backward(x, lse, target, weight, -100, 0.1, grad[:, 0]),
                               reference.cross_entropy_backward(x, lse, target, weight, -100, 0.1, grad[:, 0]),
                               rtol=1e-5, atol=1e-7)


def test_float32_exp_is_within_two_ulp_of_numpy_and_handles_the_edges():
    values = np.concatenate([np.linspace(-87.0, 0.0, 5001), [-0.0, -1e-30]]).astype(np.float32)
    ours = np.array([kernels._exp_float32(v) for v in values], dtype=np.float32)
    exact = np.exp(values.astype(np.float64))
    assert np.all(np.abs(ours - exact) <= 2 * np.spacing(exact.astype(np.float32)))
    assert kernels._exp_float32(np.float32(0.0)) == 1.0
    assert kernels._exp_float32(np.float32(-88.0)) == 0.0 and kernels._exp_float32(np.float32(-np.inf)) == 0.0
    assert np.isnan(kernels._exp_float32(np.float32(np.nan)))


# -- cross-entropy and nll ------------------------------------------------------------------------

CLASS_SHAPES = st.tuples(st.integers(1, 6), st.integers(1, 7), st.lists(st.integers(1, 3), max_size=2))


def _class_problem(draw_shape, seed, dtype, ignore: bool):
    n, c, spatial = draw_shape
    rng = np.random.default_rng(seed)
    x = _array(rng, (n, c, *spatial), dtype)
    target = rng.integers(0, c, (n, *spatial))
    if ignore and target.size > 1:
        target.reshape(-1)[::3] = -100
    return x, target, rng.random(c).astype(dtype) + 0.1


@given(shape=CLASS_SHAPES, dtype=FLOATS, weighted=st.booleans(), ignore=st.booleans(), reduction=REDUCTIONS,
       smoothing=st.sampled_from([0.0, 0.1, 0.35]))
def test_cross_entropy_with_class_indices_matches_torch(shape, dtype, weighted, ignore, reduction, smoothing):
    x, target, weight = _class_problem(shape, sum(shape[2]) + shape[0], dtype, ignore)
    weight = weight if weighted else None
    check_against_torch(
        lambda t, y: L.cross_entropy(t, y, weight=None if weight is None else ds.tensor(weight), reduction=reduction,
                                     label_smoothing=smoothing),
        lambda t, y: F.cross_entropy(t, y, weight=None if weight is None else torch.tensor(weight),
                                     reduction=reduction, label_smoothing=smoothing),
        x, target)


@given(shape=CLASS_SHAPES, weighted=st.booleans(), reduction=REDUCTIONS, smoothing=st.sampled_from([0.0, 0.2]))
def test_cross_entropy_with_class_probabilities_matches_torch(shape, weighted, reduction, smoothing):
    x, _, weight = _class_problem(shape, shape[1], np.float64, False)
    probabilities = np.random.default_rng(1).dirichlet(np.ones(x.shape[1]), x.shape[:1] + x.shape[2:])
    probabilities = np.moveaxis(probabilities, -1, 1).copy()
    weight = weight if weighted else None
    check_against_torch(
        lambda t, p: L.cross_entropy(t, p, weight=None if weight is None else ds.tensor(weight), reduction=reduction,
                                     label_smoothing=smoothing),
        lambda t, p: F.cross_entropy(t, p, weight=None if weight is None else torch.tensor(weight),
                                     reduction=reduction, label_smoothing=smoothing),
        x, probabilities)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_of_a_single_sample_and_of_an_in_range_ignore_index(reduction):
    x = _array(np.random.default_rng(4), (5,))
    check_against_torch(lambda t, y: L.cross_entropy(t, y, reduction=reduction),
                        lambda t, y: F.cross_entropy(t, y, reduction=reduction), x, np.array(3))
    x2 = _array(np.random.default_rng(5), (4, 3))
    check_against_torch(lambda t, y: L.cross_entropy(t, y, ignore_index=1, reduction=reduction, label_smoothing=0.1),
                        lambda t, y: F.cross_entropy(t, y, ignore_index=1, reduction=reduction, label_smoothing=0.1),
                        x2, np.array([1, 0, 2, 1]))


def test_cross_entropy_with_every_target_ignored_is_nan_for_mean_and_has_zero_gradient():
    x = ds.ones(3, 4, requires_grad=True)
    loss = L.cross_entropy(x, ds.tensor([-100, -100, -100]))
    assert np.isnan(loss.item()) and np.isnan(F.cross_entropy(torch.ones(3, 4), torch.tensor([-100] * 3)).item())
    loss.backward()
    assert np.all(x.grad.numpy() == 0)


def test_cross_entropy_on_float32_logits_matches_torch_at_mnist_and_imagenet_shapes():
    rng = np.random.default_rng(6)
    for shape in [(64, 10), (70, 1000)]:
        x = _array(rng, shape, np.float32)
        target = rng.integers(0, shape[1], shape[0])
        check_against_torch(L.cross_entropy, F.cross_entropy, x, target)


def test_cross_entropy_gradients_pass_finite_differences():
    x = _array(np.random.default_rng(8), (4, 3, 2))
    target = np.array([[0, 2], [1, -100], [2, 2], [0, 1]])
    weight = ds.tensor([0.5, 1.0, 2.0], dtype=ds.float64)
    check_gradcheck(lambda t: L.cross_entropy(t, ds.tensor(target), weight=weight, label_smoothing=0.2), x)
    check_gradcheck(lambda t: L.cross_entropy(t, ds.tensor(target), reduction="none"), x)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_double_backward_matches_torch(reduction):
    x = _array(np.random.default_rng(9), (4, 5))
    target = np.array([4, 0, -100, 2])
    weight = np.array([1.0, 2.0, 0.5, 1.0, 3.0])
    _check_double_backward(
        lambda t, y: L.cross_entropy(t, y, weight=ds.tensor(weight), reduction=reduction, label_smoothing=0.1),
        lambda t, y: F.cross_entropy(t, y, weight=torch.tensor(weight), reduction=reduction, label_smoothing=0.1),
        x, ds.tensor(target), torch.tensor(target))


@given(shape=CLASS_SHAPES, weighted=st.booleans(), ignore=st.booleans(), reduction=REDUCTIONS)
def test_nll_loss_matches_torch(shape, weighted, ignore, reduction):
    x, target, weight = _class_problem(shape, shape[0] + 3, np.float64, ignore)
    weight = weight if weighted else None
    check_against_torch(
        lambda t, y: L.nll_loss(t, y, weight=None if weight is None else ds.tensor(weight), reduction=reduction),
        lambda t, y: F.nll_loss(t, y, weight=None if weight is None else torch.tensor(weight), reduction=reduction),
        x, target)


def test_nll_loss_of_a_single_sample_matches_torch():
    check_against_torch(lambda t, y: L.nll_loss(t, y, reduction="none"),
                        lambda t, y: F.nll_loss(t, y, reduction="none"), _array(np.random.default_rng(10), (4,)),
                        np.array(2))


@pytest.mark.parametrize("fn", [L.cross_entropy, L.nll_loss])
def test_class_index_errors_name_the_problem(fn):
    name = fn.__name__
    x = ds.randn(4, 3)
    with pytest.raises(IndexError, match=f"{name}: target class 3 is out of range for 3 classes"):
        fn(x, ds.tensor([0, 1, 3, 2]))
    with pytest.raises(IndexError, match="target class -5 is out of range"):
        fn(x, ds.tensor([0, 1, -5, -100]))
    with pytest.raises(TypeError, match=f"{name}: target must hold integer class indices"):
        fn(x, ds.tensor([True, False, True, True]))
    with pytest.raises(ValueError, match=r"target of shape \(3,\) does not match input of shape \(4, 3\)"):
        fn(x, ds.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=f"{name}: reduction must be one of 'none', 'mean', 'sum', got 'avg'"):
        fn(x, ds.tensor([0, 1, 2, 1]), reduction="avg")
    with pytest.raises(ValueError, match=r"weight must have one entry per class, shape \(3,\)"):
        fn(x, ds.tensor([0, 1, 2, 1]), weight=ds.ones(4))
    with pytest.raises(ValueError, match="input must have a class dimension"):
        fn(ds.tensor(1.0), ds.tensor(0))
    with pytest.raises(TypeError, match="expected a floating point tensor"):
        fn(ds.tensor([[1, 2]]), ds.tensor([0]))


def test_cross_entropy_rejects_bad_probabilities_and_smoothing():
    with pytest.raises(ValueError, match="float targets are class probabilities and must have the input's shape"):
        L.cross_entropy(ds.randn(4, 3), ds.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        L.cross_entropy(ds.randn(2, 3), ds.tensor([0, 1]), label_smoothing=1.5)


# -- regression, binary and KL losses ---------------------------------------------------------------

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)


@given(shape=SHAPES, reduction=REDUCTIONS, which=st.sampled_from(["mse_loss", "l1_loss"]))
def test_mse_and_l1_losses_match_torch(shape, reduction, which):
    rng = np.random.default_rng(len(shape))
    check_against_torch(lambda a, b: getattr(L, which)(a, b, reduction=reduction),
                        lambda a, b: getattr(F, which)(a, b, reduction=reduction),
                        _array(rng, shape), _array(rng, shape))


@given(shape=SHAPES, reduction=REDUCTIONS, beta=st.sampled_from([0.0, 0.5, 1.0, 2.5]))
def test_smooth_l1_loss_matches_torch(shape, reduction, beta):
    rng = np.random.default_rng(len(shape) + 1)
    check_against_torch(lambda a, b: L.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                        lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                        _array(rng, shape), _array(rng, shape))


@pytest.mark.filterwarnings("ignore:Using a target size")  # torch's own warning
def test_pointwise_losses_broadcast_with_a_warning_like_torch():
    with pytest.warns(UserWarning, match=r"mse_loss: target size \(3,\) differs from input size \(3, 1\)"):
        check_against_torch(L.mse_loss, F.mse_loss, np.ones((3, 1)), np.arange(3.0), grad=False)


@given(shape=SHAPES, reduction=REDUCTIONS, weighted=st.booleans(), pos_weighted=st.booleans())
def test_binary_cross_entropy_with_logits_matches_torch(shape, reduction, weighted, pos_weighted):
    rng = np.random.default_rng(len(shape) + 2)
    x, target = _array(rng, shape), rng.random(shape)
    weight = rng.random(shape) if weighted else None
    pos_weight = rng.random(shape[-1:]) * 3 if pos_weighted else None
    check_against_torch(
        lambda a, b: L.binary_cross_entropy_with_logits(
            a, b, weight=None if weight is None else ds.tensor(weight), reduction=reduction,
            pos_weight=None if pos_weight is None else ds.tensor(pos_weight)),
        lambda a, b: F.binary_cross_entropy_with_logits(
            a, b, weight=None if weight is None else torch.tensor(weight), reduction=reduction,
            pos_weight=None if pos_weight is None else torch.tensor(pos_weight)),
        x, target)


def test_binary_cross_entropy_with_logits_is_stable_for_extreme_logits():
    x = np.array([-200.0, -30.0, 0.0, 30.0, 200.0])
    check_against_torch(lambda a, b: L.binary_cross_entropy_with_logits(a, b, reduction="none"),
                        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"),
                        x, np.array([0.0, 1.0, 0.5, 0.0, 1.0]))


@given(shape=SHAPES, reduction=REDUCTIONS, weighted=st.booleans())
def test_binary_cross_entropy_matches_torch(shape, reduction, weighted):
    rng = np.random.default_rng(len(shape) + 3)
    probabilities, target = rng.uniform(0.02, 0.98, shape), rng.random(shape)
    weight = rng.random(shape) if weighted else None
    check_against_torch(
        lambda a, b: L.binary_cross_entropy(a, b, weight=None if weight is None else ds.tensor(weight),
                                            reduction=reduction),
        lambda a, b: F.binary_cross_entropy(a, b, weight=None if weight is None else torch.tensor(weight),
                                            reduction=reduction),
        probabilities, target)


def test_binary_cross_entropy_clamps_its_logs_at_minus_100_like_torch():
    check_against_torch(lambda a, b: L.binary_cross_entropy(a, b, reduction="none"),
                        lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
                        np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0]), grad_inputs=[0])


@given(shape=SHAPES, reduction=st.sampled_from(["none", "sum", "batchmean"]), log_target=st.booleans())
def test_kl_div_matches_torch(shape, reduction, log_target):
    rng = np.random.default_rng(len(shape) + 4)
    log_p = np.log(rng.dirichlet(np.ones(shape[-1]), shape[:-1]))
    q = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    check_against_torch(lambda a, b: L.kl_div(a, b, reduction=reduction, log_target=log_target),
                        lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                        log_p, np.log(q) if log_target else q)


def test_kl_div_mean_warns_like_torch_and_zero_targets_contribute_nothing():
    with pytest.warns(UserWarning, match="batchmean"):
        check_against_torch(lambda a, b: L.kl_div(a, b), lambda a, b: F.kl_div(a, b),
                            np.log(np.array([[0.2, 0.8]])), np.array([[0.0, 1.0]]), grad_inputs=[0])


@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"])
def test_composite_losses_pass_finite_differences_in_both_inputs(name):
    rng = np.random.default_rng(11)
    a, b = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0.1, 0.9, (3, 4))
    check_gradcheck(lambda x, y: getattr(L, name)(x, y, reduction="sum"), a, b)


def test_binary_cross_entropy_double_backward_matches_torch():
    target = ds.tensor([0.3, 0.9, 0.0]), torch.tensor([0.3, 0.9, 0.0], dtype=torch.float64)
    _check_double_backward(lambda t, y: L.binary_cross_entropy(t, y.double()),
                           lambda t, y: F.binary_cross_entropy(t, y), np.array([0.2, 0.5, 0.7]), *target)


def test_regression_and_binary_loss_errors_name_the_problem():
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be >= 0, got -1"):
        L.smooth_l1_loss(ds.ones(2), ds.ones(2), beta=-1.0)
    with pytest.raises(ValueError, match=r"binary_cross_entropy: target size \(3,\) must be the same as input size"):
        L.binary_cross_entropy(ds.full((3, 1), 0.5), ds.ones(3))
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: target size"):
        L.binary_cross_entropy_with_logits(ds.ones(3, 1), ds.ones(3))
    with pytest.raises(ValueError, match=r"all elements of input must be probabilities in \[0, 1\]"):
        L.binary_cross_entropy(ds.tensor([1.5]), ds.ones(1))
    with pytest.raises(ValueError, match="kl_div: reduction must be one of .*'batchmean', got 'avg'"):
        L.kl_div(ds.ones(2), ds.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="mse_loss: reduction must be one of"):
        L.mse_loss(ds.ones(2), ds.ones(2), reduction="max")
    with pytest.raises(TypeError, match="l1_loss: expected a floating point tensor"):
        L.l1_loss(ds.tensor([1, 2]), ds.tensor([1, 2]))


def test_losses_keep_the_input_dtype_when_weights_come_in_float64():
    x, target = ds.randn(3, 4), ds.rand(3, 4)
    weight64 = ds.tensor(np.ones((3, 4)), dtype=ds.float64)
    assert L.binary_cross_entropy_with_logits(x, target, weight=weight64, pos_weight=weight64[0]).dtype == ds.float32
    assert L.binary_cross_entropy(target, target, weight=weight64).dtype == ds.float32
    assert L.cross_entropy(x, target, weight=weight64[0]).dtype == ds.float32
    assert L.cross_entropy(x, ds.tensor([0, 1, 3]), weight=weight64[0]).dtype == ds.float32
