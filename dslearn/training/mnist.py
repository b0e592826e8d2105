"""The beginner capstone as one function: train an MLP or a CNN on MNIST-style digits.

``train_mnist`` is what ``dslearn train mnist`` runs: it loads the dataset through the registry
(the offline MNIST-10k default when the 60,000 training images are absent, and says so), trains
with Adam and a cosine schedule, evaluates on the test split and returns a summary.

May import: dslearn.data, dslearn.models, dslearn.optim, dslearn.training, dslearn.random.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dslearn import optim
from dslearn import random as ds_random
from dslearn.data import DataLoader, TsinghuaDataset
from dslearn.data import transforms as T
from dslearn.models import mnist_model
from dslearn.training.loop import evaluate, fit

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

# Defaults that reach the README's accuracies on MNIST-10k in seconds (docs/BENCHMARKS.md).
RECIPES = {
    "mlp": {"epochs": 15, "lr": 1e-3, "augment": True},
    "cnn": {"epochs": 10, "lr": 1e-3, "augment": False},
}


@dataclass
class TrainingSummary:
    """What a training run reports: the data it used, its accuracy and its time."""

    dataset: str
    model: str
    parameters: int
    epochs: int
    test_accuracy: float
    test_loss: float
    seconds: float
    history: list

    def __str__(self) -> str:
        return (f"{self.model} on {self.dataset}: test accuracy {100 * self.test_accuracy:.2f}% "
                f"(loss {self.test_loss:.4f}) after {self.epochs} epochs in {self.seconds:.1f} s "
                f"({self.seconds / self.epochs:.2f} s per epoch)")


def mnist_transforms(augment: bool):
    """Tensor conversion and normalisation, plus random 2-pixel shifts when ``augment``."""
    steps = [T.ToTensor()]
    if augment:
        steps.append(T.RandomCrop(28, padding=2))
    return T.Compose([*steps, T.Normalize([MNIST_MEAN], [MNIST_STD])])


def train_mnist(model: str = "mlp", dataset: str = "MNIST", *, epochs: int | None = None, batch_size: int = 64,
                lr: float | None = None, augment: bool | None = None, micro_batch_size: int | None = None,
                seed: int = 0, checkpoint_dir: str | None = None, resume: bool = False, progress: bool = True,
                download: bool | None = None, log: Callable | None = print) -> TrainingSummary:
    """Train ``model`` ('mlp' or 'cnn') on ``dataset`` and evaluate it on the test split.

    Unset options take the recipe for the model (``RECIPES``).
    """
    recipe = RECIPES.get(model)
    if recipe is None:
        raise ValueError(f"train_mnist: unknown model {model!r}; choose one of {sorted(RECIPES)}")
    epochs = recipe["epochs"] if epochs is None else epochs
    lr = recipe["lr"] if lr is None else lr
    augment = recipe["augment"] if augment is None else augment
    ds_random.manual_seed(seed)
    train_set = TsinghuaDataset(dataset, split="train", transform=mnist_transforms(augment), download=download)
    test_set = TsinghuaDataset(dataset, split="test", transform=mnist_transforms(False), download=download)
    network = mnist_model(model)
    optimizer = optim.Adam(network.parameters(), lr=lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True,
                              generator=ds_random.Generator().manual_seed(seed))
    test_loader = DataLoader(test_set, batch_size=500)
    title = train_set.describe() if hasattr(train_set, "describe") else repr(train_set)
    if log is not None:
        log(f"data: {title}")
        log(f"model: {model}, {sum(p.numel() for p in network.parameters()):,} parameters; Adam lr {lr}, "
            f"batch {batch_size}{f', micro-batch {micro_batch_size}' if micro_batch_size else ''}, {epochs} epochs"
            f"{', random shifts' if augment else ''}")
    started = time.perf_counter()
    history = fit(network, optimizer, train_loader, epochs=epochs, scheduler=scheduler,
                  micro_batch_size=micro_batch_size, checkpoint_dir=checkpoint_dir, resume=resume,
                  progress=progress, log=log)
    seconds = time.perf_counter() - started
    scores = evaluate(network, test_loader)
    variant = getattr(train_set, "variant", "") or dataset
    return TrainingSummary(dataset=variant, model=model, parameters=sum(p.numel() for p in network.parameters()),
                           epochs=epochs, test_accuracy=scores["accuracy"], test_loss=scores["loss"],
                           seconds=seconds, history=history)
