"""From a call to a runnable compiled version: trace, optimise, generate, and wrap the result.

Three kinds of compiled version (``Entry``), chosen per call:

* ``InferenceEntry``: no gradient is wanted (grad mode off, or nothing requires grad). One
  graph, one plan; the outputs are plain tensors.
* ``AutogradEntry``: gradients are wanted. The joint forward+backward graph is partitioned
  (``dslearn.jit.differentiable``) into two plans, linked to autograd by ``CompiledGraph``.
* ``TrainingEntry`` (``dslearn.jit.training``): a loss function with an optimizer; forward,
  backward and the parameter update in one plan.

Each entry records what its compilation cost: ``stats`` has the seconds spent tracing,
optimising and compiling kernels, and where each kernel came from (compiled now, loaded
from the disk cache, or already in memory).

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.jit.*.
"""

from __future__ import annotations

import time

from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.jit.capture import Capture, capture, grad_output_input, rebuild_result
from dslearn.jit.differentiable import CompiledGraph, partition
from dslearn.jit.guards import Guards, ModuleScope
from dslearn.jit.ir import Graph
from dslearn.jit.passes.manager import CLEANUP, PassManager
from dslearn.jit.plan import CompiledPlan
from dslearn.jit.tracer import JitTraceError, differentiate
from dslearn.tensor import Tensor


class Entry:
    """A compiled version of a function for one call signature, valid while its guards hold."""

    def __init__(self, traced: Graph, guards: Guards, structure: str, trace_seconds: float) -> None:
        self.traced_graph_text = str(traced)
        self.guards, self.structure = guards, structure
        self.stats = {"trace_seconds": trace_seconds, "pass_seconds": 0.0, "compile_seconds": 0.0, "kernels": [],
                      "calls": 0}
        self.pass_logs: list = []
        self.plans: list[CompiledPlan] = []

    def optimise(self, graph: Graph, passes) -> Graph:
        manager = PassManager(passes, print_after=self.print_passes)
        started = time.perf_counter()
        manager.run(graph)
        self.stats["pass_seconds"] += time.perf_counter() - started
        self.pass_logs.append(manager)
        return graph

    def build(self, graph: Graph, backend: str, name: str) -> CompiledPlan:
        plan = CompiledPlan(graph, backend, name)
        self.stats["compile_seconds"] += plan.compile_seconds
        self.stats["kernels"] += plan.kernel_origins
        self.plans.append(plan)
        return plan

    @property
    def graph(self) -> Graph:
        return self.plans[0].graph

    @property
    def code(self) -> str:
        return "\n\n".join(plan.code for plan in self.plans)

    print_passes = False


class InferenceEntry(Entry):
    """Outputs only: one plan from inputs and captured arrays to output arrays."""

    def __init__(self, traced: Capture, scope: ModuleScope, trace_seconds: float, backend: str, passes,
                 print_passes: bool) -> None:
        super().__init__(traced.graph, Guards(traced.captured, scope), traced.structure, trace_seconds)
        self.print_passes = print_passes
        self.captured = traced.captured
        self.plan = self.build(self.optimise(traced.graph, passes), backend, "forward")

    def run(self, tensors: list[Tensor]):
        arrays = [t._data for t in tensors] + [t._data for t in self.captured]
        return rebuild_result([Tensor._make(a) for a in self.plan(*arrays)], self.structure)


class AutogradEntry(Entry):
    """Differentiable: a forward plan and a backward plan joined by the ``CompiledGraph`` op."""

    def __init__(self, traced: Capture, scope: ModuleScope, trace_seconds: float, backend: str, passes,
                 print_passes: bool) -> None:
        super().__init__(traced.graph, Guards(traced.captured, scope), traced.structure, trace_seconds)
        self.print_passes = print_passes
        self.captured = traced.captured
        extra = traced.extra
        joint = traced.graph
        present = [(t, g) for t, g in zip(extra["sources"], extra["grads"]) if g is not None]
        joint.outputs = joint.outputs + [traced.tracer.value_of(g) for _, g in present]
        self.optimise(joint, CLEANUP)
        forward, backward, saved = partition(joint, 1, [extra["grad_input"]])
        parents = traced.inputs + self.captured
        self.grad_positions = [next(i for i, p in enumerate(parents) if p is t) for t, _ in present]
        captured_values = {id(v): v.data for v in joint.captured}
        self.saved_tensors = [captured_values[id(v)] for v in saved if v.kind == "captured"]
        self.forward_plan = self.build(self.optimise(forward, passes), backend, "forward")
        self.backward_plan = self.build(self.optimise(backward, passes), backend, "backward")

    def run(self, tensors: list[Tensor]):
        return rebuild_result([CompiledGraph.apply(*tensors, *self.captured, entry=self)], self.structure)


def _record_backward(tracer, outputs: list[Tensor], inputs: list[Tensor]) -> dict:
    """The ``extend`` step of a trace in grad mode: record d(output)/d(everything that requires grad)."""
    if not any(o.requires_grad for o in outputs):
        return {}
    if len(outputs) != 1:
        raise JitTraceError("jit: a function that returns several tensors can only be compiled without gradients; "
                            "call it under ds.no_grad(), or return one tensor")
    placeholder, value = grad_output_input(tracer, outputs[0])
    sources = [t for t in inputs if t.requires_grad] + [t for t in tracer.captured.values() if t.requires_grad]
    grads = differentiate(tracer, outputs, sources, [placeholder])
    return {"grad_input": value, "sources": sources, "grads": grads}


def compile_call(fn, args: tuple, kwargs: dict, scope: ModuleScope, name: str, backend: str, passes,
                 print_passes: bool) -> Entry:
    """Trace one call and compile it: with a backward plan when gradients are wanted."""
    started = time.perf_counter()
    inputs = [a for a in args if isinstance(a, Tensor)]
    extend = (lambda tracer, outputs: _record_backward(tracer, outputs, inputs)) if is_grad_enabled() else None
    traced = capture(fn, args, kwargs, scope, name, extend)
    seconds = time.perf_counter() - started
    kind = AutogradEntry if traced.extra else InferenceEntry
    return kind(traced, scope, seconds, backend, passes, print_passes)
