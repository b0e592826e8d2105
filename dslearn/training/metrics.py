"""Classification metrics: accuracy and the confusion matrix.

May import: numpy, dslearn.tensor.

>>> import dslearn as ds
>>> logits = ds.tensor([[2.0, 0.1], [0.3, 0.9], [1.0, 0.0]])
>>> accuracy(logits, ds.tensor([0, 1, 1]))
0.6666666666666666
>>> confusion_matrix(logits.argmax(1), ds.tensor([0, 1, 1]), num_classes=2)
tensor([[1, 0],
        [1, 1]])
"""

from __future__ import annotations

import numpy as np

from dslearn.tensor import Tensor


def _labels(values: Tensor, name: str) -> np.ndarray:
    array = np.asarray(values._host_array() if isinstance(values, Tensor) else values)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels, got dtype {array.dtype}")
    return array.reshape(-1)


def accuracy(logits_or_predictions: Tensor, targets: Tensor) -> float:
    """Fraction of correct predictions; accepts logits (N, C) or predicted labels (N,)."""
    scores = logits_or_predictions
    predictions = scores.argmax(-1) if scores.ndim > 1 else scores
    predicted, truth = _labels(predictions, "predictions"), _labels(targets, "targets")
    if predicted.shape != truth.shape:
        raise ValueError(f"accuracy: {predicted.size} predictions for {truth.size} targets")
    if truth.size == 0:
        raise ValueError("accuracy: no targets to score")
    return float(np.mean(predicted == truth))


def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """``counts[t, p]``: how many samples of true class ``t`` were predicted as ``p``."""
    predicted, truth = _labels(predictions, "predictions"), _labels(targets, "targets")
    if predicted.shape != truth.shape:
        raise ValueError(f"confusion_matrix: {predicted.size} predictions for {truth.size} targets")
    for name, labels in (("predictions", predicted), ("targets", truth)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} hold labels outside 0..{num_classes - 1}")
    counts = np.bincount(truth * num_classes + predicted, minlength=num_classes * num_classes)
    return Tensor._make(counts.reshape(num_classes, num_classes).astype(np.int64))
