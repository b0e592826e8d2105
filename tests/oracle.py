"""Test helpers: check a dslearn op against torch (forward and backward) and finite differences.

Every op test in the suite goes through ``check_against_torch``: the same NumPy inputs go to
both frameworks, the outputs must agree, and so must the gradients for one random upstream
gradient. ``check_gradcheck`` adds the framework-free oracle, central differences in float64.
"""

from __future__ import annotations

import numpy as np
import torch

import dslearn as ds

TOLERANCES = {  # (rtol, atol) for forward comparisons, by dtype
    np.dtype(np.float64): (1e-7, 1e-9),
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float16): (1e-2, 1e-2),
}


def to_ds(array: np.ndarray, requires_grad: bool = False) -> ds.Tensor:
    t = ds.tensor(array)
    return t.requires_grad_() if requires_grad else t


def to_torch(array: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    t = torch.from_numpy(np.array(array))
    return t.requires_grad_() if requires_grad else t


def check_against_torch(ds_fn, torch_fn, *arrays, grad: bool = True, rtol: float | None = None,
                        atol: float | None = None, seed: int = 0, grad_inputs=None):
    """Run ``ds_fn`` and ``torch_fn`` on the same arrays and compare outputs and input gradients.

    ``arrays`` are NumPy arrays; float arrays become tensors that require grad (unless
    ``grad_inputs`` lists which positions should). Non-array arguments pass through as-is.
    Returns the dslearn output for further checks.
    """
    is_array = [isinstance(a, np.ndarray) for a in arrays]
    wants_grad = [grad and is_array[i] and arrays[i].dtype.kind == "f" and (grad_inputs is None or i in grad_inputs)
                  for i in range(len(arrays))]
    ds_args = [to_ds(a, g) if arr else a for a, arr, g in zip(arrays, is_array, wants_grad)]
    torch_args = [to_torch(a, g) if arr else a for a, arr, g in zip(arrays, is_array, wants_grad)]
    ours, theirs = ds_fn(*ds_args), torch_fn(*torch_args)
    out_dtype = np.asarray(theirs.detach().numpy()).dtype
    default_rtol, default_atol = TOLERANCES.get(out_dtype, (1e-6, 1e-6))
    rtol, atol = rtol or default_rtol, atol or default_atol
    assert ours.shape == tuple(theirs.shape), f"shape {ours.shape} != torch {tuple(theirs.shape)}"
    assert ours.dtype.name == str(theirs.dtype).removeprefix("torch."), f"dtype {ours.dtype} != torch {theirs.dtype}"
    np.testing.assert_allclose(ours.detach().numpy().astype(np.float64), theirs.detach().numpy().astype(np.float64),
                               rtol=rtol, atol=atol, err_msg="forward differs from torch")
    if any(wants_grad) and theirs.requires_grad:
        upstream = np.random.default_rng(seed).standard_normal(ours.shape).astype(out_dtype)
        ours.backward(ds.tensor(upstream))
        theirs.backward(torch.from_numpy(upstream))
        for i, (d, t) in enumerate(zip(ds_args, torch_args)):
            if wants_grad[i]:
                expected = t.grad.numpy() if t.grad is not None else np.zeros_like(arrays[i])
                got = d.grad.numpy() if d.grad is not None else np.zeros_like(arrays[i])
                np.testing.assert_allclose(got, expected, rtol=rtol * 10, atol=atol * 10,
                                           err_msg=f"gradient of input {i} differs from torch")
    return ours


def check_gradcheck(ds_fn, *arrays, atol: float = 1e-5, rtol: float = 1e-3, grad_inputs=None) -> None:
    """Central-difference check of ``ds_fn`` in float64 (float arrays become float64 inputs)."""
    inputs = []
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            inputs.append(ds.tensor(a.astype(np.float64), requires_grad=grad_inputs is None or i in grad_inputs))
        elif isinstance(a, np.ndarray):
            inputs.append(ds.tensor(a))
        else:
            inputs.append(a)
    assert ds.debug.gradcheck(ds_fn, inputs, atol=atol, rtol=rtol)
