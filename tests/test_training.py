"""Training helpers: fit/evaluate, micro-batches, checkpoint and resume, metrics, the MNIST recipe and CLI."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import dslearn as ds
from dslearn.cli import main
from dslearn.data import DataLoader, TensorDataset
from dslearn.training import (
    accuracy,
    confusion_matrix,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
    train_mnist,
    train_step,
)

MNIST_DIR = Path(os.environ.get("DSLEARN_DATA", "")) / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                                 reason=f"the MNIST files are not in DSLEARN_DATA ({MNIST_DIR})")


def _toy_problem(seed=0, n=96):
    ds.manual_seed(seed)
    x = ds.randn(n, 4)
    y = ((x[:, 0] + x[:, 1]) > 0).long()
    return x, y


def _model(seed=0, dropout=0.0):
    ds.manual_seed(seed)
    return ds.nn.Sequential(ds.nn.Linear(4, 16), ds.nn.ReLU(), ds.nn.Dropout(dropout), ds.nn.Linear(16, 2))


def test_fit_learns_a_separable_problem_and_evaluate_agrees():
    x, y = _toy_problem()
    model = _model()
    history = fit(model, ds.optim.Adam(model.parameters(), lr=0.05), DataLoader(TensorDataset(x, y), batch_size=16),
                  epochs=10, progress=False, log=None)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    scores = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=32))
    with ds.no_grad():
        expected = accuracy(model(x), y)
    assert scores["accuracy"] == pytest.approx(expected) and scores["accuracy"] > 0.9


class _Recorder:
    """A callback that records what fit tells it, and asks to stop after ``stop_after`` batches."""

    def __init__(self, stop_after=None):
        self.batches, self.epochs, self.ended, self.stop_after = [], [], 0, stop_after

    @property
    def stop_requested(self):
        return self.stop_after is not None and len(self.batches) >= self.stop_after

    def on_batch_end(self, epoch, metrics):
        self.batches.append((epoch, metrics["train_loss"]))

    def on_epoch_end(self, record):
        self.epochs.append(record["epoch"])

    def on_train_end(self):
        self.ended += 1


def test_callbacks_hear_every_batch_and_epoch_in_order():
    x, y = _toy_problem(n=64)
    model, recorder = _model(), _Recorder()
    history = fit(model, ds.optim.SGD(model.parameters(), lr=0.1), DataLoader(TensorDataset(x, y), batch_size=16),
                  epochs=2, progress=False, log=None, callbacks=[recorder])
    assert [epoch for epoch, _ in recorder.batches] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert recorder.epochs == [1, 2] and recorder.ended == 1
    first_epoch_mean = np.mean([loss for _, loss in recorder.batches[:4]])
    assert first_epoch_mean == pytest.approx(history[0]["train_loss"], rel=1e-6)


def test_a_callback_that_requests_a_stop_ends_training_after_that_batch():
    x, y = _toy_problem(n=64)
    model, recorder = _model(), _Recorder(stop_after=3)
    history = fit(model, ds.optim.SGD(model.parameters(), lr=0.1), DataLoader(TensorDataset(x, y), batch_size=16),
                  epochs=5, progress=False, log=None, callbacks=[recorder])
    assert len(recorder.batches) == 3 and len(history) == 1 and recorder.ended == 1


def test_progress_bars_stay_quiet_in_headless_runs(monkeypatch, capsys):
    monkeypatch.setenv("DSLEARN_HEADLESS", "1")
    x, y = _toy_problem(n=32)
    model = _model()
    fit(model, ds.optim.SGD(model.parameters(), lr=0.1), DataLoader(TensorDataset(x, y), batch_size=16), log=None)
    captured = capsys.readouterr()
    assert "batch" not in captured.err and captured.out == ""


def test_micro_batches_give_the_same_step_as_the_whole_batch():
    ds.set_default_dtype(ds.float64)
    try:
        x, y = _toy_problem()
        whole, micro = _model(), _model()
        train_step(whole, ds.optim.SGD(whole.parameters(), lr=0.1), (x, y))
        train_step(micro, ds.optim.SGD(micro.parameters(), lr=0.1), (x, y), micro_batch_size=10)  # uneven split
        for a, b in zip(whole.parameters(), micro.parameters()):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-14)
    finally:
        ds.set_default_dtype(ds.float32)


def test_resuming_from_a_checkpoint_equals_training_without_stopping(tmp_path):
    x, y = _toy_problem()

    def run(epochs, resume, directory):
        model = _model(dropout=0.3)  # dropout and shuffling both draw random numbers
        optimizer = ds.optim.Adam(model.parameters(), lr=0.01)
        scheduler = ds.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
        loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=ds.Generator().manual_seed(3))
        history = fit(model, optimizer, loader, epochs=epochs, scheduler=scheduler, checkpoint_dir=directory,
                      resume=resume, progress=False, log=None)
        return model, history

    straight, straight_history = run(3, False, tmp_path / "a")
    run(1, False, tmp_path / "b")
    ds.manual_seed(12345)  # whatever happens between the runs must not matter
    resumed, resumed_history = run(3, True, tmp_path / "b")
    for a, b in zip(straight.parameters(), resumed.parameters()):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    assert [h["train_loss"] for h in straight_history] == [h["train_loss"] for h in resumed_history]


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    x, y = _toy_problem()
    model = _model()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(model, ds.optim.SGD(model.parameters(), lr=0.1), DataLoader(TensorDataset(x, y)), resume=True,
            checkpoint_dir=tmp_path, progress=False, log=None)


def test_checkpoint_round_trip_restores_model_optimizer_and_random_state(tmp_path):
    model = _model()
    optimizer = ds.optim.Adam(model.parameters(), lr=0.01)
    x, y = _toy_problem()
    train_step(model, optimizer, (x, y))
    ds.manual_seed(7)
    save_checkpoint(tmp_path / "c.safetensors", model, optimizer, epoch=1)
    expected_next = ds.rand(3).tolist()
    other = _model(seed=1)
    other_optimizer = ds.optim.Adam(other.parameters(), lr=0.01)
    state = load_checkpoint(tmp_path / "c.safetensors", other, other_optimizer)
    assert state["epoch"] == 1 and ds.rand(3).tolist() == expected_next
    for a, b in zip(model.parameters(), other.parameters()):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    assert other_optimizer.state_dict()["state"][0]["step"].item() == 1


def test_a_diverging_loss_stops_training_with_a_hint():
    x, y = _toy_problem()
    model = _model()
    with pytest.raises(FloatingPointError, match="loss became"):
        fit(model, ds.optim.SGD(model.parameters(), lr=1e30), DataLoader(TensorDataset(x * 1e30, y), batch_size=8),
            epochs=3, progress=False, log=None)


def test_accuracy_and_confusion_matrix_match_an_independent_count():
    rng = np.random.default_rng(0)
    truth, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    expected = np.zeros((4, 4), dtype=np.int64)
    for t, p in zip(truth, predicted):
        expected[t, p] += 1
    assert confusion_matrix(ds.tensor(predicted), ds.tensor(truth), 4).tolist() == expected.tolist()
    logits = torch.nn.functional.one_hot(torch.tensor(predicted), 4).double().numpy()
    assert accuracy(ds.tensor(logits), ds.tensor(truth)) == pytest.approx(np.mean(truth == predicted))


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="accuracy: 2 predictions for 3 targets"):
        accuracy(ds.tensor([0, 1]), ds.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="labels outside 0..1"):
        confusion_matrix(ds.tensor([0, 2]), ds.tensor([0, 1]), 2)
    with pytest.raises(TypeError, match="integer class labels"):
        accuracy(ds.tensor([0.5]), ds.tensor([0]))


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="unknown model 'rnn'"):
        train_mnist("rnn")


@needs_mnist
@pytest.mark.slow
@pytest.mark.parametrize(("model", "floor"), [("mlp", 0.95), ("cnn", 0.975)])
def test_mnist_recipes_reach_the_documented_accuracy(model, floor):
    summary = train_mnist(model, progress=False, log=None, download=False)
    assert summary.dataset == "mnist-10k" and summary.test_accuracy >= floor


@needs_mnist
def test_train_command_names_the_offline_data_and_reports_accuracy(capsys):
    assert main(["train", "mnist", "--model", "mlp", "--epochs", "1", "--no-progress", "--offline"]) == 0
    out = capsys.readouterr().out
    assert "MNIST-10k" in out and "test accuracy" in out
    accuracy_text = out.split("test accuracy ")[1].split("%")[0]
    assert float(accuracy_text) > 85
