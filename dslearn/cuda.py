"""``ds.cuda``: is there a GPU, how many, and waiting for it (PyTorch's ``torch.cuda`` names).

Kernel launches return before the GPU has finished; ``synchronize()`` waits, which is what a
timer around GPU work needs. Without a GPU, Numba's CUDA simulator stands in for one when
``NUMBA_ENABLE_CUDASIM=1`` was set before dslearn (and numba) were imported.

May import: dslearn.backends, dslearn.kernels.

>>> import dslearn as ds
>>> isinstance(ds.cuda.is_available(), bool), ds.cuda.device_count() >= 0
(True, True)
"""

from __future__ import annotations


def is_available() -> bool:
    """True when tensors can move to ``'cuda'``: a CUDA GPU, or the simulator.

    >>> import dslearn as ds
    >>> ds.cuda.is_available() in (True, False)
    True
    """
    from dslearn.backends import cuda_available

    return cuda_available()


def device_count() -> int:
    """How many CUDA devices there are (dslearn uses the first); the simulator counts as one.

    >>> import dslearn as ds
    >>> ds.cuda.device_count() == (1 if ds.cuda.is_available() else 0) or ds.cuda.device_count() > 1
    True
    """
    from dslearn.kernels.cuda import runtime

    return runtime.device_count()


def get_device_name(device: int = 0) -> str:
    """The GPU's name (``'CUDA simulator'`` in the simulator).

    >>> import dslearn as ds
    >>> isinstance(ds.cuda.get_device_name(), str)
    True
    """
    from dslearn.kernels.cuda import runtime

    return runtime.device_name()


def synchronize() -> None:
    """Wait for every kernel launched so far to finish (nothing to wait for without a GPU).

    >>> import dslearn as ds
    >>> ds.cuda.synchronize()
    """
    from dslearn.kernels.cuda import runtime

    runtime.synchronize()
