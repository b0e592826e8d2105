"""Memory tracking (closed-form byte counts), activation checkpointing (same gradients as plain
training and as torch, measurably less activation memory) and micro-batch gradient accumulation."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import dslearn as ds
from dslearn.amp import autocast
from dslearn.autograd import OpObserver, observe
from dslearn.checkpoint import Checkpoint, checkpoint, is_grad_checkpoint_enabled, set_grad_checkpoint
from dslearn.memory import track
from dslearn.training import train_step

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def checkpointing_off_afterwards():
    yield
    set_grad_checkpoint(False)


class CountOps(OpObserver):
    def __init__(self):
        self.names = []

    def forward(self, fn, inputs, attrs, run):
        self.names.append(fn.name)
        return run()


# -- the tracker -------------------------------------------------------------------------------


def test_counts_each_array_the_graph_keeps_in_closed_form():
    w = ds.ones(100, 10, requires_grad=True)  # 4,000 bytes
    x = ds.ones(32, 100)  # 12,800 bytes
    with track() as memory:
        h = (x @ w).relu()  # matmul keeps x and w; relu keeps x @ w (1,280 bytes)
        loss = h.sum()  # sum keeps h (1,280 bytes)
    assert memory.parameter_bytes == 4000
    assert memory.activation_bytes == 12800 + 1280 + 1280
    assert memory.peak_bytes == memory.current_bytes == 4000 + 15360
    del h, loss


def test_freed_graphs_are_subtracted_and_the_peak_remains():
    x = ds.ones(1000, requires_grad=True)
    with track() as memory:
        loss = x.exp().exp().sum()
        held = memory.activation_bytes
        loss.backward()
        del loss
        after = memory.activation_bytes
    assert held == 8000 and after == 0 and memory.peak_activation_bytes == 8000


def test_a_buffer_seen_through_several_views_counts_once():
    x = ds.ones(10, 100, requires_grad=True)
    base = x.exp()  # 4,000 bytes; recorded before the block, found by walking down the graph
    with track() as memory:
        loss = base[:5].sum() + base[5:].sum() + base.reshape(1000).sum()
    assert memory.parameter_bytes == 4000  # x
    assert memory.activation_bytes == 4000 + 4 * 4  # base once, plus the 0-d partial sums that the adds keep
    del loss


def test_arrays_saved_on_the_graph_node_count_as_activations():
    logits = ds.randn(64, 10, requires_grad=True)
    with track() as memory:
        loss = ds.cross_entropy(logits, ds.randint(0, 10, (64,)))
    # cross-entropy keeps the log-sum-exp per row (64 floats) and the int64 targets it was given
    assert memory.activation_bytes >= 64 * 4 + 64 * 8
    del loss


def test_values_freeze_when_the_block_ends():
    x = ds.ones(256, requires_grad=True)
    with track() as memory:
        loss = x.exp().sum()
    del loss
    assert memory.activation_bytes == 1024


def test_an_active_tracker_cannot_be_entered_again():
    tracker = track()
    with tracker, pytest.raises(RuntimeError, match="already active"):
        tracker.__enter__()


def test_repr_reports_mebibytes():
    assert repr(track()) == "track(activations 0.00 MiB (peak 0.00 MiB), parameters 0.00 MiB, peak total 0.00 MiB)"


# -- checkpoint ----------------------------------------------------------------------------------


def deep_mlp(blocks: int = 8, width: int = 64, layers_per_block: int = 4, dropout: float = 0.1, seed: int = 0):
    _ = ds.manual_seed(seed)

    def block():
        layers = []
        for _ in range(layers_per_block):
            layers += [ds.nn.Linear(width, width), ds.nn.Tanh(), ds.nn.Dropout(dropout)]
        return ds.nn.Sequential(*layers)

    return ds.nn.Sequential(*[block() for _ in range(blocks)], ds.nn.Linear(width, 10))


def train_gradients(model, x, y, checkpointing: bool):
    set_grad_checkpoint(checkpointing)
    model.zero_grad()
    _ = ds.manual_seed(123)  # the dropout masks
    with track() as memory:
        loss = ds.cross_entropy(model(x), y)
        loss.backward()
    set_grad_checkpoint(False)
    return [p.grad.numpy().copy() for p in model.parameters()], loss.item(), memory


def test_checkpointed_training_gives_the_same_gradients_and_less_than_half_the_peak_memory():
    model = deep_mlp()
    x, y = ds.randn(128, 64), ds.randint(0, 10, (128,))
    plain, plain_loss, plain_memory = train_gradients(model, x, y, checkpointing=False)
    saved, saved_loss, saved_memory = train_gradients(model, x, y, checkpointing=True)
    assert saved_loss == plain_loss
    for a, b in zip(plain, saved):
        np.testing.assert_array_equal(a, b)  # same ops on the same values, dropout masks included
    ratio = saved_memory.peak_activation_bytes / plain_memory.peak_activation_bytes
    assert ratio < 0.5, f"peak activation memory with checkpointing is {ratio:.2f} of plain training"


def test_the_random_stream_continues_as_if_nothing_was_recomputed():
    model = deep_mlp(blocks=2)
    x, y = ds.randn(8, 64), ds.randint(0, 10, (8,))
    after = []
    for checkpointing in (False, True):
        train_gradients(model, x, y, checkpointing)
        after.append(ds.rand(3).numpy())
    np.testing.assert_array_equal(*after)


def test_only_the_outer_sequential_checkpoints_in_training_mode_with_gradients():
    model = deep_mlp(blocks=3, layers_per_block=2)
    x = ds.randn(4, 64)
    set_grad_checkpoint(True)
    assert is_grad_checkpoint_enabled()
    with observe(CountOps()) as seen:
        out = model(x)
        out.sum().backward()
    assert seen.names.count("checkpoint") == 4  # three blocks and the head; none for the layers inside
    model.eval()
    assert type(model(x).grad_fn).__name__ == "Context" and model(x).grad_fn.fn.name == "linear"
    model.train()
    with ds.no_grad():
        assert model(x).grad_fn is None


def test_set_grad_checkpoint_false_turns_it_off():
    set_grad_checkpoint(True)
    set_grad_checkpoint(False)
    model = deep_mlp(blocks=1, layers_per_block=1)
    assert not is_grad_checkpoint_enabled() and model(ds.randn(2, 64)).grad_fn.fn.name == "linear"


@settings(max_examples=10)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), seed=st.integers(0, 99))
def test_checkpoint_of_a_function_matches_torch_checkpoint(rows, cols, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((rows, cols)), rng.standard_normal((cols, cols))

    def function(x, w, scale):
        return ((x @ w).tanh() * scale).exp()

    ours_x, ours_w = ds.tensor(x, dtype=ds.float64, requires_grad=True), ds.tensor(w, dtype=ds.float64,
                                                                                   requires_grad=True)
    checkpoint(function, ours_x, ours_w, 0.5).sum().backward()
    torch_x, torch_w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    torch.utils.checkpoint.checkpoint(function, torch_x, torch_w, 0.5, use_reentrant=False).sum().backward()
    np.testing.assert_allclose(ours_x.grad.numpy(), torch_x.grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ours_w.grad.numpy(), torch_w.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_checkpoint_passes_gradcheck():
    x = ds.randn(3, 4, dtype=ds.float64, requires_grad=True)
    w = ds.randn(4, 2, dtype=ds.float64, requires_grad=True)
    assert ds.debug.gradcheck(lambda x, w: checkpoint(lambda a, b: (a @ b).sigmoid(), x, w), [x, w])


def test_a_module_method_brings_its_parameters_and_autograd_grad_sees_them():
    layer = ds.nn.Linear(3, 2)
    x = ds.randn(5, 3)  # the input does not require grad; the parameters still get gradients
    out = checkpoint(layer.forward, x)
    grad_w, grad_b = ds.autograd.grad(out.sum(), [layer.weight, layer.bias])
    np.testing.assert_allclose(grad_w.numpy(), np.tile(x.numpy().sum(0), (2, 1)), rtol=1e-5)
    np.testing.assert_allclose(grad_b.numpy(), [5.0, 5.0])
    assert layer.weight.grad is None


def test_checkpoint_under_autocast_recomputes_in_the_same_precision():
    model = ds.nn.Sequential(ds.nn.Linear(8, 8), ds.nn.Tanh(), ds.nn.Linear(8, 2))
    x = ds.randn(4, 8)
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        set_grad_checkpoint(checkpointing)
        with autocast(dtype=ds.float16):
            loss = model(x).square().sum()
        loss.backward()  # outside the block: the recomputation must still be float16
        grads.append([p.grad.numpy().copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_without_gradients_checkpoint_is_a_plain_call():
    with ds.no_grad():
        out = checkpoint(lambda x: x * 2, ds.ones(2, requires_grad=True))
    assert out.grad_fn is None
    assert checkpoint(lambda x: x * 2, ds.ones(2)).grad_fn is None


def test_checkpoint_errors_name_the_problem():
    with pytest.raises(TypeError, match="expected a callable"):
        checkpoint(3, ds.ones(1))
    with pytest.raises(TypeError, match="must return one Tensor, got tuple"):
        checkpoint(lambda x: (x, x), ds.ones(1, requires_grad=True))
    hidden = ds.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"uses a tensor that requires grad \(shape \(2,\)\)"):
        checkpoint(lambda x: x * hidden, ds.ones(2, requires_grad=True))
    x = ds.ones(2, requires_grad=True)
    out = checkpoint(lambda t: t * t, x)
    with pytest.raises(RuntimeError, match="double backward"):
        ds.autograd.grad(out.sum(), [x], create_graph=True)


def test_checkpoint_graph_node_is_a_function():
    out = checkpoint(lambda t: t.exp(), ds.ones(2, requires_grad=True))
    assert out.grad_fn.fn is Checkpoint and repr(out).endswith("grad_fn=<CheckpointBackward>)")


# -- gradient accumulation over micro-batches (dslearn.training.train_step) ------------------------


def test_micro_batches_give_the_same_gradients_with_at_most_half_the_activations():
    x, y = ds.randn(256, 64), ds.randint(0, 10, (256,))
    results = []
    for micro_batch_size in (None, 64):
        model = deep_mlp(blocks=2, dropout=0.0)
        optimizer = ds.optim.SGD(model.parameters(), lr=0.0)  # keep the weights: compare the gradients
        with track() as memory:
            train_step(model, optimizer, (x, y), micro_batch_size=micro_batch_size)
        results.append(([p.grad.numpy().copy() for p in model.parameters()], memory.peak_activation_bytes))
    (full, full_peak), (micro, micro_peak) = results
    for a, b in zip(full, micro):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    input_bytes = x.nbytes  # the whole batch stays alive (the micro-batches are views of it)
    ratio = (micro_peak - input_bytes) / (full_peak - input_bytes)
    # Four micro-batches; train_step keeps one micro-batch's graph alive while the next one's forward runs.
    assert ratio < 0.52, f"micro-batches of a quarter keep {ratio:.2f} of the activations of the full batch"



CUDA_SCRIPT = """
import sys
import dslearn as ds
from dslearn.memory import track
try:
    w = ds.ones(1000, requires_grad=True).to("cuda").detach().requires_grad_()
except Exception as error:  # no CUDA back end in this tree yet
    print("SKIP", error)
    sys.exit(0)
with track() as memory:
    loss = w.exp().tanh().sum()
    held = (memory.parameter_bytes, memory.activation_bytes)
    del loss
print(held, memory.activation_bytes)
"""


@pytest.mark.skipif(not (ROOT / "kernels" / "cuda").is_dir(), reason="no CUDA kernels in this tree")
def test_device_memory_of_cuda_tensors_is_tracked_in_the_simulator():
    result = subprocess.run([sys.executable, "-c", CUDA_SCRIPT], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, NUMBA_ENABLE_CUDASIM="1"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    if result.stdout.startswith("SKIP"):
        pytest.skip(result.stdout.strip())
    assert result.stdout.split() == ["(4000,", "8000)", "0"]
