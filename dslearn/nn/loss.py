"""Loss functions as modules (``criterion = nn.CrossEntropyLoss(); loss = criterion(logits, labels)``).

Each holds its settings (reduction, class weights...) and calls the function of the same name in
``dslearn.nn.functional``. Class weights are buffers, as in PyTorch, so ``.to()`` moves them.

May import: dslearn.tensor, dslearn.nn.module, dslearn.nn.functional.

>>> import dslearn as ds
>>> MSELoss()(ds.tensor([1.0, 2.0]), ds.tensor([1.0, 4.0]))
tensor(2.)
"""

from __future__ import annotations

from dslearn.nn import functional as F
from dslearn.nn.module import Module
from dslearn.tensor import Tensor

_REDUCTIONS = ("none", "mean", "sum")


class _Loss(Module):
    """A loss: checks ``reduction`` once, at construction."""

    reductions = _REDUCTIONS

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in self.reductions:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {self.reductions}, got {reduction!r}")
        self.reduction = reduction


class _WeightedLoss(_Loss):
    """A loss with optional per-class weights (a buffer named ``weight``)."""

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy between logits ``(N, C, ...)`` and class indices (or probabilities).

    >>> import dslearn as ds
    >>> CrossEntropyLoss()(ds.zeros(2, 4), ds.tensor([0, 3]))   # log(4)
    tensor(1.3863)
    """

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of class indices given log-probabilities ``(N, C, ...)``.

    >>> import dslearn as ds
    >>> NLLLoss()(ds.tensor([[-1.0, -2.0]]), ds.tensor([1]))
    tensor(2.)
    """

    def __init__(self, weight: Tensor | None = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error.

    >>> import dslearn as ds
    >>> MSELoss(reduction="sum")(ds.tensor([1.0, 2.0]), ds.zeros(2))
    tensor(5.)
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error.

    >>> import dslearn as ds
    >>> L1Loss()(ds.tensor([1.0, -3.0]), ds.zeros(2))
    tensor(2.)
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic for errors below ``beta``, linear above (Huber loss divided by ``beta``).

    >>> import dslearn as ds
    >>> SmoothL1Loss()(ds.tensor([0.5, 3.0]), ds.zeros(2))
    tensor(1.3125)
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy between probabilities and 0/1 targets.

    >>> import dslearn as ds
    >>> BCELoss()(ds.tensor([0.5, 0.5]), ds.tensor([0.0, 1.0]))
    tensor(0.6931)
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable step; ``pos_weight`` up-weights positives.

    >>> import dslearn as ds
    >>> BCEWithLogitsLoss()(ds.zeros(2), ds.tensor([0.0, 1.0]))
    tensor(0.6931)
    """

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean", pos_weight: Tensor | None = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence; ``input`` is log-probabilities (and ``target`` too with ``log_target``).

    Use ``reduction='batchmean'`` for the mathematical KL divergence per sample.

    >>> import dslearn as ds
    >>> KLDivLoss(reduction="batchmean")(ds.tensor([[0.5, 0.5]]).log(), ds.tensor([[0.5, 0.5]]))
    tensor(0.)
    """

    reductions = ("none", "mean", "sum", "batchmean")

    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
