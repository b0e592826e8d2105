"""dslearn: a small, readable deep-learning framework and the course that teaches it.

>>> import dslearn as ds
>>> x = ds.Tensor([1.0] * 784)
>>> x.shape, x.dtype
((784,), dslearn.float32)
"""

import os as _os

# Numba's OpenMP threads and OpenBLAS's threads both spin while idle; on a laptop-sized CPU they
# then fight for the same cores and a training step gets several times slower (docs/BENCHMARKS.md).
# Sleeping idle threads avoid that. Set before Numba starts its thread pool; an explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dslearn import amp, autograd, cuda, data, debug, memory, nn, optim, profiler, quantization, serialization
from dslearn.amp import autocast
from dslearn.autograd import Function, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from dslearn.checkpoint import checkpoint, set_grad_checkpoint
from dslearn.creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from dslearn.custom_op import custom_op
from dslearn.device import Device
from dslearn.device import Device as device
from dslearn.dtypes import (
    DType,
    bfloat16,
    bool_,
    double,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    promote_types,
    set_default_dtype,
    uint8,
)
from dslearn.jit import jit  # the decorator: @ds.jit (the package stays importable as dslearn.jit)
from dslearn.ops import *  # noqa: F403  (the functional API: ds.exp, ds.cat, ds.matmul, ...)
from dslearn.random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from dslearn.serialization import load, save
from dslearn.tensor import Tensor, is_tensor

bool = bool_  # noqa: A001  (ds.bool, as torch.bool)

__version__ = "0.1.0"


def __getattr__(name: str):
    """Import ``ds.viz`` on first use: it needs the course extra (plotly, ipywidgets)."""
    if name == "viz":
        import importlib

        return importlib.import_module("dslearn.viz")
    raise AttributeError(f"module 'dslearn' has no attribute {name!r}")
