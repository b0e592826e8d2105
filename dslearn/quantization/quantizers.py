"""Quantizer modules: what QAT inserts in front of every weight and every layer input.

Each quantizer is a Module that fake-quantizes its input and can report the ``(scale,
zero_point)`` an integer layer will use (``qparams()``). They differ in where the range comes from:

* ``FakeQuantize``: an observer, updated in training mode (in eval mode the range is frozen).
  With ``memoryless=True`` it forgets earlier tensors before each observation and observes in
  eval mode too: the range of the current weights, which is what a weight quantizer wants.
* ``LearnableFakeQuantize``: LSQ. The observer sets the initial scale (and zero point) from the
  first training batch; from then on they are Parameters trained by the optimizer.
* ``PACTFakeQuantize``: a learned clipping level ``alpha`` (activations only).
* ``DynamicFakeQuantize``: each batch's own min and max (no state): dynamic quantization.

Every quantizer has ``bits`` and ``set_bits(bits)``, which a progressive schedule uses to go
from 8 to 6 to 4 bits during training.

May import: numpy, dslearn.tensor, dslearn.creation, dslearn.autograd, dslearn.nn,
dslearn.quantization.{config, observers, fake_quant}.

>>> import dslearn as ds
>>> from dslearn.quantization.observers import MinMaxObserver
>>> quantizer = FakeQuantize(MinMaxObserver(-7, 7))
>>> quantizer(ds.tensor([-0.7, 0.33, 0.7]))
tensor([-0.7,  0.3,  0.7])
>>> quantizer.bits, quantizer.qparams()
(4, (array(0.1, dtype=float32), array(0, dtype=int32)))
"""

from __future__ import annotations

import math

import numpy as np

from dslearn.autograd.grad_mode import no_grad
from dslearn.creation import tensor
from dslearn.nn.module import Module
from dslearn.nn.parameter import Parameter
from dslearn.quantization.config import bits_of, check_bits, integer_range
from dslearn.quantization.fake_quant import fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine, pact
from dslearn.quantization.observers import EPS, Observer, qparams_from_range, representable_scale
from dslearn.tensor import Tensor


def _rescaled_range(quant_min: int, quant_max: int, bits: int) -> tuple[int, int]:
    """The range of the same kind (signed symmetric, signed asymmetric, unsigned) for ``bits``."""
    signed = quant_min < 0
    return integer_range(bits, signed=signed, symmetric=signed and quant_min == -quant_max)


