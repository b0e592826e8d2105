"""``OneCycleLR``: the 1cycle policy (Smith & Topin, 2018), rate up then far down, momentum the other way.

Over ``total_steps`` steps the rate climbs from ``max_lr / div_factor`` to ``max_lr`` (the
first ``pct_start`` of the steps), then anneals down to ``initial_lr / final_div_factor``;
``three_phase`` comes back down to the initial rate symmetrically before the final anneal.
With ``cycle_momentum`` the momentum (SGD's ``momentum``, Adam's ``beta1``) moves opposite
to the rate, between ``max_momentum`` and ``base_momentum``. Each phase anneals by a half
cosine (``'cos'``) or a straight line (``'linear'``). The schedule is a function of the
step number alone, so it has no separate closed form.

May import: dslearn.optim.optimizer, dslearn.optim.lr_scheduler.

>>> import dslearn as ds
>>> from dslearn.optim import SGD
>>> opt = SGD([ds.zeros(1, requires_grad=True)], lr=0.1)
>>> s = OneCycleLR(opt, max_lr=1.0, total_steps=4, pct_start=0.5, anneal_strategy="linear")
>>> rates = [s.get_last_lr()[0]]
>>> for _ in range(3):
...     opt.step(); s.step(); rates.append(s.get_last_lr()[0])
>>> [round(r, 6) for r in rates], opt.param_groups[0]["momentum"]   # up, then down to 0.04 / 1e4
([0.04, 1.0, 0.500002, 4e-06], 0.95)
"""

from __future__ import annotations

import math

from dslearn.optim.lr_scheduler import LRScheduler, _check_optimizer, _format_per_group
from dslearn.optim.optimizer import Optimizer


class OneCycleLR(LRScheduler):
    """The 1cycle learning-rate (and momentum) policy; step it after every batch.

    Give ``total_steps``, or ``epochs`` and ``steps_per_epoch``.

    >>> import dslearn as ds
    >>> from dslearn.optim import Adam
    >>> opt = Adam([ds.zeros(1, requires_grad=True)])
    >>> s = OneCycleLR(opt, max_lr=0.01, total_steps=100)
    >>> round(s.get_last_lr()[0], 6), opt.param_groups[0]["betas"]   # starts at max_lr / 25
    (0.0004, (0.95, 0.999))
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | list[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | list[float] = 0.85, max_momentum: float | list[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer, "OneCycleLR")
        self.optimizer = optimizer
        self.total_steps = _total_steps(total_steps, epochs, steps_per_epoch)
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be a float between 0 and 1, got {pct_start!r}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        # Each phase: (last step of the phase, group keys of its start and end rate and momentum).
        up_end = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._phases = [(up_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                             "base_momentum", "max_momentum"),
                            (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._phases = [(up_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        if last_epoch == -1:
            for group, peak in zip(optimizer.param_groups, _format_per_group("max_lr", optimizer, max_lr)):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError(f"OneCycleLR: cycle_momentum needs an optimizer with momentum or betas; "
                                 f"{type(optimizer).__name__} has neither (pass cycle_momentum=False)")
            self.use_beta1 = "betas" in optimizer.defaults
            if last_epoch == -1:
                highs = _format_per_group("max_momentum", optimizer, max_momentum)
                lows = _format_per_group("base_momentum", optimizer, base_momentum)
                for group, high, low in zip(optimizer.param_groups, highs, lows):
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; the schedule has "
                             f"total_steps={self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            phase_start = 0.0
            for i, (phase_end, lr_from, lr_to, momentum_from, momentum_to) in enumerate(self._phases):
                if step <= phase_end or i == len(self._phases) - 1:
                    pct = (step - phase_start) / (phase_end - phase_start)
                    lrs.append(self._anneal(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[momentum_from], group[momentum_to], pct))
                    break
                phase_start = phase_end
        return lrs

    def _anneal(self, start: float, end: float, pct: float) -> float:
        """From ``start`` (pct = 0) to ``end`` (pct = 1), along a half cosine or a line."""
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _set_momentum(self, group: dict, momentum: float) -> None:
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum


def _total_steps(total_steps: int | None, epochs: int | None, steps_per_epoch: int | None) -> int:
    if total_steps is not None:
        if not isinstance(total_steps, int) or total_steps <= 0:
            raise ValueError(f"OneCycleLR: total_steps must be a positive int, got {total_steps!r}")
        return total_steps
    if epochs is None or steps_per_epoch is None:
        raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
    for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"OneCycleLR: {name} must be a positive int, got {value!r}")
    return epochs * steps_per_epoch
