"""``GradScaler``: dynamic loss scaling, so that float16 gradients neither vanish nor overflow.

float16 cannot hold a number below about 6e-8: small gradients round to zero ("underflow") and
training silently stops learning. Multiplying the loss by a large scale S multiplies every
gradient by S on the way back, lifting them into float16's range; before the optimizer step the
gradients are divided by S again. S is tuned on the fly:

* if any gradient came out inf or NaN, the step is **skipped** and S is multiplied by
  ``backoff_factor`` (0.5);
* after ``growth_interval`` steps in a row without overflow, S is multiplied by ``growth_factor`` (2).

The API is PyTorch's ``torch.amp.GradScaler``::

    scaler.scale(loss).backward()
    scaler.step(optimizer)        # unscales (if unscale_ was not called), skips on inf/NaN
    scaler.update()               # adjusts the scale

May import: math, dslearn.tensor, dslearn.dtypes, dslearn.autograd.

>>> import dslearn as ds
>>> w = ds.tensor([1.0], requires_grad=True)
>>> optimizer = ds.optim.SGD([w], lr=0.1)
>>> scaler = GradScaler(init_scale=1024.0)
>>> scaler.scale((w * 2).sum()).backward(); w.grad      # the scaled gradient
tensor([2048.])
>>> scaler.step(optimizer); scaler.update(); w.grad, w    # unscaled, then the step
(tensor([2.]), tensor([0.8], requires_grad=True))
"""

from __future__ import annotations

import math

from dslearn import dtypes
from dslearn.autograd.grad_mode import no_grad
from dslearn.tensor import Tensor

_READY, _UNSCALED, _STEPPED = "ready", "unscaled", "stepped"


class GradScaler:
    """Scale the loss, unscale the gradients, skip steps that overflowed and adapt the scale.

    >>> scaler = GradScaler(init_scale=8.0, growth_interval=1)
    >>> scaler.get_scale(), scaler.state_dict()["growth_interval"]
    (8.0, 1)
    """

    def __init__(self, device: str = "cpu", init_scale: float = 2.0 ** 16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        if not (isinstance(init_scale, (int, float)) and math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"GradScaler: init_scale must be a positive finite number, got {init_scale!r}")
        if not growth_factor > 1.0:
            raise ValueError(f"GradScaler: growth_factor must be greater than 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be between 0 and 1, got {backoff_factor}")
        if not isinstance(growth_interval, int) or isinstance(growth_interval, bool) or growth_interval < 1:
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval!r}")
        self.device = device
        self._scale = float(init_scale)
        self._growth_factor, self._backoff_factor = float(growth_factor), float(backoff_factor)
        self._growth_interval = growth_interval
        self._growth_tracker = 0  # steps in a row without inf/NaN since the scale last changed
        self._enabled = bool(enabled)
        self._per_optimizer: dict[int, dict] = {}  # id(optimizer) -> {"stage": ..., "found_inf": bool}
        self.skipped_steps = 0  # optimizer steps skipped because a gradient was inf or NaN

    def is_enabled(self) -> bool:
        return self._enabled

    def get_scale(self) -> float:
        """The current scale (1.0 when disabled)."""
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def scale(self, outputs):
        """``outputs`` (a tensor, or a list or tuple of them) multiplied by the scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            return outputs * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(output) for output in outputs)
        raise TypeError(f"GradScaler.scale: expected a Tensor or a list or tuple of them, got {type(outputs).__name__}")

    def unscale_(self, optimizer) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale, and note any inf or NaN.

        Call it before clipping gradients, so that the clipping threshold applies to true values.
        """
        if not self._enabled:
            return
        record = self._record(optimizer)
        if record["stage"] == _UNSCALED:
            raise RuntimeError("GradScaler.unscale_: already called on this optimizer since the last update()")
        if record["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.unscale_: called after step(); call update() first")
        inverse = 1.0 / self._scale
        found_inf = False
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.dtype is dtypes.float16:
                        raise ValueError("GradScaler.unscale_: the gradients are float16; keep the parameters in "
                                         "float32 and run the model under ds.autocast(dtype=ds.float16)")
                    p.grad = p.grad * inverse  # a new array: gradients may share memory between parameters
                    found_inf = found_inf or not bool(p.grad.isfinite().all())
        record.update(stage=_UNSCALED, found_inf=found_inf)

    def step(self, optimizer, *args, **kwargs):
        """``optimizer.step()`` on unscaled gradients, or nothing (returns None) if one is inf or NaN."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("GradScaler.step: closures are not supported while the scaler is enabled")
        record = self._record(optimizer)
        if record["stage"] == _STEPPED:
            raise RuntimeError("GradScaler.step: already called on this optimizer since the last update()")
        if record["stage"] == _READY:
            self.unscale_(optimizer)
        record["stage"] = _STEPPED
        if record["found_inf"]:
            self.skipped_steps += 1
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | None = None) -> None:
        """Adjust the scale after the iteration's steps (or set it to ``new_scale``)."""
        if not self._enabled:
            return
        if new_scale is not None:
            if not (isinstance(new_scale, (int, float)) and math.isfinite(new_scale) and new_scale > 0):
                raise ValueError(f"GradScaler.update: new_scale must be a positive finite number, got {new_scale!r}")
            self._scale = float(new_scale)
        else:
            if not self._per_optimizer:
                raise RuntimeError("GradScaler.update: no unscale_() or step() was recorded since the last update()")
            if any(record["found_inf"] for record in self._per_optimizer.values()):
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._per_optimizer.clear()

    def state_dict(self) -> dict:
        """The scale and its schedule (empty when disabled), as PyTorch names them."""
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict`` returned."""
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("GradScaler.load_state_dict: the state is empty; it came from a disabled scaler")
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

    def _record(self, optimizer) -> dict:
        return self._per_optimizer.setdefault(id(optimizer), {"stage": _READY, "found_inf": False})
