"""Mixed precision: autocast's casting policy (NumPy and torch as oracles), GradScaler against
torch.amp.GradScaler, float16 underflow recovered by loss scaling, and bfloat16 MNIST training."""

import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from dslearn.amp import FLOAT32_OPS, LOW_PRECISION_OPS, GradScaler, autocast, current_autocast, is_autocast_enabled
from dslearn.autograd import Function, OpObserver, observe

MNIST_DIR = Path(os.environ.get("DSLEARN_DATA", "")) / "mnist"
LOW_NUMPY = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def rounded(array: np.ndarray, dtype_name: str) -> np.ndarray:
    """``array`` rounded to a low-precision dtype and widened back to float32."""
    return array.astype(LOW_NUMPY[dtype_name]).astype(np.float32)


class RecordInputs(OpObserver):
    """Installed inside an autocast block, it sees each op's inputs after autocast recast them."""

    def __init__(self):
        self.dtypes = {}

    def forward(self, fn, inputs, attrs, run):
        self.dtypes.setdefault(fn.name, [t.dtype.name for t in inputs if t.is_floating_point()])
        return run()


def all_function_names(cls=Function):
    names = set()
    for sub in cls.__subclasses__():
        names |= {sub.name} | all_function_names(sub)
    return names


# -- autocast: the policy ------------------------------------------------------------------------


def test_every_listed_op_name_is_an_op():
    import dslearn.ops  # noqa: F401  (every op class registered)

    assert (LOW_PRECISION_OPS | FLOAT32_OPS) <= all_function_names()


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
@given(batch=st.integers(1, 5), fan_in=st.integers(1, 9), fan_out=st.integers(1, 6), seed=st.integers(0, 99))
def test_linear_computes_on_rounded_operands_and_returns_float32(low, batch, fan_in, fan_out, seed):
    rng = np.random.default_rng(seed)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(batch, fan_in), (fan_out, fan_in), (fan_out,)])
    with autocast(dtype=getattr(ds, low)):
        out = ds.linear(ds.tensor(x), ds.tensor(w), ds.tensor(b))
    product = rounded(rounded(x, low) @ rounded(w, low).T, low)  # tensor-core style: round in, round out
    expected = rounded(product + rounded(b, low), low)
    assert out.dtype == ds.float32
    np.testing.assert_array_equal(out.numpy(), expected)


def test_linear_agrees_with_torch_bfloat16_autocast():
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(8, 32), (16, 32), (16,)])
    with autocast(dtype=ds.bfloat16):
        ours = ds.linear(ds.tensor(x), ds.tensor(w), ds.tensor(b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))
    np.testing.assert_allclose(ours.numpy(), theirs.float().numpy(), rtol=2 ** -7, atol=2 ** -7)


def test_gradients_are_rounded_to_the_low_dtype_and_come_back_in_float32():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((3, 6)).astype(np.float32)
    upstream = rng.standard_normal((4, 3)).astype(np.float32)
    weight = ds.tensor(w, requires_grad=True)
    with autocast(dtype=ds.float16):
        out = ds.linear(ds.tensor(x), weight)
    out.backward(ds.tensor(upstream))
    expected = rounded(rounded(upstream, "float16").T @ rounded(x, "float16"), "float16")
    assert weight.grad.dtype == ds.float32
    np.testing.assert_array_equal(weight.grad.numpy(), expected)


def test_matmul_and_conv2d_run_in_low_precision_and_softmax_and_losses_in_float32():
    recorder = RecordInputs()
    x16 = ds.randn(2, 3, 6, 6).half()
    with autocast(dtype=ds.bfloat16), observe(recorder):
        h = ds.conv2d(ds.randn(2, 3, 6, 6), ds.randn(4, 3, 3, 3))
        y = ds.randn(5, 4) @ ds.randn(4, 3)
        probabilities = ds.softmax(x16, 1)
        loss = ds.cross_entropy(ds.randn(5, 3).bfloat16(), ds.tensor([0, 1, 2, 0, 1]))
        total = x16.sum()
    assert recorder.dtypes["conv2d"] == ["bfloat16", "bfloat16"]
    assert recorder.dtypes["matmul"] == ["bfloat16", "bfloat16"]
    assert recorder.dtypes["softmax"] == recorder.dtypes["cross_entropy"] == recorder.dtypes["sum"] == ["float32"]
    assert (h.dtype, y.dtype, probabilities.dtype, loss.dtype, total.dtype) == (
        ds.float32, ds.float32, ds.float16, ds.bfloat16, ds.float16)  # each result keeps its inputs' dtype


