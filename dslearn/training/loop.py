"""``fit`` and ``evaluate``: the training loop every beginner writes, written once, plainly.

``fit`` runs epochs of: forward, loss, backward, (clip), step; with optional gradient
accumulation over micro-batches, a learning-rate scheduler, evaluation after each epoch,
a notebook-aware progress bar (quiet in headless runs), callbacks such as
``dslearn.viz.TrainingDashboard``, and an atomic checkpoint after every epoch that
``resume=True`` continues from.

May import: tqdm, dslearn.environment, dslearn.tensor, dslearn.autograd, dslearn.ops, dslearn.nn.utils,
dslearn.training.

>>> import dslearn as ds
>>> from dslearn.data import DataLoader, TensorDataset
>>> _ = ds.manual_seed(0)
>>> x = ds.randn(64, 2); y = (x[:, 0] > 0).long()
>>> model = ds.nn.Linear(2, 2)
>>> history = fit(model, ds.optim.SGD(model.parameters(), lr=0.5), DataLoader(TensorDataset(x, y), batch_size=16),
...               epochs=5, progress=False, log=None)
>>> history[-1]["train_accuracy"] > 0.9
True
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from dslearn.autograd.grad_mode import no_grad
from dslearn.environment import is_headless
from dslearn.ops.loss import cross_entropy
from dslearn.training.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_NAME = "last.safetensors"


def _split_batch(batch, micro_batch_size: int | None):
    inputs, targets = batch
    size = len(targets)
    if not micro_batch_size or micro_batch_size >= size:
        return [(inputs, targets, 1.0)]
    return [(inputs[start:start + micro_batch_size], targets[start:start + micro_batch_size],
             min(micro_batch_size, size - start) / size) for start in range(0, size, micro_batch_size)]


def train_step(model, optimizer, batch, loss_fn: Callable = cross_entropy, micro_batch_size: int | None = None,
               clip_grad_norm: float | None = None) -> tuple[float, int]:
    """One optimizer step on one batch; returns (summed loss, number correct).

    With ``micro_batch_size`` the batch is cut into micro-batches whose gradients accumulate
    before the single step (each micro-loss weighted by its share of the batch), so a large
    batch fits in the memory of a small one.
    """
    optimizer.zero_grad()
    total_loss, correct = 0.0, 0
    for inputs, targets, share in _split_batch(batch, micro_batch_size):
        logits = model(inputs)
        loss = loss_fn(logits, targets)
        (loss * share if share != 1.0 else loss).backward()
        total_loss += loss.item() * len(targets)
        if logits.ndim == 2:
            correct += int((logits.argmax(1) == targets).sum().item())
        del logits, loss  # free this micro-batch's activations before the next one runs
    if clip_grad_norm is not None:
        from dslearn.nn.utils import clip_grad_norm_

        clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    return total_loss, correct


def evaluate(model, loader, loss_fn: Callable = cross_entropy) -> dict:
    """Mean loss and accuracy of ``model`` over ``loader``, in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    total_loss, correct, count = 0.0, 0, 0
    with no_grad():
        for inputs, targets in loader:
            logits = model(inputs)
            total_loss += loss_fn(logits, targets).item() * len(targets)
            correct += int((logits.argmax(1) == targets).sum().item())
            count += len(targets)
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader produced no samples")
    return {"loss": total_loss / count, "accuracy": correct / count}


