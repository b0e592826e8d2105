"""``SGD``: stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

The update, for gradient g of parameter w (PyTorch's formulas, step t = 1, 2, ...)::

    g <- -g if maximize                      (ascend instead of descend)
    g <- g + weight_decay * w                (L2 penalty folded into the gradient)
    b <- g                      at t = 1     (momentum buffer)
    b <- momentum * b + (1 - dampening) * g  at t > 1
    g <- g + momentum * b if nesterov else b
    w <- w - lr * g

May import: numpy, dslearn.tensor, dslearn.optim.optimizer.

>>> import dslearn as ds
>>> from dslearn.optim import SGD
>>> w = ds.tensor([1.0], requires_grad=True)
>>> opt = SGD([w], lr=0.1, momentum=0.9)
>>> for _ in range(2):
...     opt.zero_grad(); (w * w).sum().backward(); opt.step()
>>> round(w.item(), 4)   # 1 - 0.2 = 0.8, then 0.8 - 0.1 * (0.9 * 2 + 1.6)
0.46
"""

from __future__ import annotations

import numpy as np

from dslearn.optim.optimizer import Optimizer, _check_at_least
from dslearn.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum; ``torch.optim.SGD``'s API.

    >>> import dslearn as ds
    >>> from dslearn.optim import SGD
    >>> w = ds.tensor([2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.25)
    >>> (w * w).sum().backward(); opt.step(); w       # 2 - 0.25 * 4
    tensor([1.], requires_grad=True)
    """

    supports_cuda = True  # whole-array NumPy calls, which CUDA arrays answer (NEP 13/18)

    def __init__(self, params=None, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening,
                                  "weight_decay": weight_decay, "nesterov": nesterov, "maximize": maximize})

    def _check_hyperparameters(self, group: dict) -> None:
        super()._check_hyperparameters(group)
        _check_at_least(self, group, "momentum", 0.0, "momentum value")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={group['momentum']}, dampening={group['dampening']})")

    def _update(self, param: Tensor, grad: np.ndarray, group: dict) -> None:
        w = param._data
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        direction, scratch = self._workspace(w, 0), self._workspace(w, 1)
        # d_p: the step direction. It starts as the gradient itself (read, never written) and
        # moves to a workspace the first time it has to change.
        d_p = np.negative(grad, out=direction) if group["maximize"] else grad
        if weight_decay != 0:
            d_p = np.add(d_p, np.multiply(w, weight_decay, out=scratch), out=direction)
        if momentum != 0:
            state = self.state[param]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = Tensor._make(d_p.copy())
                buf = state["momentum_buffer"]._data
            else:
                buf = state["momentum_buffer"]._data
                buf *= momentum
                buf += d_p if group["dampening"] == 0 else np.multiply(d_p, 1 - group["dampening"], out=scratch)
            if group["nesterov"]:
                d_p = np.add(d_p, np.multiply(buf, momentum, out=scratch), out=direction)
            else:
                d_p = buf
        w -= np.multiply(d_p, lr, out=scratch)
