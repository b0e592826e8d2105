"""Capture: trace a call into a Graph (forward only, or forward plus backward) and check it.

``capture(fn, args, kwargs, scope, extend)`` registers the tensor arguments as graph inputs,
runs ``fn`` under the tracer, turns the returned tensors into graph outputs, and lets
``extend`` record more while the tracer is still installed (the backward pass, an optimizer
step). Afterwards it checks that nothing the graph reads live was modified in place.

May import: dslearn.tensor, dslearn.backends, dslearn.jit.ir, dslearn.jit.tracer, dslearn.jit.guards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dslearn.backends import full
from dslearn.jit.guards import ModuleScope
from dslearn.jit.ir import Graph, Value
from dslearn.jit.tracer import JitTraceError, Tracer, tracing
from dslearn.tensor import Tensor


@dataclass
class Capture:
    """A traced call: the graph, the eager outputs, and what the graph reads from outside."""

    graph: Graph
    tracer: Tracer
    inputs: list[Tensor]
    outputs: list[Tensor]
    structure: str  # "tensor", "tuple" or "list": how to rebuild the function's result
    extra: dict = field(default_factory=dict)

    @property
    def captured(self) -> list[Tensor]:
        return [v.data for v in self.graph.captured]


def flatten_result(result) -> tuple[list[Tensor], str]:
    """The tensors a function returned, and the container they came in."""
    if isinstance(result, Tensor):
        return [result], "tensor"
    if isinstance(result, (tuple, list)) and result and all(isinstance(t, Tensor) for t in result):
        return list(result), type(result).__name__
    raise JitTraceError("jit: a compiled function must return a Tensor or a tuple/list of Tensors, got "
                        f"{type(result).__name__}")


def rebuild_result(tensors: list[Tensor], structure: str):
    if structure == "tensor":
        return tensors[0]
    return tuple(tensors) if structure == "tuple" else list(tensors)


def capture(fn, args: tuple, kwargs: dict, scope: ModuleScope, name: str, extend=None) -> Capture:
    """Trace one call of ``fn``; ``extend(tracer, outputs)`` may record more and return a dict."""
    if any(isinstance(v, Tensor) for v in kwargs.values()):
        raise TypeError("jit: pass tensors as positional arguments (keyword arguments are compiled in as constants)")
    graph = Graph(name)
    tracer = Tracer(graph, scope.labels, scope.buffer_ids)
    inputs = [a for a in args if isinstance(a, Tensor)]
    for i, tensor in enumerate(inputs):
        tracer.add_input(tensor, f"arg{i}")
    with tracing(tracer):
        outputs, structure = flatten_result(fn(*args, **kwargs))
        graph.outputs = [tracer.value_of(t) for t in outputs]
        tracer.check_untouched(inputs, "an input tensor")
        tracer.check_untouched(list(tracer.captured.values()), "a parameter or buffer it reads")
        extra = extend(tracer, outputs) if extend is not None else {}
    return Capture(graph, tracer, inputs, outputs, structure, extra)


def grad_output_input(tracer: Tracer, output: Tensor) -> tuple[Tensor, Value]:
    """A graph input standing for the gradient that will flow into ``output`` in backward."""
    placeholder = Tensor._make(full(output.shape, 1, output._data.dtype, output.device))
    value = tracer.graph.add_input(output.shape, output._data.dtype, "grad_output")
    tracer.register(placeholder, value)
    return placeholder, value