def fit(model, optimizer, train_loader, *, epochs: int = 1, loss_fn: Callable = cross_entropy, val_loader=None,
        scheduler=None, micro_batch_size: int | None = None, clip_grad_norm: float | None = None,
        checkpoint_dir: str | os.PathLike | None = None, resume: bool = False, progress: bool | None = None,
        log: Callable | None = print, callbacks: Sequence = ()) -> list[dict]:
    """Train for ``epochs``; returns the history, one dict per epoch.

    ``scheduler.step()`` runs once per epoch. With ``checkpoint_dir`` a checkpoint is written
    atomically after every epoch; ``resume=True`` continues from it (same result as not stopping).
    ``progress=None`` shows a progress bar unless the run is headless (nbgrader, the course runner).
    Each callback may define ``on_batch_end(epoch, metrics)`` (``epoch`` fractional, e.g. 1.5),
    ``on_epoch_end(record)`` and ``on_train_end()``; one whose ``stop_requested`` becomes true ends
    training after the current batch (a ``TrainingDashboard``'s stop button does that).
    """
    if epochs < 1:
        raise ValueError(f"fit: epochs must be at least 1, got {epochs}")
    if progress is None:
        progress = not is_headless()
    generators = [g for g in (getattr(train_loader, "generator", None),) if g is not None]
    history, start = [], 0
    path = os.path.join(checkpoint_dir, CHECKPOINT_NAME) if checkpoint_dir else None
    if resume:
        if path is None or not os.path.exists(path):
            raise FileNotFoundError(f"fit: resume=True but no checkpoint at {path}")
        state = load_checkpoint(path, model, optimizer, scheduler=scheduler, generators=generators)
        history, start = list(state["history"]), state["epoch"]
    for epoch in range(start, epochs):
        record = _run_epoch(model, optimizer, train_loader, epoch, epochs, loss_fn, micro_batch_size,
                            clip_grad_norm, progress, callbacks)
        if val_loader is not None:
            scores = evaluate(model, val_loader, loss_fn)
            record.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        if scheduler is not None:
            scheduler.step()
        history.append(record)
        if log is not None:
            log(_describe(record, epochs))
        if path is not None:
            os.makedirs(checkpoint_dir, exist_ok=True)
            save_checkpoint(path, model, optimizer, epoch=epoch + 1, scheduler=scheduler, history=history,
                            generators=generators)
        _notify(callbacks, "on_epoch_end", record)
        if _stop_requested(callbacks):
            break
    _notify(callbacks, "on_train_end")
    return history


def _notify(callbacks: Sequence, event: str, *args) -> None:
    for callback in callbacks:
        handler = getattr(callback, event, None)
        if handler is not None:
            handler(*args)


def _stop_requested(callbacks: Sequence) -> bool:
    return any(getattr(callback, "stop_requested", False) for callback in callbacks)


def _run_epoch(model, optimizer, loader, epoch, epochs, loss_fn, micro_batch_size, clip_grad_norm, progress,
               callbacks) -> dict:
    model.train()
    started = time.perf_counter()
    total_loss, correct, count = 0.0, 0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False, unit="batch")
    batches = len(loader) if hasattr(loader, "__len__") else None
    for step, batch in enumerate(bar):
        loss, hits = train_step(model, optimizer, batch, loss_fn, micro_batch_size, clip_grad_norm)
        total_loss, correct, count = total_loss + loss, correct + hits, count + len(batch[1])
        if not math.isfinite(loss):
            raise FloatingPointError(f"fit: the loss became {loss} in epoch {epoch + 1}; lower the learning rate "
                                     "or run under ds.debug.detect_anomaly() to find the op")
        bar.set_postfix(loss=f"{total_loss / count:.4f}", refresh=False)
        if callbacks:
            progress_in_epochs = epoch + (step + 1) / batches if batches else epoch + 1
            _notify(callbacks, "on_batch_end", progress_in_epochs, {"train_loss": loss / len(batch[1])})
            if _stop_requested(callbacks):
                break
    bar.close()
    if count == 0:
        raise ValueError("fit: the training loader produced no samples")
    return {"epoch": epoch + 1, "train_loss": total_loss / count, "train_accuracy": correct / count,
            "seconds": time.perf_counter() - started}


def _describe(record: dict, epochs: int) -> str:
    text = (f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}, "
            f"accuracy {100 * record['train_accuracy']:.2f}%")
    if "val_accuracy" in record:
        text += f", val loss {record['val_loss']:.4f}, val accuracy {100 * record['val_accuracy']:.2f}%"
    return text + f" ({record['seconds']:.1f} s)"


__all__ = ["fit", "evaluate", "train_step"]
