"""Activation functions as modules (``nn.ReLU()``), for use inside ``Sequential``.

Each module holds only its settings and calls the function of the same name in
``dslearn.nn.functional``. ``inplace=True`` overwrites the input (saving memory, as in PyTorch);
autograd still checks that no value needed by backward was overwritten.

May import: warnings, dslearn.tensor, dslearn.ops.inplace, dslearn.nn.module, dslearn.nn.functional.

>>> import dslearn as ds
>>> ReLU()(ds.tensor([-1.0, 2.0])), Tanh()(ds.zeros(1))
(tensor([0., 2.]), tensor([0.]))
"""

from __future__ import annotations

import warnings

from dslearn.nn import functional as F
from dslearn.nn.module import Module
from dslearn.ops.inplace import inplace as run_inplace
from dslearn.tensor import Tensor


class ReLU(Module):
    """``max(x, 0)``.

    >>> import dslearn as ds
    >>> ReLU(inplace=True)
    ReLU(inplace=True)
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return run_inplace(input, F.relu) if self.inplace else F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    >>> import dslearn as ds
    >>> LeakyReLU(0.1)(ds.tensor([-1.0, 2.0]))
    tensor([-0.1,  2. ])
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input: Tensor) -> Tensor:
        if self.inplace:
            return run_inplace(input, F.leaky_relu, self.negative_slope)
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """Gaussian error linear unit, exact or with ``approximate='tanh'``.

    >>> GELU(approximate="tanh")
    GELU(approximate='tanh')
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``.

    >>> import dslearn as ds
    >>> Sigmoid()(ds.zeros(1))
    tensor([0.5])
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    """Hyperbolic tangent.

    >>> import dslearn as ds
    >>> Tanh()(ds.zeros(1))
    tensor([0.])
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input)


class Softplus(Module):
    """``log(1 + exp(beta x)) / beta``, linear above ``threshold``.

    >>> Softplus(beta=2.0)
    Softplus(beta=2.0, threshold=20.0)
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input: Tensor) -> Tensor:
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class SiLU(Module):
    """``x * sigmoid(x)`` (swish).

    >>> import dslearn as ds
    >>> SiLU()(ds.zeros(1))
    tensor([0.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return run_inplace(input, F.silu) if self.inplace else F.silu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ELU(Module):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    >>> ELU(alpha=0.5)
    ELU(alpha=0.5)
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Tensor) -> Tensor:
        return run_inplace(input, F.elu, self.alpha) if self.inplace else F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


def _implicit_dim(module: str, ndim: int) -> int:
    """PyTorch's legacy choice when no ``dim`` is given: 0 for 0-, 1- and 3-D inputs, else 1."""
    dim = 0 if ndim in (0, 1, 3) else 1
    warnings.warn(f"{module}: implicit dimension choice is deprecated; pass dim={dim} explicitly", stacklevel=3)
    return dim


class Softmax(Module):
    """Normalise ``dim`` into probabilities: ``exp(x) / sum(exp(x))``.

    >>> import dslearn as ds
    >>> Softmax(dim=-1)(ds.zeros(2, 4))[0]
    tensor([0.25, 0.25, 0.25, 0.25])
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.softmax(input, self.dim if self.dim is not None else _implicit_dim("Softmax", input.ndim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """``log(softmax(x))`` along ``dim``, computed stably.

    >>> LogSoftmax(dim=1)
    LogSoftmax(dim=1)
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.log_softmax(input, self.dim if self.dim is not None else _implicit_dim("LogSoftmax", input.ndim))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
