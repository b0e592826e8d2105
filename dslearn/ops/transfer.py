"""Moving tensors between devices (``Tensor.to(device)``); differentiable: the gradient moves back.

The copy itself is the back end's (``dslearn.backends.move``): a NumPy array becomes a CudaArray
in GPU memory, and back.

May import: dslearn.tensor, dslearn.autograd.function, dslearn.device, dslearn.backends.

>>> import dslearn as ds
>>> ds.ones(2).to("cpu").device
device(type='cpu')
"""

from __future__ import annotations

from dslearn.autograd.function import Function
from dslearn.device import CPU, Device, as_device
from dslearn.tensor import Tensor


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        from dslearn.backends import move

        ctx.source = CPU if type(x).__module__ == "numpy" else as_device(x.device)
        return move(x, device)

    @staticmethod
    def backward(ctx, grad):
        return to_device(grad, ctx.source)


def to_device(x: Tensor, device: Device) -> Tensor:
    """``x`` on ``device`` (itself if already there)."""
    return x if x.device == device else ToDevice.apply(x, device=device)
