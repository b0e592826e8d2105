"""Saving and loading a Module's state: ``state_dict()`` and ``load_state_dict()``, as in PyTorch.

A state dict maps dotted names (``'features.0.weight'``) to tensors: every parameter and every
persistent buffer, in registration order, children after their parent's own entries. Loading
copies values *into* the existing tensors (under ``no_grad``), so optimizers and views that
hold them keep working. Errors are collected for the whole model and reported together:

    Error(s) in loading state_dict for Net:
        Missing key(s) in state_dict: "fc.bias".
        size mismatch for fc.weight: copying a param with shape (10, 128) from checkpoint, the shape ...

May import: numpy, dslearn.tensor, dslearn.autograd.

>>> import dslearn as ds
>>> a, b = ds.nn.Linear(2, 2), ds.nn.Linear(2, 2)
>>> b.load_state_dict(a.state_dict())
IncompatibleKeys(missing_keys=[], unexpected_keys=[])
>>> bool((a.weight == b.weight).all())
True
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from dslearn.autograd.grad_mode import no_grad
from dslearn.tensor import Tensor


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` could not match: keys the model has but the dict lacks, and the reverse."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def collect(module, destination: OrderedDict, prefix: str, keep_vars: bool) -> OrderedDict:
    """Add ``module``'s parameters, persistent buffers and children's state to ``destination``."""
    for name, param in module._parameters.items():
        if param is not None:
            destination[prefix + name] = param if keep_vars else param.detach()
    for name, buffer in module._buffers.items():
        if buffer is not None and name not in module._non_persistent_buffers_set:
            destination[prefix + name] = buffer if keep_vars else buffer.detach()
    for name, child in module._modules.items():
        if child is not None:
            collect(child, destination, prefix + name + ".", keep_vars)
    return destination


def load(module, state_dict: dict, strict: bool) -> IncompatibleKeys:
    """Copy ``state_dict`` into ``module``; raise on shape mismatches, and on key mismatches if ``strict``."""
    if not isinstance(state_dict, dict):
        raise TypeError(f"load_state_dict: expected a dict of tensors, got {type(state_dict).__name__}")
    missing, errors = [], []
    expected = set()
    for prefix, owner in module.named_modules(remove_duplicate=False):
        prefix = prefix + "." if prefix else ""
        for name, target in _local_state(owner):
            key = prefix + name
            expected.add(key)
            if key not in state_dict:
                missing.append(key)
            else:
                _copy_into(target, key, state_dict[key], errors)
    unexpected = [key for key in state_dict if key not in expected]
    if strict:
        if unexpected:
            errors.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        if missing:
            errors.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
    if errors:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(module).__name__}:\n\t" + "\n\t".join(errors))
    return IncompatibleKeys(missing, unexpected)


def _local_state(module) -> list[tuple[str, Tensor]]:
    """The module's own parameters and persistent buffers (no children)."""
    state = [(name, p) for name, p in module._parameters.items() if p is not None]
    return state + [(name, b) for name, b in module._buffers.items()
                    if b is not None and name not in module._non_persistent_buffers_set]


def _copy_into(target: Tensor, key: str, value, errors: list[str]) -> None:
    if isinstance(value, np.ndarray):
        value = Tensor._make(value)
    if not isinstance(value, Tensor):
        errors.append(f'While copying the parameter named "{key}", expected a Tensor or NumPy array from the '
                      f"checkpoint but received {type(value).__name__}")
        return
    if value.shape != target.shape:
        errors.append(f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                      f"the shape in current model is {target.shape}.")
        return
    try:
        with no_grad():
            target.copy_(value)
    except (TypeError, ValueError, RuntimeError) as error:
        errors.append(f'While copying the parameter named "{key}" of shape {target.shape}, {target.dtype.name}, '
                      f"from a checkpoint value of {value.dtype.name}, an error occurred: {error}")
