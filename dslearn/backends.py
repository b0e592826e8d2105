"""Array back ends: which array type holds a device's data, moving data between them, and which kernels run it.

The CPU back end is NumPy itself. The CUDA back end is ``dslearn.kernels.cuda.array.CudaArray``,
an array in GPU memory that answers NumPy's calls (``np.exp``, ``+``, ``.sum(axis=...)``,
``np.matmul``) with CUDA kernels, so an op's forward written with NumPy runs on either. The ops
that call fused Numba kernels directly (activations, softmax, norms, convolution, pooling, the
optimizers) ask ``kernels_for(array, area)`` for the module of their area on the array's device:
``dslearn.kernels.cpu.<area>`` or its twin with the same signatures, ``dslearn.kernels.cuda.<area>``.

Numba chooses its CUDA target (a GPU, or the simulator with ``NUMBA_ENABLE_CUDASIM=1``) when
``numba.cuda`` is first imported, so the CUDA back end is imported only when it is asked for.

May import: numpy, dslearn.device, dslearn.kernels.

>>> import numpy as np
>>> kernels_for(np.zeros(3), "softmax").__name__
'dslearn.kernels.cpu.softmax'
>>> backend_of(np.zeros(3))
'cpu'
"""

from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

from dslearn.device import Device

NO_GPU = ("no CUDA GPU is available (numba.cuda.is_available() is False); set NUMBA_ENABLE_CUDASIM=1 before "
          "importing dslearn to use the simulator")


def backend_of(array) -> str:
    """``'cpu'`` for a NumPy array, ``'cuda'`` for a CudaArray."""
    return "cpu" if type(array) is np.ndarray else "cuda"


_modules: dict[tuple[str, str], ModuleType] = {}


def kernels_for(array, area: str) -> ModuleType:
    """The kernel module of ``area`` (``'activations'``, ``'softmax'``, ``'norm'``, ``'optim'``, ``'conv'``,
    ``'pool'``) for the device that holds ``array``."""
    key = (backend_of(array), area)
    module = _modules.get(key)
    if module is None:
        module = _modules[key] = importlib.import_module(f"dslearn.kernels.{key[0]}.{area}")
    return module


def cuda_available() -> bool:
    """True when tensors can move to ``'cuda'``: a GPU, or Numba's CUDA simulator."""
    from dslearn.kernels.cuda import runtime

    return runtime.is_available()


def full(shape: tuple[int, ...], fill_value, dtype: np.dtype, device: Device):
    """A new array of ``shape`` and ``dtype`` holding ``fill_value``, made directly on ``device``.

    >>> full((2,), 7, np.dtype(np.int64), Device("cpu"))
    array([7, 7])
    """
    if device.type == "cpu":
        return np.full(shape, fill_value, dtype)
    from dslearn.kernels.cuda.array import CudaArray
    from dslearn.kernels.cuda.numpy_api import copy_into

    _check_cuda(device)
    return copy_into(CudaArray.empty(shape, dtype), fill_value)


def _check_cuda(device: Device) -> None:
    if not cuda_available():
        raise RuntimeError(f"to({device}): {NO_GPU}")
    if device.index not in (None, 0):
        raise RuntimeError(f"to({device}): dslearn uses one GPU, 'cuda:0'")


def move(array, device: Device):
    """``array`` copied to ``device`` (itself when it is already there)."""
    if device.type == "cpu":
        return array if type(array) is np.ndarray else array.to_numpy()
    _check_cuda(device)
    from dslearn.kernels.cuda.array import CudaArray, check_dtype

    if type(array) is CudaArray:
        return array
    try:
        check_dtype(array.dtype)
    except TypeError as error:
        raise TypeError(f"to({device}): {error}") from None
    return CudaArray.from_numpy(array)