def test_float32_ops_compute_from_the_widened_values():
    x16 = ds.tensor(np.random.default_rng(2).standard_normal((4, 7)) * 3, dtype=ds.float16)
    with autocast(dtype=ds.float16):
        got = ds.log_softmax(x16, 1)
    expected = torch.log_softmax(torch.from_numpy(x16.numpy().astype(np.float32)), 1).numpy().astype(np.float16)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_other_ops_and_float64_inputs_are_left_alone():
    recorder = RecordInputs()
    with autocast(dtype=ds.float16), observe(recorder):
        ds.randn(3).relu()
        ds.randn(2, 2, dtype=ds.float64) @ ds.randn(2, 2, dtype=ds.float64)
    assert recorder.dtypes == {"relu": ["float32"], "matmul": ["float64", "float64"]}


def test_nesting_the_innermost_block_decides_and_exiting_restores():
    a = ds.tensor([[1.0 + 2 ** -9]])
    with autocast(dtype=ds.float16):
        assert (a @ a).item() == pytest.approx((1 + 2 ** -9) ** 2, rel=1e-3)  # float16 keeps 2**-9
        with autocast(dtype=ds.bfloat16):
            assert (a @ a).item() == 1.0  # bfloat16 does not
            with autocast(enabled=False):
                assert (a @ a).item() == pytest.approx((1 + 2 ** -9) ** 2, rel=1e-7)
            assert current_autocast().dtype == ds.bfloat16
        assert current_autocast().dtype == ds.float16
    assert current_autocast() is None and (a @ a).item() == pytest.approx((1 + 2 ** -9) ** 2, rel=1e-7)


def test_block_is_left_after_an_exception():
    with pytest.raises(ValueError), autocast():
        raise ValueError("inside")
    assert current_autocast() is None and not is_autocast_enabled()


def test_decorator_form_enters_a_fresh_block_per_call_even_recursively():
    @autocast(dtype=ds.bfloat16)
    def depth(n):
        assert is_autocast_enabled() and current_autocast().dtype == ds.bfloat16
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3 and current_autocast() is None


def test_cuda_autocast_leaves_cpu_tensors_alone():
    recorder = RecordInputs()
    with autocast("cuda"), observe(recorder):
        ds.ones(2, 2) @ ds.ones(2, 2)
        assert is_autocast_enabled("cuda") and not is_autocast_enabled("cpu")
        assert current_autocast().dtype == ds.float16  # the CUDA default, as torch
    assert recorder.dtypes["matmul"] == ["float32", "float32"]


def test_default_cpu_dtype_is_bfloat16():
    assert autocast().dtype == ds.bfloat16


def test_autocast_applies_only_in_its_own_thread():
    import threading

    seen = []
    with autocast(dtype=ds.bfloat16):
        worker = threading.Thread(target=lambda: seen.append((ds.tensor([[1.0 + 2 ** -9]]) @ ds.ones(1, 1)).item()))
        worker.start()
        worker.join()
    assert seen == [pytest.approx(1 + 2 ** -9, rel=1e-7)]


def test_backward_inside_the_block_gives_the_same_gradients_as_outside():
    rng = np.random.default_rng(3)
    x = ds.tensor(rng.standard_normal((5, 4)).astype(np.float32))
    grads = []
    for backward_inside in (False, True):
        _ = ds.manual_seed(0)
        model = ds.nn.Sequential(ds.nn.Linear(4, 8), ds.nn.ReLU(), ds.nn.Linear(8, 3))
        with autocast(dtype=ds.float16):
            loss = model(x).square().mean()
            if backward_inside:
                loss.backward()
        if not backward_inside:
            loss.backward()
        grads.append([p.grad.numpy() for p in model.parameters()])
    for outside, inside in zip(*grads):
        np.testing.assert_array_equal(outside, inside)


