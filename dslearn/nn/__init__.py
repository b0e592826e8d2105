"""``dslearn.nn``: layers, losses, containers and initialisers with PyTorch's names and semantics.

``Module`` is the base class; ``Parameter`` marks learnable tensors; ``functional`` (``F``)
holds the stateless ops; ``init`` the initialisers; ``utils`` gradient clipping.

May import: everything under dslearn.nn, and the layers below it (dslearn.tensor, .ops, .autograd).

>>> import dslearn as ds
>>> import dslearn.nn as nn
>>> model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
>>> model(ds.randn(64, 784)).shape, model.num_parameters()
((64, 10), 203530)
"""

from dslearn.nn import functional, init, utils
from dslearn.nn.activation import ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Softplus, Tanh
from dslearn.nn.container import ModuleDict, ModuleList, Sequential
from dslearn.nn.conv import Conv2d
from dslearn.nn.dropout import Dropout
from dslearn.nn.flatten import Flatten, Unflatten
from dslearn.nn.linear import Identity, Linear
from dslearn.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from dslearn.nn.module import Module
from dslearn.nn.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from dslearn.nn.parameter import Parameter
from dslearn.nn.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from dslearn.nn.sparse import Embedding
from dslearn.tensor import RemovableHandle

__all__ = ["functional", "init", "utils", "Module", "Parameter", "RemovableHandle",
           "Identity", "Linear", "Flatten", "Unflatten", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Dropout", "Embedding",
           "ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Softplus", "SiLU", "ELU", "Softmax", "LogSoftmax",
           "Sequential", "ModuleList", "ModuleDict",
           "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCEWithLogitsLoss", "BCELoss",
           "KLDivLoss"]
