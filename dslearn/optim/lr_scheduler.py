"""Learning-rate schedules: change each parameter group's ``'lr'`` as training goes on.

A scheduler wraps an optimizer. Creating it sets the starting learning rates; each
``scheduler.step()`` (after ``optimizer.step()``, once per epoch or per batch) moves them on.
``last_epoch`` counts the steps taken, ``get_last_lr()`` returns the current values.

Like PyTorch's, each schedule is written *chainably*: ``get_lr()`` computes the next rate
from the current ``group['lr']`` (``StepLR`` multiplies it by gamma at each boundary),
so schedules compose and a rate edited by hand carries on from its new value. Each also
has the closed form (the rate as a function of the step number alone); PyTorch uses it
when it jumps to a given epoch, as ``SequentialLR`` does at a milestone. Both give the
same numbers on an untouched run.

``OneCycleLR`` (in ``dslearn.optim.one_cycle``) and ``ReduceLROnPlateau`` (in
``dslearn.optim.plateau``) are importable from here too, as in PyTorch.

May import: dslearn.optim.optimizer.

>>> import dslearn as ds
>>> from dslearn.optim import SGD
>>> from dslearn.optim.lr_scheduler import StepLR
>>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=1.0)
>>> scheduler = StepLR(opt, step_size=2, gamma=0.5)
>>> rates = []
>>> for epoch in range(5):
...     opt.step(); rates.append(scheduler.get_last_lr()[0]); scheduler.step()
>>> rates
[1.0, 1.0, 0.5, 0.5, 0.25]
"""

from __future__ import annotations

import math
import types
import warnings
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable

