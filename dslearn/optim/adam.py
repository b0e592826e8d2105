"""``Adam`` and ``AdamW``: adaptive moment estimation, with L2 or decoupled weight decay.

The update, for gradient g of parameter w at step t = 1, 2, ... (PyTorch's formulas)::

    g <- -g if maximize
    w <- w * (1 - lr * weight_decay)          AdamW: decay the weight itself, or
    g <- g + weight_decay * w                 Adam: fold an L2 penalty into the gradient
    m <- m + (1 - beta1) * (g - m)            first moment (a running mean of g)
    v <- beta2 * v + (1 - beta2) * g * g      second moment (a running mean of g^2)
    v_max <- max(v_max, v); v <- v_max        with amsgrad
    w <- w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

Two implementations compute it: a NumPy one (a dozen whole-array operations into
preallocated buffers, the one to read) and a fused Numba kernel from
``dslearn.kernels.cpu.optim`` (one parallel pass over memory), used for float32 and
float64 parameters unless ``fused=False``. Parameters on the GPU always take the fused
kernel's CUDA twin (``dslearn.kernels.cuda.optim``), with their state on the GPU too.

May import: numpy, dslearn.tensor, dslearn.optim.optimizer, dslearn.kernels, dslearn.backends.

>>> import dslearn as ds
>>> from dslearn.optim import Adam
>>> w = ds.tensor([1.0, -1.0], requires_grad=True)
>>> opt = Adam([w], lr=0.1)
>>> (w * w).sum().backward(); opt.step()
>>> [round(v, 6) for v in w.tolist()]   # the first step moves each weight by lr, against the gradient
[0.9, -0.9]
"""

from __future__ import annotations

import math

import numpy as np

from dslearn.backends import full, kernels_for
from dslearn.kernels.cpu.optim import adam_update
from dslearn.optim.optimizer import Optimizer, _check_at_least, _check_fraction
from dslearn.tensor import Tensor

