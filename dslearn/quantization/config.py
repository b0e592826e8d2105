"""``QATConfig``: what to quantize and how (bits, scheme, observers, learned ranges), checked up front.

The seed's names and meanings: ``weight_bits`` and ``activation_bits`` (2 to 8), ``quant_scheme``
(``'symmetric'``, ``'asymmetric'`` or ``'dynamic'``), ``qat_enabled``, and ``quant_min`` /
``quant_max``, a fixed *real* clipping range for activations (e.g. -2.0 and 2.0) used instead
of an observer. Integer ranges follow from the bits (``integer_range``):

* weights are signed (int8, or int4 nibbles): symmetric ``[-(2^(b-1) - 1), 2^(b-1) - 1]`` with
  zero point 0 (the restricted range, so that ``-w`` is representable whenever ``w`` is), or
  asymmetric ``[-2^(b-1), 2^(b-1) - 1]`` with a zero point per channel;
* activations are unsigned ``[0, 2^b - 1]`` (uint8). Symmetric activations have zero point 0
  when they are never negative (after a ReLU) and ``2^(b-1)`` otherwise; asymmetric ones take
  the zero point their range needs; ``'dynamic'`` measures each batch's range at run time.

Fields can be set after construction (``config.quant_min = -2.0``, as the seed does);
``validate()`` runs again wherever a config is used, so a bad combination never goes unnoticed.

May import: dataclasses, math.

>>> config = QATConfig(weight_bits=4, activation_bits=8, quant_scheme="symmetric")
>>> config.weight_range, config.activation_range
((-7, 7), (0, 255))
>>> QATConfig(weight_bits=1)
Traceback (most recent call last):
...
ValueError: QATConfig: weight_bits must be an integer from 2 to 8, got 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEMES = ("symmetric", "asymmetric", "dynamic")
OBSERVERS = ("minmax", "moving_average", "percentile")
MIN_BITS, MAX_BITS = 2, 8


def integer_range(bits: int, *, signed: bool, symmetric: bool) -> tuple[int, int]:
    """The integers a ``bits``-wide quantizer uses: signed symmetric, signed asymmetric, or unsigned.

    >>> integer_range(4, signed=True, symmetric=True), integer_range(4, signed=True, symmetric=False)
    ((-7, 7), (-8, 7))
    >>> integer_range(8, signed=False, symmetric=True)
    (0, 255)
    """
    check_bits(bits, "integer_range", "bits")
    if not signed:
        return 0, 2**bits - 1
    half = 2 ** (bits - 1)
    return (-(half - 1), half - 1) if symmetric else (-half, half - 1)


def bits_of(quant_min: int, quant_max: int) -> int:
    """How many bits the integers ``quant_min..quant_max`` need.

    >>> bits_of(-7, 7), bits_of(0, 255)
    (4, 8)
    """
    return max(1, math.ceil(math.log2(quant_max - quant_min + 1)))


def check_bits(bits, owner: str, name: str) -> int:
    """``bits`` if it is an int from 2 to 8, else a ValueError naming ``owner`` and ``name``.

    >>> check_bits(4, "set_bits", "weights")
    4
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{owner}: {name} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return bits