@pytest.mark.parametrize("make, message", [
    (lambda: autocast("tpu"), "device_type must be 'cpu' or 'cuda'"),
    (lambda: autocast(dtype=ds.float64), "dtype must be float16 or bfloat16, got float64"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_entering_the_same_block_twice_is_refused():
    block = autocast()
    with block, pytest.raises(RuntimeError, match="already active"):
        block.__enter__()


# -- GradScaler ----------------------------------------------------------------------------------


def scaler_run(make_scaler, grads_per_step, module):
    """Drive a scaler (ours or torch's) through steps with given raw gradients; record scale and weights."""
    weight = module.tensor([1.0, -1.0], requires_grad=True)
    optimizer = module.optim.SGD([weight], lr=0.5)
    scaler = make_scaler()
    history = []
    for raw in grads_per_step:
        optimizer.zero_grad()
        loss = scaler.scale((weight * module.tensor(raw)).sum())
        loss.backward()
        scaler.step(optimizer)
        scaler.update()
        history.append((scaler.get_scale(), weight.detach().numpy().tolist()))
    return history


def test_scale_sequence_and_skipped_steps_match_torch():
    inf, nan = float("inf"), float("nan")
    steps = [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [inf, 1.0], [1.0, 2.0], [1.0, nan], [0.5, 0.5], [1.0, 1.0],
             [1.0, 1.0], [1.0, 1.0]]
    options = dict(init_scale=256.0, growth_factor=4.0, backoff_factor=0.25, growth_interval=3)
    ours = scaler_run(lambda: GradScaler(**options), steps, ds)
    theirs = scaler_run(lambda: torch.amp.GradScaler("cpu", **options), steps, torch)
    assert ours == theirs


def test_skipped_steps_leave_the_parameters_unchanged_and_are_counted():
    weight = ds.tensor([1.0], requires_grad=True)
    optimizer = ds.optim.SGD([weight], lr=0.1)
    scaler = GradScaler(init_scale=2.0 ** 20)
    with np.errstate(over="ignore"):
        scaler.scale(weight * 1e35).sum().backward()  # 1e35 * 2**20 overflows float32
    assert scaler.step(optimizer) is None
    scaler.update()
    assert weight.item() == 1.0 and scaler.skipped_steps == 1 and scaler.get_scale() == 2.0 ** 19


def test_unscale_before_clipping_then_step_does_not_unscale_again():
    weight = ds.tensor([3.0, 4.0], requires_grad=True)
    optimizer = ds.optim.SGD([weight], lr=1.0)
    scaler = GradScaler(init_scale=1024.0)
    scaler.scale((weight * weight).sum() / 2).backward()
    scaler.unscale_(optimizer)
    np.testing.assert_allclose(weight.grad.numpy(), [3.0, 4.0])
    ds.nn.utils.clip_grad_norm_([weight], 1.0)
    scaler.step(optimizer)
    np.testing.assert_allclose(weight.detach().numpy(), [3.0 - 0.6, 4.0 - 0.8], rtol=1e-5)


def test_unscaling_gradients_that_share_memory_divides_each_once():
    a, b = ds.ones(3, requires_grad=True), ds.ones(3, requires_grad=True)
    optimizer = ds.optim.SGD([a, b], lr=1.0)
    scaler = GradScaler(init_scale=8.0)
    scaler.scale((a + b).sum()).backward()  # add's backward hands the same gradient to both inputs
    scaler.unscale_(optimizer)
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0, 1.0])


def test_scale_accepts_lists_and_tuples_of_tensors():
    scaler = GradScaler(init_scale=4.0)
    first, second = scaler.scale([ds.tensor(1.0), ds.tensor(2.0)])
    assert (first.item(), second.item()) == (4.0, 8.0)
    assert isinstance(scaler.scale((ds.tensor(1.0),)), tuple)


def test_disabled_scaler_passes_everything_through():
    weight = ds.tensor([1.0], requires_grad=True)
    optimizer = ds.optim.SGD([weight], lr=0.5)
    scaler = GradScaler(enabled=False)
    loss = weight.sum()
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    loss.backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    assert weight.item() == 0.5 and scaler.state_dict() == {}


def test_state_dict_round_trip_matches_torch_keys():
    scaler = GradScaler(init_scale=32.0, growth_interval=1)
    weight = ds.tensor([1.0], requires_grad=True)
    optimizer = ds.optim.SGD([weight], lr=0.1)
    scaler.scale(weight.sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    restored = GradScaler()
    restored.load_state_dict(scaler.state_dict())
    assert restored.state_dict() == scaler.state_dict() == {
        "scale": 64.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 1, "_growth_tracker": 0}
    assert set(scaler.state_dict()) == set(torch.amp.GradScaler("cpu").state_dict())
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor(), scaler.get_growth_interval()) == (2.0, 0.5, 1)


@pytest.mark.parametrize("options, message", [
    (dict(init_scale=0.0), "init_scale must be a positive finite number"),
    (dict(init_scale=float("inf")), "init_scale must be a positive finite number"),
    (dict(growth_factor=1.0), "growth_factor must be greater than 1"),
    (dict(backoff_factor=1.5), "backoff_factor must be between 0 and 1"),
    (dict(growth_interval=0), "growth_interval must be a positive int"),
])
def test_bad_constructor_arguments_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        GradScaler(**options)


def scaler_with_gradient(dtype=ds.float32):
    weight = ds.ones(2, dtype=dtype, requires_grad=True)
    optimizer = ds.optim.SGD([weight], lr=0.1)
    scaler = GradScaler(init_scale=1024.0)
    scaler.scale(weight.sum()).backward()
    return scaler, optimizer


def test_misuse_is_refused_with_a_message():
    scaler, optimizer = scaler_with_gradient()
    scaler.unscale_(optimizer)
    with pytest.raises(RuntimeError, match="already called on this optimizer"):
        scaler.unscale_(optimizer)
    scaler.step(optimizer)
    with pytest.raises(RuntimeError, match="step: already called"):
        scaler.step(optimizer)
    with pytest.raises(RuntimeError, match="unscale_: called after step"):
        scaler.unscale_(optimizer)
    scaler.update()
    with pytest.raises(RuntimeError, match="no unscale_\\(\\) or step\\(\\) was recorded"):
        scaler.update()
    with pytest.raises(RuntimeError, match="closures are not supported"):
        scaler.step(optimizer, closure=lambda: None)
    with pytest.raises(TypeError, match="expected a Tensor or a list or tuple"):
        scaler.scale(3.0)
    with pytest.raises(ValueError, match="new_scale must be a positive finite number"):
        scaler.update(new_scale=-1.0)
    with pytest.raises(RuntimeError, match="the state is empty"):
        scaler.load_state_dict({})


def test_float16_gradients_are_refused():
    scaler, optimizer = scaler_with_gradient(ds.float16)
    with pytest.raises(ValueError, match="the gradients are float16"):
        scaler.unscale_(optimizer)


def test_update_with_new_scale_sets_it():
    scaler, optimizer = scaler_with_gradient()
    scaler.step(optimizer)
    scaler.update(new_scale=3.0)
    assert scaler.get_scale() == 3.0


# -- the stories: float16 underflow, recovered by scaling; bfloat16 training -------------------


def tiny_gradient_problem():
    """A regression whose loss carries a 1e-7 weight, as a small auxiliary term would: gradients near 1e-9."""
    rng = np.random.default_rng(4)
    x = ds.tensor(rng.standard_normal((32, 16)).astype(np.float32))
    target = ds.tensor(rng.standard_normal((32, 4)).astype(np.float32))
    _ = ds.manual_seed(0)
    return ds.nn.Linear(16, 4), x, target


def gradients(model, x, target, dtype=None, scaler=None):
    model.zero_grad()
    with autocast(dtype=dtype or ds.float16, enabled=dtype is not None):
        loss = ds.nn.functional.mse_loss(model(x), target) * 1e-7
    (scaler.scale(loss) if scaler else loss).backward()
    if scaler:
        scaler.unscale_(ds.optim.SGD(model.parameters(), lr=0.0))
    return model.weight.grad.numpy().copy()


def test_float16_without_scaling_loses_small_gradients_and_the_scaler_recovers_them():
    model, x, target = tiny_gradient_problem()
    exact = gradients(model, x, target)
    assert np.abs(exact).max() < 6e-8  # below float16's smallest subnormal
    assert np.count_nonzero(exact) == exact.size
    lost = gradients(model, x, target, dtype=ds.float16)
    assert np.count_nonzero(lost) == 0  # every gradient underflowed to zero
    recovered = gradients(model, x, target, dtype=ds.float16, scaler=GradScaler())
    np.testing.assert_allclose(recovered, exact, rtol=2e-2, atol=1e-3 * np.abs(exact).max())


def test_bfloat16_has_float32_range_and_needs_no_scaling():
    model, x, target = tiny_gradient_problem()
    exact = gradients(model, x, target)
    bf16 = gradients(model, x, target, dtype=ds.bfloat16)
    np.testing.assert_allclose(bf16, exact, rtol=5e-2, atol=2e-2 * np.abs(exact).max())


def test_float16_training_learns_only_with_the_scaler():
    losses = {}
    for use_scaler in (False, True):
        model, x, target = tiny_gradient_problem()
        optimizer = ds.optim.SGD(model.parameters(), lr=1e6)  # the 1e-7 loss weight makes steps tiny
        scaler = GradScaler(enabled=use_scaler)
        for _ in range(20):
            optimizer.zero_grad()
            with autocast(dtype=ds.float16):
                loss = ds.nn.functional.mse_loss(model(x), target)
            scaler.scale(loss * 1e-7).backward()
            scaler.step(optimizer)
            scaler.update()
        losses[use_scaler] = loss.item()
    model, x, target = tiny_gradient_problem()
    initial = ds.nn.functional.mse_loss(model(x), target).item()
    assert losses[False] == pytest.approx(initial, rel=1e-3)  # no gradient, no learning
    assert losses[True] < 0.8 * initial


@pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                    reason=f"the MNIST files are not in DSLEARN_DATA ({MNIST_DIR})")
def test_bfloat16_mnist_mlp_trains_within_one_point_of_float32():
    """Two epochs of MNIST-10k (8,000 training images), float32 against bfloat16 autocast, same seed.

    Measured: 92.9% (float32) and 93.0% (bfloat16) with the batches of 128 used here."""
    from dslearn.data import DataLoader, TsinghuaDataset
    from dslearn.models import MnistMLP
    from dslearn.training import evaluate
    from dslearn.training.mnist import mnist_transforms

    train = TsinghuaDataset("MNIST", split="train", transform=mnist_transforms(False), download=False)
    test = TsinghuaDataset("MNIST", split="test", transform=mnist_transforms(False), download=False)
    accuracy = {}
    for dtype in (None, ds.bfloat16):
        _ = ds.manual_seed(0)
        model = MnistMLP()
        optimizer = ds.optim.Adam(model.parameters(), lr=1e-3)
        loader = DataLoader(train, batch_size=128, shuffle=True, generator=ds.Generator().manual_seed(0))
        for _ in range(2):
            for inputs, targets in loader:
                optimizer.zero_grad()
                with autocast(dtype=ds.bfloat16, enabled=dtype is not None):
                    loss = ds.cross_entropy(model(inputs), targets)
                loss.backward()
                optimizer.step()
        accuracy[dtype] = evaluate(model, DataLoader(test, batch_size=500))["accuracy"]
    assert accuracy[None] > 0.9, accuracy
    assert abs(accuracy[ds.bfloat16] - accuracy[None]) < 0.01, accuracy