_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015); ``torch.optim.Adam``'s API. ``Adam(0.01)`` binds parameters later.

    ``fused``: None uses the Numba kernel where it applies (float32/float64 contiguous
    parameters), True insists on it, False always uses the NumPy implementation.

    >>> import dslearn as ds
    >>> from dslearn.optim import Adam
    >>> opt = Adam(0.01)
    >>> opt.bind([ds.zeros(3, requires_grad=True)]).defaults["betas"]
    (0.9, 0.999)
    """

    supports_cuda = True  # the fused kernel has a CUDA twin

    def __init__(self, params=None, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 fused: bool | None = None, decoupled_weight_decay: bool = False) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                                  "amsgrad": amsgrad, "maximize": maximize, "fused": fused,
                                  "decoupled_weight_decay": decoupled_weight_decay})

    def _check_hyperparameters(self, group: dict) -> None:
        super()._check_hyperparameters(group)
        _check_at_least(self, group, "eps", 0.0, "epsilon value")
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            _check_fraction(self, beta, f"beta parameter at index {i}")

    def _update(self, param: Tensor, grad: np.ndarray, group: dict) -> None:
        state = self.state[param]
        if not state:
            state["step"] = self._step_state()
            state["exp_avg"] = self._zeros_state(param)
            state["exp_avg_sq"] = self._zeros_state(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = self._zeros_state(param)
        state["step"]._data += 1
        if type(param._data) is not np.ndarray:
            self._update_on_device(param, grad, state, group)
        elif self._use_kernel(param._data, grad, group):
            self._update_fused(param._data, grad, state, group)
        else:
            self._update_numpy(param._data, grad, state, group)

    @staticmethod
    def _zeros_state(param: Tensor) -> Tensor:
        """Zeros shaped like ``param``, on its device."""
        return Tensor._make(full(param.shape, 0, param._data.dtype, param.device))

    def _update_on_device(self, param: Tensor, grad, state: dict, group: dict) -> None:
        """The fused kernel's twin for the device that holds ``param`` (state loaded on the CPU moves there)."""
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if key in state and state[key].device != param.device:
                state[key] = state[key].to(param.device)
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        step_size, bias_correction2_sqrt = _bias_corrections(lr, beta1, beta2, state["step"].item())
        no_max = full((0,), 0, param._data.dtype, param.device)
        max_exp_avg_sq = state["max_exp_avg_sq"]._data if group["amsgrad"] else no_max
        kernels_for(param._data, "optim").adam_update(
            param._data.reshape(-1), grad.reshape(-1), state["exp_avg"]._data.reshape(-1),
            state["exp_avg_sq"]._data.reshape(-1), max_exp_avg_sq.reshape(-1),
            1.0 - lr * weight_decay if decoupled else 1.0, 0.0 if decoupled else float(weight_decay), float(beta1),
            float(beta2), step_size, bias_correction2_sqrt, float(group["eps"]), bool(group["amsgrad"]),
            bool(group["maximize"]))

    def _use_kernel(self, w: np.ndarray, grad: np.ndarray, group: dict) -> bool:
        fits = w.dtype in _KERNEL_DTYPES and grad.dtype == w.dtype and w.flags.c_contiguous and w.flags.writeable
        if group["fused"] and not fits:
            raise RuntimeError(f"{type(self).__name__}(fused=True): the fused kernel takes contiguous float32 or "
                               f"float64 parameters, got a {'' if w.flags.c_contiguous else 'non-contiguous '}"
                               f"{w.dtype} parameter of shape {w.shape}; use fused=None or False")
        return fits and group["fused"] is not False

    def _update_numpy(self, w: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        m, v = state["exp_avg"]._data, state["exp_avg_sq"]._data
        modified_grad, scratch = self._workspace(w, 0), self._workspace(w, 1)
        g = np.negative(grad, out=modified_grad) if group["maximize"] else grad  # p.grad is never written
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                w *= 1 - lr * weight_decay
            else:
                g = np.add(g, np.multiply(w, weight_decay, out=scratch), out=modified_grad)
        m += np.multiply(np.subtract(g, m, out=scratch), 1 - beta1, out=scratch)
        v *= beta2
        v += np.multiply(np.multiply(g, g, out=scratch), 1 - beta2, out=scratch)
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"]._data, v, out=state["max_exp_avg_sq"]._data)
        step_size, bias_correction2_sqrt = _bias_corrections(lr, beta1, beta2, state["step"].item())
        denom = np.sqrt(v, out=scratch)
        denom /= bias_correction2_sqrt
        denom += eps
        w -= np.multiply(np.divide(m, denom, out=scratch), step_size, out=scratch)

    def _update_fused(self, w: np.ndarray, grad: np.ndarray, state: dict, group: dict) -> None:
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        decoupled = group["decoupled_weight_decay"]
        step_size, bias_correction2_sqrt = _bias_corrections(lr, beta1, beta2, state["step"].item())
        max_exp_avg_sq = state["max_exp_avg_sq"]._data if group["amsgrad"] else np.empty(0, dtype=w.dtype)
        adam_update(w.reshape(-1), np.ascontiguousarray(grad).reshape(-1), state["exp_avg"]._data.reshape(-1),
                    state["exp_avg_sq"]._data.reshape(-1), max_exp_avg_sq.reshape(-1),
                    1.0 - lr * weight_decay if decoupled else 1.0, 0.0 if decoupled else float(weight_decay),
                    float(beta1), float(beta2), step_size, bias_correction2_sqrt, float(group["eps"]),
                    bool(group["amsgrad"]), bool(group["maximize"]))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``w <- w * (1 - lr * wd)`` each step.

    >>> import dslearn as ds
    >>> from dslearn.optim import AdamW
    >>> AdamW([ds.zeros(2, requires_grad=True)]).param_groups[0]["weight_decay"]
    0.01
    """

    def __init__(self, params=None, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 fused: bool | None = None) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, fused=fused,
                         decoupled_weight_decay=True)


def _bias_corrections(lr: float, beta1: float, beta2: float, step: float) -> tuple[float, float]:
    """``lr / (1 - beta1^t)`` and ``sqrt(1 - beta2^t)``: undo the zero start of m and v."""
    return lr / (1 - beta1 ** step), math.sqrt(1 - beta2 ** step)
