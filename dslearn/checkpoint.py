"""Activation checkpointing: keep a block's inputs instead of its activations, recompute in backward.

Backward needs the values a forward pass computed: every op keeps its inputs in the graph, and
for a deep network these activations, not the parameters, fill the memory. ``checkpoint(fn, x)``
runs ``fn`` without recording a graph and keeps only ``x`` (and ``fn``'s parameters); when the
gradient arrives, it runs ``fn`` again, this time recording, and backpropagates through that
fresh graph. Memory for one block's activations at a time, for the price of a second forward.

The recomputation sees the same random numbers (the generator's state is saved and restored, so
dropout masks repeat) and the same ``autocast`` setting as the first run.
``set_grad_checkpoint(True)`` makes every ``nn.Sequential`` in training mode run each of its
children this way: with a model built as a Sequential of blocks, that is the classic sqrt-memory
recipe.

Limits: ``fn`` returns one Tensor; tensors it uses that require grad must be its arguments or the
parameters of ``fn`` when it is a Module (or a Module's method); double backward
(``create_graph=True``) through a checkpointed block is not supported; forward hooks and
batch-norm running statistics see the block twice.

May import: dslearn.tensor, dslearn.autograd, dslearn.random, dslearn.amp, dslearn.nn.

>>> import dslearn as ds
>>> block = ds.nn.Sequential(ds.nn.Linear(3, 3), ds.nn.Tanh())
>>> x = ds.ones(2, 3, requires_grad=True)
>>> checkpoint(block, x).sum().backward()
>>> x.grad.shape, block[0].weight.grad.shape
((2, 3), (3, 3))
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from dslearn import random as ds_random
from dslearn.amp.autocast import autocast, current_autocast
from dslearn.autograd.engine import grad as autograd_grad
from dslearn.autograd.function import Function, OpObserver, observe
from dslearn.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from dslearn.nn import container
from dslearn.nn.module import Module
from dslearn.tensor import Tensor


class _ThreadState(threading.local):
    depth = 0  # > 0 while a checkpointed block runs (first time or again): blocks inside run plainly


_state = _ThreadState()


class Checkpoint(Function):
    """The graph node of a checkpointed block: its inputs are the block's tensor arguments, then its parameters."""

    @staticmethod
    def forward(ctx, *arrays, function, positions, constants, preserve_rng_state):
        ctx.rng_state = ds_random.get_rng_state() if preserve_rng_state else None
        block = current_autocast()
        ctx.autocast = None if block is None else (block.device_type, block.dtype, block.enabled)
        arguments = [Tensor._make(a) for a in arrays[:len(positions)]]
        with no_grad(), _inside_block(), observe(_UndeclaredLeaves(arrays)):
            out = _call(function, positions, constants, arguments)
        return out._data

    @staticmethod
    def backward(ctx, grad):
        if is_grad_enabled():
            raise RuntimeError("checkpoint: double backward (create_graph=True) through a checkpointed block is "
                               "not supported; run the block without checkpointing")
        attrs = ctx.attrs
        inputs = ctx.inputs
        count = len(attrs["positions"])
        arguments = [t.detach().requires_grad_(t.requires_grad) for t in inputs[:count]]
        with _recomputation(ctx), enable_grad():
            out = _call(attrs["function"], attrs["positions"], attrs["constants"], arguments)
        leaves = [*arguments, *inputs[count:]]
        wanted = [t for t in leaves if t.requires_grad]
        if not out.requires_grad or not wanted:
            return (None,) * len(leaves)
        grads = iter(autograd_grad(out, wanted, grad, allow_unused=True))
        return tuple(next(grads) if t.requires_grad else None for t in leaves)


def _call(function, positions: tuple[int, ...], constants: dict, tensors: list[Tensor]) -> Tensor:
    args = dict(constants) | dict(zip(positions, tensors))
    out = function(*[args[i] for i in range(len(args))])
    if not isinstance(out, Tensor):
        raise TypeError(f"checkpoint: the function must return one Tensor, got {type(out).__name__}")
    return out


class _UndeclaredLeaves(OpObserver):
    """Refuse a tensor that requires grad but reaches the block from outside its inputs: it would get no gradient."""

    def __init__(self, arrays: tuple) -> None:
        self.known = {id(a) for a in arrays}
        self.thread = threading.get_ident()  # observers see every thread's ops; check only the block's

    def forward(self, fn, inputs, attrs, run):
        if threading.get_ident() != self.thread:
            return run()
        for t in inputs:
            if t.requires_grad and t._ctx is None and id(t._data) not in self.known:
                raise RuntimeError(f"checkpoint: the function uses a tensor that requires grad (shape {t.shape}) "
                                   "but is neither an argument nor a parameter of a Module; pass it as an argument, or "
                                   "checkpoint the Module (or its method) itself")
        return run()


@contextlib.contextmanager
def _inside_block():
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1


@contextlib.contextmanager
def _recomputation(ctx):
    """The same random numbers and the same autocast setting as the first run, then back to the present."""
    present = ds_random.get_rng_state()
    if ctx.rng_state is not None:
        ds_random.set_rng_state(ctx.rng_state)
    settings = ctx.autocast or ("cpu", None, False)
    try:
        with autocast(*settings), _inside_block():
            yield
    finally:
        ds_random.set_rng_state(present)


def _parameters(function) -> list[Tensor]:
    owner = function if isinstance(function, Module) else getattr(function, "__self__", None)
    if not isinstance(owner, Module):
        return []
    return [p for p in owner.parameters() if p.requires_grad]


def checkpoint(function: Callable[..., Tensor], *args, preserve_rng_state: bool = True) -> Tensor:
    """``function(*args)``, keeping only the arguments for backward and recomputing the rest there.

    ``function`` returns one Tensor. Its parameters are found when it is a Module or a Module's
    method; other tensors that require grad must come in through ``args``.

    >>> import dslearn as ds
    >>> w = ds.tensor([2.0], requires_grad=True)
    >>> y = checkpoint(lambda x, w: (x * w).exp(), ds.tensor([1.0]), w)
    >>> y.backward(); w.grad          # d exp(x w) / dw = x exp(x w)
    tensor([7.3891])
    """
    if not callable(function):
        raise TypeError(f"checkpoint: expected a callable, got {type(function).__name__}")
    positions = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor))
    constants = {i: a for i, a in enumerate(args) if not isinstance(a, Tensor)}
    tensors = [args[i] for i in positions]
    parameters = [p for p in _parameters(function) if not any(p is t for t in tensors)]
    if not is_grad_enabled() or not any(t.requires_grad for t in (*tensors, *parameters)):
        return _call(function, positions, constants, tensors)
    return Checkpoint.apply(*tensors, *parameters, function=function, positions=positions, constants=constants,
                            preserve_rng_state=preserve_rng_state)


def _checkpointed_child(module: Module, input):
    """What ``Sequential`` runs for each child while checkpointing is on."""
    if _state.depth or not isinstance(input, Tensor):
        return module(input)
    return checkpoint(module, input)


def set_grad_checkpoint(enabled: bool) -> None:
    """Turn activation checkpointing of ``nn.Sequential`` children on or off (training mode only).

    >>> import dslearn as ds
    >>> set_grad_checkpoint(True); is_grad_checkpoint_enabled()
    True
    >>> set_grad_checkpoint(False)
    """
    container.checkpoint_hook = _checkpointed_child if enabled else None


def is_grad_checkpoint_enabled() -> bool:
    """Whether ``set_grad_checkpoint(True)`` is in effect."""
    return container.checkpoint_hook is not None
