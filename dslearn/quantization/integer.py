"""Integer layers: ``QuantizedLinear`` and ``QuantizedConv2d``, what ``quantize_model`` produces.

Their state is what an integer model *is*, and what ``ds.save`` writes:

* ``weight``: int8 ``(out, k)`` for 5 to 8 bits; for 2 to 4 bits, uint8 ``(out, ceil(k / 2))``
  with two signed nibbles per byte, element ``2i`` in the low nibble and ``2i + 1`` in the high
  one (ONNX's order; ``k`` is ``in_features``, or ``in_channels / groups * kh * kw`` for a conv);
* ``weight_scale``: float16, one per output channel (or one per layer): 11 significant bits are
  plenty for a scale, and at 4 bits a small model's scales are a noticeable share of its bytes;
* ``weight_zero_point``: int8, only for asymmetric weights;
* ``bias``: float32;
* ``input_scale`` (float32) and ``input_zero_point`` (uint8): how the layer's input is
  quantized, unless activations are quantized dynamically (measured on each batch).

``forward`` quantizes the float input to unsigned integers, runs an integer kernel
(``kernels.cpu.quantized``: int16 operands centred on their zero points, int32 sums) and rescales
each output channel's sums once: float32 out. The layers are for inference: no gradients.

May import: numpy, dslearn.tensor, dslearn.creation, dslearn.nn, dslearn.kernels,
dslearn.quantization.{config, observers, quantizers}.

>>> import numpy as np, dslearn as ds
>>> layer = QuantizedLinear(3, 2, weight_bits=4)
>>> layer.set_weight(np.array([[0.7, -0.7, 0.1], [0.0, 0.35, -0.2]], np.float32), np.float32(0.1), np.int32(0))
>>> layer.weight, layer.int_weight()
(tensor([[151,   1],
        [ 64,  14]], dtype=dslearn.uint8), array([[ 7, -7,  1],
       [ 0,  4, -2]], dtype=int8))
"""

from __future__ import annotations

import numpy as np

from dslearn.creation import tensor
from dslearn.kernels.cpu import quantized as kernels
from dslearn.nn.module import Module
from dslearn.ops.arguments import check_floating, describe, to_tensor
from dslearn.quantization.config import integer_range
from dslearn.quantization.observers import representable_scale
from dslearn.quantization.quantizers import dynamic_qparams
from dslearn.tensor import Tensor

PACKED_BITS = 4  # weights of this many bits or fewer are stored as nibbles


