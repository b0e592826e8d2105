"""Progressive quantization: lower the bit widths step by step during training (8 -> 6 -> 4).

Jumping straight to 4 bits moves every weight a long way at once; lowering the bits in stages
lets training adapt to each step. ``ProgressiveQuantization`` is stepped once per epoch, like a
learning-rate scheduler: stage ``s`` lasts ``epochs_per_stage`` epochs at ``schedule[s]`` bits,
and the last stage lasts for the rest of training. ``set_bits`` changes every quantizer of a
prepared model at once; observers recompute their scales for the new range and learned (LSQ)
scales grow by the ratio of levels, so the clipping range is kept across a change.

May import: dslearn.nn, dslearn.quantization.{config, qat}.

>>> import dslearn as ds
>>> from dslearn.quantization import QATConfig, prepare_qat
>>> model = prepare_qat(ds.nn.Linear(4, 2), QATConfig(weight_bits=4))
>>> schedule = ProgressiveQuantization(model, schedule=(8, 6, 4))
>>> [schedule.bits] + [schedule.step() for _ in range(3)]
[8, 6, 4, 4]
>>> model.weight_fake_quant.bits, model.input_fake_quant.bits
(4, 8)
"""

from __future__ import annotations

from dslearn.nn.module import Module
from dslearn.quantization.config import check_bits
from dslearn.quantization.qat import QATConv2d, QATLinear


def set_bits(model: Module, *, weights: int | None = None, activations: int | None = None) -> None:
    """Set the bit width of every weight quantizer and/or every input quantizer of a prepared ``model``.

    >>> import dslearn as ds
    >>> from dslearn.quantization import QATConfig, prepare_qat
    >>> model = prepare_qat(ds.nn.Linear(4, 2), QATConfig())
    >>> set_bits(model, weights=4, activations=6)
    >>> model.weight_fake_quant.observer.quant_min, model.input_fake_quant.observer.quant_max
    (-7, 63)
    """
    layers = [m for m in model.modules() if isinstance(m, (QATLinear, QATConv2d))]
    if not layers:
        raise ValueError(f"set_bits: the {type(model).__name__} holds no QAT layers; prepare it with prepare_qat first")
    for bits, name in ((weights, "weights"), (activations, "activations")):
        if bits is not None:
            check_bits(bits, "set_bits", name)
    for layer in layers:
        if weights is not None:
            layer.weight_fake_quant.set_bits(weights)
        if activations is not None:
            layer.input_fake_quant.set_bits(activations)


class ProgressiveQuantization:
    """Step the bits of a prepared model's weights (and, with ``activations=True``, inputs) through ``schedule``.

    Construction applies ``schedule[0]``; call ``step()`` at the end of every epoch (it returns
    the bits now in force). ``state_dict`` / ``load_state_dict`` let a checkpoint resume it.

    >>> import dslearn as ds
    >>> from dslearn.quantization import QATConfig, prepare_qat
    >>> schedule = ProgressiveQuantization(prepare_qat(ds.nn.Linear(2, 2), QATConfig()), (8, 4), epochs_per_stage=2)
    >>> [schedule.step() for _ in range(3)], schedule.state_dict()
    ([8, 4, 4], {'epoch': 3})
    """

    def __init__(self, model: Module, schedule: tuple[int, ...] = (8, 6, 4), *, epochs_per_stage: int = 1,
                 activations: bool = False) -> None:
        schedule = tuple(schedule)
        if not schedule:
            raise ValueError("ProgressiveQuantization: the schedule is empty; give bit widths such as (8, 6, 4)")
        for bits in schedule:
            check_bits(bits, "ProgressiveQuantization", "every scheduled bit width")
        if any(later > earlier for earlier, later in zip(schedule, schedule[1:])):
            raise ValueError(f"ProgressiveQuantization: the schedule must never raise the bits, got {schedule}")
        if isinstance(epochs_per_stage, bool) or not isinstance(epochs_per_stage, int) or epochs_per_stage < 1:
            raise ValueError(f"ProgressiveQuantization: epochs_per_stage must be a positive int, got "
                             f"{epochs_per_stage!r}")
        self.model, self.schedule, self.epochs_per_stage = model, schedule, epochs_per_stage
        self.activations = activations
        self.epoch = 0
        self._apply()

    @property
    def bits(self) -> int:
        """The bit width in force for the current epoch."""
        return self.schedule[min(self.epoch // self.epochs_per_stage, len(self.schedule) - 1)]

    def _apply(self) -> None:
        set_bits(self.model, weights=self.bits, activations=self.bits if self.activations else None)

    def step(self) -> int:
        """End an epoch: move to the next stage when this one is over; return the bits in force."""
        before = self.bits
        self.epoch += 1
        if self.bits != before:
            self._apply()
        return self.bits

    def state_dict(self) -> dict:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self._apply()
