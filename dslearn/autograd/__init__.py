"""Automatic differentiation: ``Function`` (the op contract), the backward engine, grad mode.

May import: dslearn.tensor.

>>> import dslearn as ds
>>> x = ds.tensor(3.0, requires_grad=True)
>>> ds.autograd.grad(x ** 3, x)
(tensor(27.),)
"""

from dslearn.autograd.engine import backward, grad
from dslearn.autograd.function import Context, Function, OpObserver, observe
from dslearn.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["Function", "Context", "OpObserver", "observe", "backward", "grad", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled"]
