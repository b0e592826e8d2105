"""Moving tensors between devices (``Tensor.to(device)``); differentiable.

May import: dslearn.tensor, dslearn.autograd.function, dslearn.device.

>>> import dslearn as ds
>>> ds.ones(2).to("cpu").device
device(type='cpu')
"""

from __future__ import annotations

from dslearn.autograd.function import Function
from dslearn.device import Device
from dslearn.tensor import Tensor


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        from dslearn.backends import move

        ctx.source = Device("cpu") if type(x).__module__ == "numpy" else x.device
        return move(x, device)

    @staticmethod
    def backward(ctx, grad):
        return to_device(grad, ctx.source)


def to_device(x: Tensor, device: Device) -> Tensor:
    """``x`` on ``device`` (itself if already there)."""
    return x if x.device == device else ToDevice.apply(x, device=device)