class IntegerLayer(Module):
    """What QuantizedLinear and QuantizedConv2d share: the integer weight, its scales and the input's quantization."""

    def __init__(self, out_channels: int, terms: int, bias: bool, *, weight_bits: int, weight_symmetric: bool,
                 per_channel: bool, activation_bits: int, dynamic: bool) -> None:
        super().__init__()
        self.out_channels, self.terms = out_channels, terms
        self.weight_bits, self.weight_symmetric, self.per_channel = weight_bits, weight_symmetric, per_channel
        self.activation_bits, self.dynamic = activation_bits, dynamic
        self.weight_range = integer_range(weight_bits, signed=True, symmetric=weight_symmetric)
        self.activation_range = integer_range(activation_bits, signed=False, symmetric=True)
        packed = weight_bits <= PACKED_BITS
        stored = (out_channels, (terms + 1) // 2) if packed else (out_channels, terms)
        self.register_buffer("weight", tensor(np.zeros(stored, np.uint8 if packed else np.int8)))
        channels = out_channels if per_channel else 1
        self.register_buffer("weight_scale", tensor(np.ones(channels, np.float16)))
        if not weight_symmetric:
            self.register_buffer("weight_zero_point", tensor(np.zeros(channels, np.int8)))
        self.register_buffer("bias", tensor(np.zeros(out_channels, np.float32)) if bias else None)
        if not dynamic:
            self.register_buffer("input_scale", tensor(np.float32(1.0)))
            self.register_buffer("input_zero_point", tensor(np.uint8(0)))

    @property
    def packed(self) -> bool:
        """Whether the weight is stored as int4 nibbles, two per byte."""
        return self.weight_bits <= PACKED_BITS

    def set_weight(self, weight: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> None:
        """Quantize a float weight (first axis: output channels) with its scales and zero points, and store it.

        The scales are stored in float16: a scale that is not a float16 number is first rounded
        to one (``representable_scale``), and the weight is quantized with the rounded scale.
        QAT's weight quantizers already compute with such scales, so nothing changes for them.
        """
        axis = 0 if self.per_channel else None
        scale = representable_scale(scale, np.float16).reshape(-1)
        rows = np.asarray(weight, dtype=np.float32).reshape(self.out_channels, self.terms)
        q = kernels.quantize(rows, scale, zero_point, *self.weight_range, np.int8, axis=axis)
        self.weight = tensor(kernels.pack_int4(q) if self.packed else q)
        self.weight_scale = tensor(scale.astype(np.float16))
        if not self.weight_symmetric:
            self.weight_zero_point = tensor(np.asarray(zero_point, np.int8).reshape(-1))

    def set_input_qparams(self, scale, zero_point) -> None:
        """How the input is quantized (static activations only)."""
        self.input_scale = tensor(np.float32(scale))
        self.input_zero_point = tensor(np.uint8(zero_point))

    def int_weight(self) -> np.ndarray:
        """The stored integers of the weight, unpacked: int8 ``(out_channels, terms)``."""
        stored = self.weight.numpy()
        return kernels.unpack_int4(stored, self.terms) if self.packed else stored

    def centred_weight(self) -> np.ndarray:
        """``weight - weight_zero_point`` as int16, what the kernels multiply."""
        centred = self.int_weight().astype(np.int16)
        if not self.weight_symmetric:
            centred -= self.weight_zero_point.numpy().astype(np.int16)[:, None]
        return centred

    def dequantized_weight(self) -> np.ndarray:
        """The real weight the integers stand for, float32 ``(out_channels, terms)``."""
        return self.centred_weight().astype(np.float32) * self.weight_scale.numpy().astype(np.float32)[:, None]

    def quantize_input(self, x: np.ndarray) -> tuple[np.ndarray, np.float32]:
        """The input as centred int16 integers, and its scale (measured on ``x`` when dynamic)."""
        if self.dynamic:
            scale, zero_point = dynamic_qparams(x, *self.activation_range)
        else:
            scale, zero_point = self.input_scale.numpy(), self.input_zero_point.numpy()
        return kernels.quantize_centred(x, scale, zero_point, *self.activation_range), np.float32(scale)

    def output_scale(self, input_scale: np.float32) -> np.ndarray:
        """One float32 factor per output channel: input scale times weight scale."""
        scales = input_scale * self.weight_scale.numpy().astype(np.float32)
        return np.broadcast_to(scales, (self.out_channels,)).astype(np.float32)

    def bias_array(self) -> np.ndarray:
        return self.bias.numpy() if self.bias is not None else np.zeros(self.out_channels, np.float32)

    def float_input(self, input, op: str, ndims: tuple[int, ...]) -> np.ndarray:
        input = to_tensor(input, op)
        check_floating(op, input)
        if input.ndim not in ndims:
            raise ValueError(f"{op}: expected a {' or '.join(map(str, ndims))}-d input, got {describe(input)}")
        return np.asarray(input.detach().numpy(), dtype=np.float32)

    def quant_repr(self) -> str:
        weights = f"int{self.weight_bits}" + (" packed" if self.packed else "")
        weights += " symmetric" if self.weight_symmetric else " asymmetric"
        weights += " per channel" if self.per_channel else " per tensor"
        inputs = f"uint{self.activation_bits}" + (" dynamic" if self.dynamic else "")
        return f"weight={weights}, input={inputs}"


class QuantizedLinear(IntegerLayer):
    """``Linear`` computed in integers: ``y = (q(x) - zx) (q(W) - zw)^T * sx * sw + b`` with int32 sums.

    >>> import dslearn as ds
    >>> QuantizedLinear(400, 120, weight_bits=4)
    QuantizedLinear(in_features=400, out_features=120, weight=int4 packed symmetric per channel, input=uint8)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, weight_bits: int = 8,
                 weight_symmetric: bool = True, per_channel: bool = True, activation_bits: int = 8,
                 dynamic: bool = False) -> None:
        super().__init__(out_features, in_features, bias, weight_bits=weight_bits, weight_symmetric=weight_symmetric,
                         per_channel=per_channel, activation_bits=activation_bits, dynamic=dynamic)
        self.in_features, self.out_features = in_features, out_features

    def forward(self, input: Tensor) -> Tensor:
        op = "QuantizedLinear"
        x = self.float_input(input, op, (1, 2, 3, 4, 5))
        if x.shape[-1] != self.in_features:
            raise ValueError(f"{op}: input of shape {x.shape} has {x.shape[-1]} features; expected {self.in_features}")
        rows = x.reshape(-1, self.in_features)
        xc, input_scale = self.quantize_input(rows)
        out = kernels.quantized_linear(xc, self.centred_weight(), self.output_scale(input_scale), self.bias_array())
        return Tensor._make(out.reshape(*x.shape[:-1], self.out_features))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.quant_repr()}"


class QuantizedConv2d(IntegerLayer):
    """``Conv2d`` computed in integers; padded pixels hold the input's zero point, i.e. a real 0.

    ``padding`` is given as ``F.pad`` widths ``(left, right, top, bottom)`` (a ``Conv2d``'s
    ``_pad_widths``), so that ``'same'`` padding with an even kernel keeps its extra pixel.

    >>> import dslearn as ds
    >>> conv = QuantizedConv2d(1, 2, (3, 3), padding=(1, 1, 1, 1), weight_bits=4, dynamic=True)
    >>> conv(ds.ones(1, 1, 5, 5)).shape, conv.weight.shape
    ((1, 2, 5, 5), (2, 5))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int] = (1, 1), padding: tuple[int, int, int, int] = (0, 0, 0, 0),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1, bias: bool = True, *, weight_bits: int = 8,
                 weight_symmetric: bool = True, per_channel: bool = True, activation_bits: int = 8,
                 dynamic: bool = False) -> None:
        terms = in_channels // groups * kernel_size[0] * kernel_size[1]
        super().__init__(out_channels, terms, bias, weight_bits=weight_bits, weight_symmetric=weight_symmetric,
                         per_channel=per_channel, activation_bits=activation_bits, dynamic=dynamic)
        self.in_channels, self.kernel_size, self.groups = in_channels, tuple(kernel_size), groups
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)

    def forward(self, input: Tensor) -> Tensor:
        op = "QuantizedConv2d"
        x = self.float_input(input, op, (3, 4))
        images = x if x.ndim == 4 else x[None]
        if images.shape[1] != self.in_channels:
            raise ValueError(f"{op}: input of shape {x.shape} has {images.shape[1]} channels; expected "
                             f"{self.in_channels}")
        xc, input_scale = self.quantize_input(images)
        weight = self.centred_weight().reshape(self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        left, right, top, bottom = self.padding
        out = kernels.quantized_conv2d(xc, weight, self.output_scale(input_scale), self.bias_array(), self.stride,
                                       (top, bottom, left, right), self.dilation, self.groups)
        return Tensor._make(out if x.ndim == 4 else out[0])

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, {self.quant_repr()}")
