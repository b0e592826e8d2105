"""The two MNIST models of the beginner path: an MLP and a LeNet-style CNN.

May import: dslearn.nn.

>>> import dslearn as ds
>>> MnistMLP()(ds.zeros(2, 1, 28, 28)).shape, LeNet()(ds.zeros(2, 1, 28, 28)).shape
((2, 10), (2, 10))
"""

from __future__ import annotations

from dslearn import nn


class MnistMLP(nn.Sequential):
    """784-256-128-10 with ReLU: flattens (N, 1, 28, 28) images itself."""

    def __init__(self, hidden: tuple[int, ...] = (256, 128), num_classes: int = 10) -> None:
        sizes = (28 * 28, *hidden)
        layers: list = [nn.Flatten()]
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        super().__init__(*layers, nn.Linear(sizes[-1], num_classes))


class LeNet(nn.Sequential):
    """LeNet-5 with ReLU and max pooling: conv 6@5x5 (padded), pool, conv 16@5x5, pool, 120-84-10."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )


def mnist_model(name: str):
    """``'mlp'`` or ``'cnn'``: a fresh model for 28x28 digits."""
    models = {"mlp": MnistMLP, "cnn": LeNet}
    if name not in models:
        raise ValueError(f"mnist_model: unknown model {name!r}; choose one of {sorted(models)}")
    return models[name]()
