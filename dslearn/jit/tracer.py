"""Tracing by execution: run the function once on example inputs and record every op into a Graph.

The tracer is an ``OpObserver`` (``dslearn.autograd.function``): while the function runs
eagerly, every ``Function.apply`` passes through ``Tracer.forward``, which records a node with
the op, its input values, its attributes and the output's shape and dtype. A tensor is
recognised by its array (``t._data``): ``detach()``, ``.data`` and in-place re-pointing keep
the array, so they keep the value.

A tensor the function reads that no recorded op produced is one of:

* an *input* (a tensor argument);
* *captured by reference*: a leaf that requires grad (a parameter) or a module buffer. The
  compiled plan reads ``tensor._data`` at every call, so optimizer updates are seen;
* a *constant*: anything else (Python scalars turned into tensors, ``ds.ones(...)`` made inside
  the function), copied into the graph. A layer created *inside* the jitted function is
  captured at trace time and is never re-created: its weights are frozen at their first values.

What tracing cannot see is refused with a ``JitTraceError`` that names the user's line:
Python control flow on tensor values (``bool()``, ``item()``, ``numpy()`` on a traced tensor,
caught through ``Tensor._value_access_hook``), ops outside ``dslearn.jit.opset``, in-place
writes to traced tensors, constants made from random numbers of the default generator (a
dropout mask, ``ds.randn`` inside the function: they would be frozen; random numbers that
only initialise a layer's parameters are fine, those are captured), and in-place updates of
captured tensors (``optimizer.step()`` inside the function; use ``ds.jit(fn, optimizer=...)``
for a compiled training step).

Backward: ``differentiate`` runs ``ds.autograd.grad`` under the same observer. Ops whose
backward rule is written in Tensor ops are recorded op by op; for the others (``opaque`` in
the op table) one ``backward`` node is recorded, and the forward node gains a ``context``
output that carries what its forward saved.

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.random, dslearn.jit.ir, dslearn.jit.opset.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys

import numpy as np

import dslearn
from dslearn import random as ds_random
from dslearn.autograd.engine import grad as autograd_grad
from dslearn.autograd.function import OpObserver, observe
from dslearn.jit import opset
from dslearn.jit.ir import Graph, Value
from dslearn.tensor import Tensor

_LIBRARY_DIRS = (os.path.dirname(dslearn.__file__), os.path.dirname(os.path.dirname(dslearn.kernels.__file__))
                 if hasattr(dslearn, "kernels") else os.path.dirname(dslearn.__file__))


class JitTraceError(RuntimeError):
    """The function cannot be compiled faithfully; the message says why and where."""


_active: list[Tracer] = []


def is_tracing() -> bool:
    """True while a function is being traced (a jitted function called inside runs eagerly)."""
    return bool(_active)


def user_line() -> str:
    """``file.py:12: if x.sum() > 0:``: the innermost frame outside dslearn, for error messages."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_LIBRARY_DIRS) or "/tests/" in filename:
            source = linecache.getline(filename, frame.f_lineno).strip()
            return f"{filename}:{frame.f_lineno}" + (f": {source}" if source else "")
        frame = frame.f_back
    return "<unknown line>"


