"""``ReduceLROnPlateau``: cut the learning rate when a watched metric stops improving.

Each ``step(metric)`` compares the metric with the best seen so far. A value counts as an
improvement only if it beats the best by ``threshold`` (relative, ``best * (1 - threshold)``
in ``'min'`` mode, or absolute, ``best - threshold``). After more than ``patience`` steps
without one, every group's rate is multiplied by ``factor`` (never below its ``min_lr``),
and the scheduler then ignores ``cooldown`` steps before counting bad ones again.

May import: dslearn.optim.optimizer, dslearn.optim.lr_scheduler.

>>> import dslearn as ds
>>> from dslearn.optim import SGD
>>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=1.0)
>>> s = ReduceLROnPlateau(opt, factor=0.5, patience=1)
>>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0, 2.0]:
...     s.step(loss)
>>> s.get_last_lr()
[0.25]
"""

from __future__ import annotations

import math

from dslearn.optim.lr_scheduler import LRScheduler, _check_optimizer, _format_per_group
from dslearn.optim.optimizer import Optimizer


class ReduceLROnPlateau(LRScheduler):
    """Reduce the rate by ``factor`` once a metric has not improved for ``patience`` steps.

    ``mode='min'`` watches a quantity to lower (a loss), ``'max'`` one to raise (an accuracy).

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> ReduceLROnPlateau(SGD([ds.zeros(1, requires_grad=True)], lr=0.1), mode="max").best
    -inf
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list[float] = 0.0, eps: float = 1e-8) -> None:
        _check_optimizer(optimizer, "ReduceLROnPlateau")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0, got {factor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.optimizer = optimizer
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.min_lrs = _format_per_group("min_lr", optimizer, min_lr)
        self.mode, self.factor, self.patience, self.cooldown = mode, factor, patience, cooldown
        self.threshold, self.threshold_mode, self.eps = threshold, threshold_mode, eps
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self.best = math.inf if mode == "min" else -math.inf
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: float) -> None:  # the base class steps without arguments
        """Record one value of the watched metric and reduce the rates if it has stopped improving."""
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    @property
    def in_cooldown(self) -> bool:
        """True while steps after a reduction are being ignored."""
        return self.cooldown_counter > 0

    def _is_better(self, current: float) -> bool:
        if self.mode == "min":
            return current < (self.best * (1.0 - self.threshold) if self.threshold_mode == "rel"
                              else self.best - self.threshold)
        return current > (self.best * (1.0 + self.threshold) if self.threshold_mode == "rel"
                          else self.best + self.threshold)

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(self.min_lrs) != len(groups):  # a group was added since the scheduler was made
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer now has {len(groups)} parameter groups but "
                                   f"min_lr was given for {len(self.min_lrs)}; set scheduler.min_lrs to match")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:  # changes smaller than eps are not worth making
                group["lr"] = new_lr