@dataclass
class QATConfig:
    """Quantization settings for ``prepare_qat`` and ``quantize_model``.

    * ``weight_bits``, ``activation_bits``: 2 to 8. Weights of 2 to 4 bits are stored as packed
      nibbles, two per byte; 5 to 8 bits as int8.
    * ``quant_scheme``: ``'symmetric'`` (zero point 0), ``'asymmetric'`` (affine, with a zero
      point) or ``'dynamic'`` (symmetric weights; activation ranges measured per batch at run time).
    * ``qat_enabled``: True for quantization-aware training (``prepare_qat``, train, then
      ``quantize_model``); False for post-training quantization (``quantize_model`` with
      ``calibration_data``).
    * ``quant_min``, ``quant_max``: a fixed real range for activations (both or neither; it
      must contain 0), instead of an observer.
    * ``per_channel``: one weight scale per output channel (else one per layer).
    * ``observer``: how activation ranges are estimated: ``'minmax'`` (extremes seen),
      ``'moving_average'`` (of each batch's extremes; ``averaging_constant``) or
      ``'percentile'`` (of each batch's ``percentile``-th percentiles, averaged likewise).
    * ``learnable_scales``: learn the scales (and asymmetric zero points) by gradient descent (LSQ).
    * ``pact``: learn each activation clipping level by gradient descent (PACT).

    >>> config = QATConfig(weight_bits=4, quant_scheme="dynamic")
    >>> config.quant_min, config.quant_max = -2.0, 2.0
    >>> config.validate()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: QATConfig: quant_scheme='dynamic' measures activation ranges at run time; it cannot use ...
    """

    weight_bits: int = 8
    activation_bits: int = 8
    quant_scheme: str = "symmetric"
    qat_enabled: bool = True
    quant_min: float | None = None
    quant_max: float | None = None
    per_channel: bool = True
    observer: str = "moving_average"
    percentile: float = 99.99
    averaging_constant: float = 0.01
    learnable_scales: bool = False
    pact: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> QATConfig:
        """Raise a ValueError that names the fields of any invalid setting or combination; return self."""
        check_bits(self.weight_bits, "QATConfig", "weight_bits")
        check_bits(self.activation_bits, "QATConfig", "activation_bits")
        if self.quant_scheme not in SCHEMES:
            raise ValueError(f"QATConfig: quant_scheme must be one of {SCHEMES}, got {self.quant_scheme!r}")
        if self.observer not in OBSERVERS:
            raise ValueError(f"QATConfig: observer must be one of {OBSERVERS}, got {self.observer!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"QATConfig: percentile must be in (50, 100], got {self.percentile!r}")
        if not 0.0 < self.averaging_constant <= 1.0:
            raise ValueError(f"QATConfig: averaging_constant must be in (0, 1], got {self.averaging_constant!r}")
        self._validate_fixed_range()
        if not self.qat_enabled and (self.learnable_scales or self.pact):
            raise ValueError("QATConfig: learnable_scales and pact learn ranges during training; they need "
                             "qat_enabled=True (post-training quantization has nothing to learn them from)")
        if self.quant_scheme == "dynamic" and (self.learnable_scales or self.pact):
            raise ValueError("QATConfig: quant_scheme='dynamic' measures activation ranges at run time; they cannot "
                             "also be learned (learnable_scales=True or pact=True need 'symmetric' or 'asymmetric')")
        return self

    def _validate_fixed_range(self) -> None:
        low, high = self.quant_min, self.quant_max
        if low is None and high is None:
            return
        if low is None or high is None:
            raise ValueError(f"QATConfig: set quant_min and quant_max together (got quant_min={low!r}, "
                             f"quant_max={high!r})")
        if self.quant_scheme == "dynamic":
            raise ValueError("QATConfig: quant_scheme='dynamic' measures activation ranges at run time; it cannot "
                             f"use the fixed range quant_min={low!r}, quant_max={high!r}")
        if self.pact:
            raise ValueError("QATConfig: pact=True learns the activation range; it cannot use the fixed range "
                             f"quant_min={low!r}, quant_max={high!r}")
        if not (math.isfinite(low) and math.isfinite(high)) or not low <= 0.0 <= high or low == high:
            raise ValueError(f"QATConfig: the range quant_min={low!r}, quant_max={high!r} must be finite, non-empty "
                             "and contain 0 (so that a real 0, e.g. padding, is exactly representable)")

    @property
    def weight_symmetric(self) -> bool:
        """Whether weights have zero point 0 (every scheme but 'asymmetric')."""
        return self.quant_scheme != "asymmetric"

    @property
    def weight_range(self) -> tuple[int, int]:
        """The integer range of the weights."""
        return integer_range(self.weight_bits, signed=True, symmetric=self.weight_symmetric)

    @property
    def activation_range(self) -> tuple[int, int]:
        """The integer range of the activations (unsigned)."""
        return integer_range(self.activation_bits, signed=False, symmetric=self.quant_scheme == "symmetric")