class Tracer(OpObserver):
    """Records ops into ``graph`` while the traced function runs eagerly."""

    def __init__(self, graph: Graph, labels: dict[int, str], buffer_ids: set[int]) -> None:
        self.graph, self.labels, self.buffer_ids = graph, labels, buffer_ids
        self.values: dict[int, Value] = {}  # id(array) -> value
        self.versions: dict[int, tuple[Tensor, int]] = {}  # id(tensor) -> (tensor, version when seen)
        self.keep: list = []  # keeps traced arrays alive so that their ids stay unique
        self.captured: dict[int, Tensor] = {}
        self.contexts: dict[int, object] = {}  # id(ctx) -> node that produced it
        self.paused = 0
        self.differentiating = False  # set by differentiate(): backward passes the compiler asked for
        self.traced_backward: str | None = None
        self.generator = ds_random.default_generator.numpy.bit_generator
        self.random_state = self.generator.state  # to notice random numbers drawn between two ops

    # -- values ---------------------------------------------------------------------------------

    def register(self, tensor: Tensor, value: Value) -> None:
        value.device = "cpu" if type(tensor._data) is np.ndarray else str(tensor.device)
        self.values[id(tensor._data)] = value
        self.versions[id(tensor)] = (tensor, tensor._version)
        self.keep.append(tensor._data)

    def add_input(self, tensor: Tensor, label: str) -> Value:
        value = self.values.get(id(tensor._data))
        if value is None or value.kind != "input":
            value = self.graph.add_input(tensor.shape, tensor._data.dtype, label)
            self.register(tensor, value)
        return value

    def value_of(self, tensor: Tensor) -> Value:
        """The graph value a tensor holds; unknown tensors become captured tensors or constants."""
        value = self.values.get(id(tensor._data))
        if value is not None:
            seen = self.versions.get(id(tensor))
            if seen is not None and seen[1] != tensor._version and value.kind != "captured":
                raise JitTraceError("jit: a traced tensor was modified in place (an in-place op such as add_() or "
                                    f"x[i] = ... under no_grad) at {user_line()}; jit supports out-of-place ops only")
            return value
        if (tensor.requires_grad and tensor._ctx is None) or id(tensor) in self.buffer_ids \
                or id(tensor) in self.labels and tensor._ctx is None:
            value = self.graph.add_captured(tensor, self.labels.get(id(tensor), ""))
            self.captured[id(tensor)] = tensor
        elif tensor.requires_grad:
            raise JitTraceError("jit: the function uses a tensor that requires grad and was computed outside it "
                                f"(at {user_line()}); pass it as an argument or detach() it")
        else:
            if self.generator.state != self.random_state:
                raise JitTraceError(f"jit: random numbers drawn at {user_line()} (dropout in training mode, ds.randn"
                                    "...) would be frozen at their traced values. Call model.eval() for inference, "
                                    "or keep random ops out of the jitted function")
            if self.traced_backward and tensor._data.size > 1:
                raise JitTraceError(f"jit: the backward of {self.traced_backward} uses an array computed outside "
                                    "the traced ops; this op cannot be compiled")
            value = self.graph.add_constant(np.array(tensor._data, copy=True))
        self.register(tensor, value)
        return value

    # -- the observer --------------------------------------------------------------------------

    def forward(self, fn, inputs, attrs, run):
        if self.paused:
            return run()
        reason = opset.refusal(fn, attrs)
        if reason is not None:
            raise JitTraceError(f"jit: {reason} (at {user_line()}); run this function eagerly, or compile "
                                "the parts around it separately")
        in_values = [self.value_of(t) for t in inputs]
        self.random_state = self.generator.state
        out = run()
        node = self.graph.add_node(fn.name, in_values, [(out.shape, out._data.dtype)], attrs, fn=fn)
        self.register(out, node.output)
        if out._ctx is not None:
            self.contexts[id(out._ctx)] = node
            self.keep.append(out._ctx)
        return out

    def backward(self, ctx, grad, run):
        if self.paused:
            return run()
        if not self.differentiating:
            raise JitTraceError(f"jit: backward() called inside the traced function (at {user_line()}): the "
                                "gradients it stores in .grad would not be recomputed by the compiled version. "
                                "Return the loss and call backward() on it, or use ds.jit(fn, optimizer=...)")
        node = self.contexts.get(id(ctx))
        if node is None:
            raise JitTraceError(f"jit: backward reached an op ({ctx.fn.name}) that ran before tracing started")
        if opset.info(ctx.fn).backward == "traced":
            outer, self.traced_backward = self.traced_backward, ctx.fn.name
            try:
                return run()
            finally:
                self.traced_backward = outer
        grad_value = self.value_of(grad)
        needs = ctx.needs_input_grad
        self.paused += 1
        try:
            grads = run()
        finally:
            self.paused -= 1
        listed = grads if isinstance(grads, tuple) else (grads,)
        if len(node.outputs) == 1:
            node.outputs.append(self.graph.new_value(None, None, "context", producer=node))
        produced = [g for g in listed if g is not None]
        backward_node = self.graph.add_node(
            f"{ctx.fn.name}_backward", [node.outputs[1], *node.inputs, node.output, grad_value],
            [(g.shape, g._data.dtype) for g in produced],
            {"needs": tuple(needs), "returns": tuple(g is not None for g in listed),
             "_forward_attrs": dict(node.attrs)}, fn=ctx.fn, kind="backward")
        for g, value in zip(produced, backward_node.outputs):
            self.register(g, value)
        return grads

    def on_value_access(self, tensor: Tensor, what: str) -> None:
        value = self.values.get(id(tensor._data))
        if value is not None and value.kind != "constant" and not self.paused:
            raise JitTraceError(
                f"jit: {what} reads the value of a traced tensor at {user_line()}. A compiled function cannot "
                "branch on tensor values (the branch taken while tracing would be frozen); use ds.where() or "
                "compute the condition outside the jitted function")

    def check_untouched(self, tensors: list[Tensor], what: str) -> None:
        for t in tensors:
            seen = self.versions.get(id(t))
            if seen is not None and seen[1] != t._version:
                raise JitTraceError(f"jit: the function modified {what} in place while tracing (an optimizer.step() "
                                    "or an in-place op inside the function?); a compiled function must not update "
                                    "tensors in place: use ds.jit(fn, optimizer=...) for a training step")


@contextlib.contextmanager
def tracing(tracer: Tracer):
    """Install the tracer as op observer and value-access hook for the duration of a trace."""
    previous_hook = Tensor._value_access_hook
    Tensor._value_access_hook = tracer.on_value_access
    _active.append(tracer)
    try:
        with observe(tracer):
            yield tracer
    finally:
        _active.remove(tracer)
        Tensor._value_access_hook = previous_hook


def differentiate(tracer: Tracer, outputs: list[Tensor], wrt: list[Tensor],
                  grad_outputs: list[Tensor] | None) -> list[Tensor | None]:
    """Record the backward pass: d(outputs)/d(wrt), through the engine's own rules."""
    tracer.differentiating = True
    try:
        return list(autograd_grad(outputs, wrt, grad_outputs=grad_outputs, allow_unused=True))
    finally:
        tracer.differentiating = False
