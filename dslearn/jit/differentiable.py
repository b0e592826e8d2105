"""Compiled functions inside autograd: a joint forward+backward graph, split into two plans.

When gradients are wanted (grad mode on and some input or parameter requires grad), jit traces
the forward *and* the backward pass (``ds.autograd.grad`` from the output, with a placeholder
for the incoming gradient) into one *joint* graph, cleans it up, and partitions it:

* the *forward* graph computes the output and every forward value the backward reads (the
  *saved* values: inputs, parameters, intermediates, masks such as ``x > 0``, op contexts);
* the *backward* graph takes the saved values and the output's gradient and computes the
  gradient of every input and parameter that requires grad.

Each part is optimised and compiled on its own. ``CompiledGraph`` is the ``Function`` that
links them into eager autograd: its forward runs the forward plan and keeps the saved
values; its backward runs the backward plan. To the rest of dslearn, a jitted model is one op.

Saved parameters are checked at backward time: if one was modified in place between forward
and backward, backward raises, as eager autograd does. Double backward (``create_graph=True``)
through a compiled function is refused with an error (call the function un-jitted for that).

May import: numpy, dslearn.tensor, dslearn.autograd, dslearn.jit.ir.
"""

from __future__ import annotations

from dslearn.autograd.function import Function
from dslearn.autograd.grad_mode import is_grad_enabled
from dslearn.jit.ir import Graph, Value
from dslearn.tensor import Tensor


def partition(joint: Graph, forward_outputs: int, grad_inputs: list[Value]) -> tuple[Graph, Graph, list[Value]]:
    """Split a joint graph into (forward, backward, saved values); the joint graph is consumed."""
    tainted = set(grad_inputs)
    forward_nodes, backward_nodes = [], []
    for node in joint.nodes:
        if any(v in tainted for v in node.inputs):
            tainted.update(node.outputs)
            backward_nodes.append(node)
        else:
            forward_nodes.append(node)
    grads = joint.outputs[forward_outputs:]
    saved: list[Value] = []
    for value in [v for n in backward_nodes for v in n.inputs] + grads:
        if value not in tainted and value.kind != "constant" and value not in saved:
            saved.append(value)

    forward = Graph(joint.name)
    forward._ids = joint._ids
    forward.inputs = [v for v in joint.inputs if v not in grad_inputs]
    forward.captured = list(joint.captured)
    forward.constants = list(joint.constants)
    forward.nodes = forward_nodes
    forward.outputs = joint.outputs[:forward_outputs] + saved

    backward = Graph(joint.name + "_backward")
    backward._ids = joint._ids
    mapping = {}
    for value in saved:
        mapping[value] = backward.add_input(value.shape, value.dtype, value.label or value.name, kind=(
            "context" if value.kind == "context" else "input"))
    backward.inputs += list(grad_inputs)
    for node in backward_nodes:
        node.inputs = [mapping.get(v, v) for v in node.inputs]
    backward.nodes = backward_nodes
    backward.constants = [v for v in joint.constants if any(v in n.inputs for n in backward_nodes) or v in grads]
    backward.outputs = [mapping.get(v, v) for v in grads]
    return forward, backward, saved


class CompiledGraph(Function):
    """One op wrapping a compiled forward plan and its compiled backward plan."""

    name = "compiled_graph"

    @staticmethod
    def forward(ctx, *arrays, entry):
        results = entry.forward_plan(*arrays)
        ctx.saved = results[1:]
        ctx.versions = [(t, t._version) for t in entry.saved_tensors]
        return results[0]

    @staticmethod
    def backward(ctx, grad):
        entry = ctx.attrs["entry"]
        if is_grad_enabled():
            raise RuntimeError("jit: double backward (create_graph=True) through a compiled function is not "
                               "supported; call the function without jit (fn.eager) for higher-order gradients")
        for tensor, version in ctx.versions:
            if tensor._version != version:
                raise RuntimeError(f"jit backward: a parameter of shape {tensor.shape} needed for the gradient was "
                                   "modified by an in-place operation after the forward pass")
        grads = entry.backward_plan(*ctx.saved, grad._data)
        out = [None] * len(ctx.parents)
        for position, g in zip(entry.grad_positions, grads):
            out[position] = Tensor._make(g)
        return tuple(out)
