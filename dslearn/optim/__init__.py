"""Optimizers and learning-rate schedules, with PyTorch's names, arguments and numbers.

``SGD``, ``Adam``, ``AdamW`` and ``RMSprop`` update parameters in place from their
gradients; ``lr_scheduler`` changes their learning rates over training. An optimizer may
be created before its parameters exist (``Adam(0.01)``) and bound later with ``bind``.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.kernels.

>>> import dslearn as ds
>>> from dslearn import optim
>>> w = ds.tensor([3.0], requires_grad=True)
>>> opt = optim.SGD([w], lr=0.1)
>>> for _ in range(20):
...     opt.zero_grad(); ((w - 1) ** 2).sum().backward(); opt.step()
>>> round(w.item(), 3)
1.023
"""

from dslearn.optim import lr_scheduler
from dslearn.optim.adam import Adam, AdamW
from dslearn.optim.optimizer import Optimizer
from dslearn.optim.rmsprop import RMSprop
from dslearn.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
