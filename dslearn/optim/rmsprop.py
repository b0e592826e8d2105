"""``RMSprop``: divide each gradient by a running root mean square of its recent values.

The update, for gradient g of parameter w (PyTorch's formulas)::

    g <- -g if maximize
    g <- g + weight_decay * w
    s <- alpha * s + (1 - alpha) * g * g        running mean of g^2
    a <- a + (1 - alpha) * (g - a)               running mean of g (centered only)
    r <- sqrt(s - a * a) if centered else sqrt(s)
    b <- momentum * b + g / (r + eps); w <- w - lr * b      with momentum > 0
    w <- w - lr * g / (r + eps)                             without

May import: numpy, dslearn.tensor, dslearn.optim.optimizer.

>>> import dslearn as ds
>>> from dslearn.optim import RMSprop
>>> w = ds.tensor([1.0], requires_grad=True)
>>> opt = RMSprop([w], lr=0.01, alpha=0.99)
>>> (w * w).sum().backward(); opt.step()
>>> round(w.item(), 4)   # 1 - 0.01 * 2 / sqrt(0.01 * 4)
0.9
"""

from __future__ import annotations

import numpy as np

from dslearn.optim.optimizer import Optimizer, _check_at_least
from dslearn.tensor import Tensor


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), optionally centered and with momentum; ``torch.optim.RMSprop``'s API.

    >>> import dslearn as ds
    >>> from dslearn.optim import RMSprop
    >>> RMSprop(0.001).bind([ds.zeros(2, requires_grad=True)]).param_groups[0]["alpha"]
    0.99
    """

    def __init__(self, params=None, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay,
                                  "momentum": momentum, "centered": centered, "maximize": maximize})

    def _check_hyperparameters(self, group: dict) -> None:
        super()._check_hyperparameters(group)
        _check_at_least(self, group, "eps", 0.0, "epsilon value")
        _check_at_least(self, group, "momentum", 0.0, "momentum value")
        _check_at_least(self, group, "alpha", 0.0, "alpha value")

    def _update(self, param: Tensor, grad: np.ndarray, group: dict) -> None:
        lr, alpha, momentum, weight_decay = group["lr"], group["alpha"], group["momentum"], group["weight_decay"]
        state = self.state[param]
        if not state:
            state["step"] = self._step_state()
            state["square_avg"] = self._zeros_state(param)
            if momentum > 0:
                state["momentum_buffer"] = self._zeros_state(param)
            if group["centered"]:
                state["grad_avg"] = self._zeros_state(param)
        state["step"]._data += 1
        w, square_avg = param._data, state["square_avg"]._data
        modified_grad, avg, scratch = self._workspace(w, 0), self._workspace(w, 1), self._workspace(w, 2)
        g = np.negative(grad, out=modified_grad) if group["maximize"] else grad  # p.grad is never written
        if weight_decay != 0:
            g = np.add(g, np.multiply(w, weight_decay, out=scratch), out=modified_grad)
        square_avg *= alpha
        square_avg += np.multiply(np.multiply(g, g, out=scratch), 1 - alpha, out=scratch)
        if group["centered"]:
            grad_avg = state["grad_avg"]._data
            grad_avg += np.multiply(np.subtract(g, grad_avg, out=scratch), 1 - alpha, out=scratch)
            np.subtract(square_avg, np.multiply(grad_avg, grad_avg, out=scratch), out=avg)
            np.sqrt(avg, out=avg)
        else:
            np.sqrt(square_avg, out=avg)
        avg += group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"]._data
            buf *= momentum
            buf += np.divide(g, avg, out=scratch)
            w -= np.multiply(buf, lr, out=scratch)
        else:
            w -= np.multiply(np.divide(g, avg, out=scratch), lr, out=scratch)
