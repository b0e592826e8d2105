"""``Linear`` (``y = x W^T + b``) and ``Identity``: the layers every MLP is made of.

May import: math, dslearn.creation, dslearn.nn.module, dslearn.nn.parameter, dslearn.nn.init,
dslearn.nn.functional.

>>> import dslearn as ds
>>> ds.nn.Linear(784, 256)(ds.Tensor([1.0] * 784)).relu().shape
(256,)
"""

from __future__ import annotations

import math

from dslearn.creation import empty
from dslearn.nn import functional as F
from dslearn.nn import init
from dslearn.nn.module import Module
from dslearn.nn.parameter import Parameter
from dslearn.tensor import Tensor


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a layer); ignores any arguments.

    >>> import dslearn as ds
    >>> Identity(54, unused="argument")(ds.ones(2))
    tensor([1., 1.])
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` with ``weight`` of shape ``(out_features, in_features)``.

    Initialised as PyTorch does: weight ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming uniform with
    ``a=sqrt(5)``) and bias ~ U(-1/sqrt(in), 1/sqrt(in)).

    >>> import dslearn as ds
    >>> layer = Linear(3, 2)
    >>> layer.weight.shape, layer.bias.shape, layer(ds.ones(5, 3)).shape
    ((2, 3), (2,), (5, 2))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw fresh initial values (as at construction)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