class FakeQuantize(Module):
    """Observer-driven fake quantization; per channel when the observer is.

    ``observer_enabled`` and ``fake_quant_enabled`` switch the two halves off (calibration
    observes float values; a model can be evaluated in float without removing the quantizers).

    >>> import dslearn as ds
    >>> from dslearn.quantization.observers import MinMaxObserver
    >>> weight = FakeQuantize(MinMaxObserver(-7, 7, ch_axis=0, channels=2), memoryless=True)
    >>> weight(ds.tensor([[0.7, 0.2], [-0.07, 0.05]]))
    tensor([[ 0.7 ,  0.2 ],
            [-0.07,  0.05]])
    """

    def __init__(self, observer: Observer, *, memoryless: bool = False) -> None:
        super().__init__()
        self.observer, self.memoryless = observer, memoryless
        self.observer_enabled, self.fake_quant_enabled = True, True
        self.register_buffer("scale", tensor(np.ones(observer.min_val.shape, np.float32)))
        self.register_buffer("zero_point", tensor(np.zeros(observer.min_val.shape, np.int32)))
        if observer.has_data:  # a fixed range is known before any data
            self.scale, self.zero_point = observer.calculate_qparams()

    @property
    def quant_min(self) -> int:
        return self.observer.quant_min

    @property
    def quant_max(self) -> int:
        return self.observer.quant_max

    @property
    def bits(self) -> int:
        return bits_of(self.quant_min, self.quant_max)

    def set_bits(self, bits: int) -> None:
        """Quantize to ``bits`` from now on (same kind of range); recompute the scale from the recorded range."""
        check_bits(bits, type(self).__name__, "bits")
        self.observer.set_range(*_rescaled_range(self.quant_min, self.quant_max, bits))
        if self.observer.has_data:
            self.scale, self.zero_point = self.observer.calculate_qparams()

    def forward(self, x: Tensor) -> Tensor:
        if self.observer_enabled and (self.training or self.memoryless):  # weights are re-read even in eval
            if self.memoryless:
                self.observer.reset_min_max()
            self.observer(x)
            self.scale, self.zero_point = self.observer.calculate_qparams()
        if not self.fake_quant_enabled:
            return x
        if not self.observer.has_data:
            raise RuntimeError(f"{type(self).__name__}: no range yet; run a training step or calibration first")
        if self.observer.ch_axis is None:
            return fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, self.quant_min, self.quant_max)
        return fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.observer.ch_axis,
                                                self.quant_min, self.quant_max)

    def qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` as float32 and int32 arrays, for the integer layer."""
        scale, zero_point = self.observer.calculate_qparams()  # raises if nothing was observed
        return scale.numpy(), zero_point.numpy()

    def extra_repr(self) -> str:
        return f"bits={self.bits}" + (", memoryless" if self.memoryless else "")


class LearnableFakeQuantize(FakeQuantize):
    """LSQ: the scale (and, for an affine range, the zero point) are Parameters, initialised by the observer.

    The scale's gradient is multiplied by ``1 / sqrt(n * quant_max)`` (``n``: elements per
    channel), the factor LSQ prescribes to keep its steps in proportion to the weights'.

    >>> import dslearn as ds
    >>> from dslearn.quantization.observers import MinMaxObserver
    >>> quantizer = LearnableFakeQuantize(MinMaxObserver(0, 15))
    >>> quantizer(ds.tensor([0.0, 1.0, 1.5])).sum().backward()
    >>> quantizer.scale.item(), quantizer.scale.grad is not None
    (0.10000000149011612, True)
    """

    def __init__(self, observer: Observer) -> None:
        super().__init__(observer)
        self.register_buffer("initialized", tensor(np.uint8(0)))
        shape = observer.min_val.shape
        del self.scale, self.zero_point
        self.scale = Parameter(tensor(np.ones(shape, np.float32)))
        if observer.symmetric:  # a fixed zero point, set from the observer once
            self.register_buffer("zero_point", tensor(np.zeros(shape, np.float32)))
        else:
            self.zero_point = Parameter(tensor(np.zeros(shape, np.float32)))

    def set_bits(self, bits: int) -> None:
        """Keep the clipping range: the scale grows by the ratio of levels; the zero point moves with it."""
        check_bits(bits, type(self).__name__, "bits")
        old_min, old_levels = self.quant_min, self.quant_max - self.quant_min
        self.observer.set_range(*_rescaled_range(self.quant_min, self.quant_max, bits))
        ratio = old_levels / (self.quant_max - self.quant_min)
        with no_grad():
            self.scale.mul_(ratio)
            moved = self.quant_min + (self.zero_point.detach().numpy() - old_min) / ratio
            self.zero_point.copy_(tensor(np.rint(moved)))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not self.initialized.item():
            self.observer(x)
            scale, zero_point = self.observer.calculate_qparams()
            with no_grad():
                self.scale.copy_(scale)
                self.zero_point.copy_(zero_point.float())
            self.initialized.fill_(1)
        if not self.initialized.item():
            raise RuntimeError("LearnableFakeQuantize: not initialised; run a training step or calibration first")
        if not self.fake_quant_enabled:
            return x
        with no_grad():  # keep the learned values valid: a positive scale, a zero point in range
            self.scale.clamp_(min=float(EPS))
            self.zero_point.clamp_(self.quant_min, self.quant_max)
        axis = self.observer.ch_axis
        per_channel = x.numel() // (1 if axis is None else x.shape[axis])
        factor = 1.0 / math.sqrt(per_channel * max(self.quant_max, 1))
        # Compute with the scale the integer layer will store; the rounding is straight-through.
        stored = tensor(representable_scale(self.scale.detach().numpy(), self.observer.scale_dtype))
        scale = self.scale + (stored - self.scale.detach())
        if axis is None:
            return fake_quantize_per_tensor_affine(x, scale, self.zero_point, self.quant_min, self.quant_max,
                                                   grad_factor=factor)
        return fake_quantize_per_channel_affine(x, scale, self.zero_point, axis, self.quant_min, self.quant_max,
                                                grad_factor=factor)

    def qparams(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.initialized.item():
            raise RuntimeError("LearnableFakeQuantize: not initialised; run a training step or calibration first")
        zero_point = np.clip(np.rint(self.zero_point.detach().numpy()), self.quant_min, self.quant_max)
        return representable_scale(self.scale.detach().numpy(), self.observer.scale_dtype), zero_point.astype(np.int32)


class PACTFakeQuantize(Module):
    """PACT for activations: a learned clipping level ``alpha``, set from the first training batch's max |x|.

    Inputs that were never negative in that batch are clipped to ``[0, alpha]``; others to
    ``[-alpha, alpha]`` (stored unsigned with the middle integer as zero point).

    >>> import dslearn as ds
    >>> quantizer = PACTFakeQuantize(bits=2)
    >>> quantizer(ds.tensor([0.0, 0.4, 3.0])), quantizer.alpha.item()
    (tensor([0., 0., 3.], grad_fn=<FakeQuantizeAffineBackward>), 3.0)
    """

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.quant_min, self.quant_max = integer_range(check_bits(bits, "PACTFakeQuantize", "bits"), signed=False,
                                                       symmetric=True)
        self.alpha = Parameter(tensor(np.float32(1.0)))
        self.register_buffer("initialized", tensor(np.uint8(0)))
        self.register_buffer("signed", tensor(np.uint8(0)))
        self.fake_quant_enabled = True

    @property
    def bits(self) -> int:
        return bits_of(self.quant_min, self.quant_max)

    def set_bits(self, bits: int) -> None:
        """Quantize to ``bits`` from now on (alpha, the clipping level, stays)."""
        self.quant_min, self.quant_max = integer_range(check_bits(bits, "PACTFakeQuantize", "bits"), signed=False,
                                                       symmetric=True)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and not self.initialized.item():
            values = x.detach().numpy()
            with no_grad():
                self.alpha.fill_(float(max(np.abs(values).max(), EPS)))
            self.signed.fill_(int(values.min() < 0))
            self.initialized.fill_(1)
        if not self.initialized.item():
            raise RuntimeError("PACTFakeQuantize: not initialised; run a training step first")
        if not self.fake_quant_enabled:
            return x
        with no_grad():
            self.alpha.clamp_(min=float(EPS))
        return pact(x, self.alpha, self.bits, signed=bool(self.signed.item()))

    def qparams(self) -> tuple[np.ndarray, np.ndarray]:
        """The affine parameters PACT quantizes with: ``alpha / levels`` and 0 (or the middle integer)."""
        if not self.initialized.item():
            raise RuntimeError("PACTFakeQuantize: not initialised; run a training step first")
        alpha = np.float32(self.alpha.item())
        if self.signed.item():
            return np.float32(alpha / ((self.quant_max - self.quant_min) // 2)), np.int32((self.quant_max + 1) // 2)
        return np.float32(alpha / self.quant_max), np.int32(0)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class DynamicFakeQuantize(Module):
    """Dynamic quantization: each call uses the affine parameters of its own input's min and max.

    >>> import dslearn as ds
    >>> DynamicFakeQuantize(8)(ds.tensor([0.0, 0.5, 1.0]))
    tensor([0.   , 0.498, 1.   ])
    """

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.quant_min, self.quant_max = integer_range(check_bits(bits, "DynamicFakeQuantize", "bits"), signed=False,
                                                       symmetric=False)
        self.fake_quant_enabled = True

    @property
    def bits(self) -> int:
        return bits_of(self.quant_min, self.quant_max)

    def set_bits(self, bits: int) -> None:
        """Quantize to ``bits`` from now on."""
        self.quant_min, self.quant_max = integer_range(check_bits(bits, "DynamicFakeQuantize", "bits"), signed=False,
                                                       symmetric=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.fake_quant_enabled:
            return x
        scale, zero_point = dynamic_qparams(x.detach().numpy(), self.quant_min, self.quant_max)
        return fake_quantize_per_tensor_affine(x, tensor(scale), tensor(zero_point), self.quant_min, self.quant_max)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def dynamic_qparams(x: np.ndarray, quant_min: int, quant_max: int) -> tuple[np.ndarray, np.ndarray]:
    """The affine ``(scale, zero_point)`` of one batch's own range, as dynamic quantization computes them.

    >>> dynamic_qparams(np.array([-1.0, 3.0]), 0, 15)
    (array(0.26666668, dtype=float32), array(4, dtype=int32))
    """
    if x.size == 0:
        raise ValueError(f"dynamic quantization: cannot quantize an empty tensor of shape {x.shape}")
    return qparams_from_range(x.min(), x.max(), quant_min, quant_max, symmetric=False)
