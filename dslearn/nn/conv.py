"""``Conv2d``: a 2-D convolution layer, with PyTorch's arguments, initialisation and repr.

The weight has shape ``(out_channels, in_channels // groups, kernel_h, kernel_w)``. Padding may
be numbers, ``'valid'`` (none) or ``'same'`` (output as large as the input, stride 1); a
``padding_mode`` other than ``'zeros'`` pads the input explicitly with ``F.pad`` first.

May import: math, dslearn.creation, dslearn.nn.module, dslearn.nn.parameter, dslearn.nn.init,
dslearn.nn.functional.

>>> import dslearn as ds
>>> conv = Conv2d(1, 8, kernel_size=3, padding=1)
>>> conv, conv(ds.ones(2, 1, 28, 28)).shape
(Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), (2, 8, 28, 28))
"""

from __future__ import annotations

import math

from dslearn.creation import empty
from dslearn.nn import functional as F
from dslearn.nn import init
from dslearn.nn.module import Module
from dslearn.nn.parameter import Parameter
from dslearn.tensor import Tensor

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def pair(value) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; a pair stays a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair of ints, got {value!r}")
        return tuple(value)
    return (value, value)


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in every framework) over ``(N, C, H, W)`` inputs.

    >>> import dslearn as ds
    >>> Conv2d(4, 8, 3, stride=2, groups=2, bias=False, padding_mode="reflect", padding=1)
    Conv2d(4, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=2, bias=False, padding_mode=reflect)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        if groups <= 0:
            raise ValueError(f"Conv2d: groups must be a positive integer, got {groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                             f"divisible by groups ({groups})")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = pair(kernel_size), pair(stride), pair(dilation)
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be a number, a pair, 'same' or 'valid', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = pair(padding)
        self._pad_widths = self._explicit_padding()
        self.weight = Parameter(empty(out_channels, in_channels // groups, *self.kernel_size, dtype=dtype,
                                      device=device))
        if bias:
            self.bias = Parameter(empty(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _explicit_padding(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom): the widths ``F.pad`` takes, last dimension first."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            widths = []
            for d, k in reversed(list(zip(self.dilation, self.kernel_size))):
                total = d * (k - 1)
                widths += [total // 2, total - total // 2]
            return tuple(widths)
        return (self.padding[1], self.padding[1], self.padding[0], self.padding[0])

    def reset_parameters(self) -> None:
        """Draw fresh initial values, as PyTorch: Kaiming uniform (a=sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        left, right, top, bottom = self._pad_widths
        if self.padding_mode == "zeros" and left == right and top == bottom:
            return F.conv2d(input, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
        padded = F.pad(input, self._pad_widths, mode=mode)
        return F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