from dslearn.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: ``step()``, ``get_last_lr()``, ``last_epoch``, ``state_dict()``/``load_state_dict()``.

    A subclass implements ``get_lr()`` (the chainable rule) and, where one exists,
    ``_closed_form_lr()``. ``last_epoch=-1`` starts a fresh schedule; a larger value resumes
    one, and then each group must hold its ``'initial_lr'`` (saved in the optimizer's state dict).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, type(self).__name__)
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no 'initial_lr' to resume from "
                               f"(last_epoch={last_epoch}); load the optimizer's state dict first, or use "
                               "last_epoch=-1 for a fresh schedule")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """Set the starting rates: a step that takes ``last_epoch`` from -1 to 0."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The rates for ``last_epoch``, from the current ones (used by ``step``; read ``get_last_lr()``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_lr")

    def _closed_form_lr(self) -> list[float]:
        """The rates for ``last_epoch`` from ``base_lrs`` alone (where a schedule has no closed form,
        its ``get_lr`` already is one)."""
        return self.get_lr()

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group, as set by the last ``step``."""
        return self._last_lr

    def step(self, epoch: int | None = None) -> None:
        """Move the schedule on by one step (``epoch``, deprecated as in PyTorch, jumps to that step)."""
        if self._step_count == 1 and self.optimizer._step_count == 0:
            warnings.warn("lr_scheduler.step() was called before optimizer.step(); call optimizer.step() first, "
                          "or the first value of the schedule is skipped", UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            warnings.warn("scheduler.step(epoch) is deprecated (as in PyTorch): it uses the closed form; "
                          "call scheduler.step() instead", UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            values = self._closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """The scheduler's attributes, except the optimizer (save the optimizer's own state dict too)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` returned."""
        self.__dict__.update(state_dict)

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)``, one function for all groups or one per group.

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=0.1)
    >>> LambdaLR(opt, lambda epoch: 0.5 ** epoch).get_last_lr()
    [0.1]
    """

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | list, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "LambdaLR")
        groups = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != groups:
                raise ValueError(f"LambdaLR: expected {groups} lr_lambdas (one per parameter group), "
                                 f"got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * groups
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"LambdaLR: lr_lambda should be a function, got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self) -> dict:
        """As the base class, but functions are not saved (callable objects save their ``__dict__``)."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "lr_lambdas")}
        state["lr_lambdas"] = [None if isinstance(fn, types.FunctionType) else dict(fn.__dict__)
                               for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved_lambdas = state.pop("lr_lambdas")
        self.__dict__.update(state)
        for fn, saved in zip(self.lr_lambdas, saved_lambdas):
            if saved is not None:
                fn.__dict__.update(saved)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` steps: ``base_lr * gamma ** (epoch // step_size)``.

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> StepLR(SGD([ds.zeros(1, requires_grad=True)], lr=0.1), step_size=10).gamma
    0.1
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        if not isinstance(step_size, int) or step_size <= 0:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone: ``base_lr * gamma ** (milestones passed)``.

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> MultiStepLR(SGD([ds.zeros(1, requires_grad=True)], lr=0.1), milestones=[30, 80]).get_last_lr()
    [0.1]
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.milestones = Counter(milestones)  # a milestone listed twice multiplies by gamma twice
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        passed = bisect_right(sorted(self.milestones.elements()), self.last_epoch)
        return [base_lr * self.gamma ** passed for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every step: ``base_lr * gamma ** epoch``.

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = ExponentialLR(opt, gamma=0.5); opt.step(); s.step(); s.get_last_lr()
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from ``base_lr`` down to ``eta_min`` over ``T_max`` steps (then back up, periodically).

    ``lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = CosineAnnealingLR(opt, T_max=2)
    >>> opt.step(); s.step(); s.get_last_lr()
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:  # noqa: N803
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min  # noqa: N806
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and t > 0:  # resuming at last_epoch > 0: nothing to chain from
            return self._closed_form_lr()
        if (t - 1 - T) % (2 * T) == 0:  # leaving the bottom, where the ratio below would divide by zero
            return [lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, lr in zip(self.base_lrs, self._current_lrs())]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - eta_min) + eta_min
                for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up: scale the rate from ``start_factor`` to ``end_factor`` over ``total_iters`` steps.

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=1.0)
    >>> s = LinearLR(opt, start_factor=0.25, total_iters=3)
    >>> rates = [s.get_last_lr()[0]]
    >>> for _ in range(4):
    ...     opt.step(); s.step(); rates.append(round(s.get_last_lr()[0], 6))
    >>> rates
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        if not 0 < start_factor <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor!r}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor!r}")
        if not isinstance(total_iters, int) or total_iters <= 0:
            raise ValueError(f"LinearLR: total_iters must be a positive int, got {total_iters!r}")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, start, end = self.last_epoch, self.start_factor, self.end_factor
        if t == 0:
            return [lr * start for lr in self._current_lrs()]
        if self._is_initial or t > self.total_iters:
            return self._current_lrs()
        # factor(t) / factor(t - 1), with factor(t) = start + (end - start) * t / total_iters
        ratio = 1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start))
        return [lr * ratio for lr in self._current_lrs()]

    def _closed_form_lr(self) -> list[float]:
        progress = min(self.total_iters, self.last_epoch) / self.total_iters
        return [base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)
                for base_lr in self.base_lrs]


class SequentialLR(LRScheduler):
    """Run ``schedulers`` one after another, switching at each step in ``milestones``.

    Each scheduler restarts from its own step 0 (its closed form) when its turn comes.
    The usual use: a linear warm-up, then cosine annealing.

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=1.0)
    >>> warmup, decay = LinearLR(opt, start_factor=0.5, total_iters=2), ExponentialLR(opt, gamma=0.5)
    >>> s = SequentialLR(opt, [warmup, decay], milestones=[2])
    >>> rates = [s.get_last_lr()[0]]
    >>> for _ in range(4):
    ...     opt.step(); s.step(); rates.append(s.get_last_lr()[0])
    >>> rates
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """

    def __init__(self, optimizer: Optimizer, schedulers: list[LRScheduler], milestones: list[int],
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "SequentialLR")
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, got none")
        for i, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler) or isinstance(scheduler, ReduceLROnPlateau):
                raise TypeError(f"SequentialLR: schedulers[{i}] is a {type(scheduler).__name__}; it takes "
                                "schedulers that step without arguments (not ReduceLROnPlateau)")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: schedulers[{i}] ({type(scheduler).__name__}) belongs to a "
                                 "different optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected {len(schedulers) - 1} milestones (one fewer than the "
                             f"{len(schedulers)} schedulers), got {len(milestones)}")
        self.optimizer, self._schedulers, self._milestones = optimizer, list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        # Building each scheduler took a first step; undo them and take only the first scheduler's.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        _undo_initial_steps(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        """Step the scheduler whose turn it is (starting it at its step 0 on a milestone)."""
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self) -> dict:
        """Its own attributes plus each scheduler's state dict."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        saved_schedulers = state.pop("_schedulers")
        self.__dict__.update(state)
        for scheduler, saved in zip(self._schedulers, saved_schedulers):
            scheduler.load_state_dict(saved)


def _undo_initial_steps(scheduler) -> None:
    """Take ``last_epoch`` back by one in every scheduler nested inside a SequentialLR."""
    for inner in scheduler._schedulers:
        if hasattr(inner, "_schedulers"):
            _undo_initial_steps(inner)
        else:
            inner.last_epoch -= 1


def _check_optimizer(optimizer, scheduler: str) -> None:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{scheduler}: expected a dslearn optimizer, got {type(optimizer).__name__}")
    optimizer._require_bound()


def _format_per_group(name: str, optimizer: Optimizer, value) -> list:
    """One value per parameter group: a list of them as given, or one value repeated."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(f"{name} must have one value per parameter group: got {len(value)} values for "
                             f"{len(optimizer.param_groups)} groups")
        return list(value)
    return [value] * len(optimizer.param_groups)


from dslearn.optim.one_cycle import OneCycleLR  # noqa: E402, F401  (re-exported: they build on LRScheduler)
from dslearn.optim.plateau import ReduceLROnPlateau  # noqa: E402, F401
