"""Interoperability with PyTorch: zero-copy conversion in both directions (CPU tensors).

torch is an optional peer, imported only when these functions are called. bfloat16 crosses
as its 16-bit pattern, since NumPy has no native bfloat16.

May import: numpy, torch (lazily), dslearn.tensor, dslearn.dtypes.

>>> import torch, dslearn as ds
>>> t = ds.tensor([1.0, 2.0]).to_torch(); t
tensor([1., 2.])
>>> ds.Tensor.from_torch(torch.arange(3))
tensor([0, 1, 2])
"""

from __future__ import annotations

import numpy as np

from dslearn import dtypes
from dslearn.tensor import Tensor


def torch_to_numpy(tensor) -> np.ndarray:
    """The NumPy view of a torch tensor's data (detached, on the CPU)."""
    import torch

    tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(dtypes.bfloat16.np)
    return tensor.numpy()


def from_torch(tensor) -> Tensor:
    """A dslearn tensor sharing memory with a torch tensor; ``requires_grad`` carries over."""
    out = Tensor._make(torch_to_numpy(tensor))
    if tensor.requires_grad:
        out.requires_grad_(True)
    return out


def to_torch(t: Tensor):
    """A torch tensor sharing memory with ``t`` (a copy for CUDA tensors, through the host)."""
    import torch

    array = t._host_array()
    if array.dtype == dtypes.bfloat16.np:
        out = torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    else:
        out = torch.from_numpy(array if array.flags.writeable else array.copy())
    return out.requires_grad_(t.requires_grad) if t.is_leaf else out
