"""Devices: where a tensor's data lives (``cpu`` or ``cuda[:index]``).

May import: nothing from dslearn.

>>> Device("cuda:1")
device(type='cuda', index=1)
>>> Device("cpu") == "cpu"
True
"""

from __future__ import annotations


class Device:
    """A place for tensor data: ``Device('cpu')``, ``Device('cuda')``, ``Device('cuda', 1)``."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | Device = "cpu", index: int | None = None) -> None:
        if isinstance(spec, Device):
            spec, index = spec.type, spec.index
        if not isinstance(spec, str):
            raise TypeError(f"device must be a string like 'cpu' or 'cuda:0', got {spec!r}")
        kind, _, number = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {spec!r}; dslearn knows 'cpu' and 'cuda[:N]'")
        if number:
            if not number.isdigit():
                raise ValueError(f"bad device index in {spec!r}")
            index = int(number)
        if kind == "cuda" and index is None:
            index = 0
        self.type, self.index = kind, index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = Device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = Device("cpu")


def as_device(spec) -> Device:
    """Coerce ``None`` (cpu), a string or a Device to a Device."""
    if spec is None:
        return CPU
    if isinstance(spec, Device):
        return spec
    if type(spec).__module__ == "torch":
        return Device(str(spec))
    return Device(spec)
