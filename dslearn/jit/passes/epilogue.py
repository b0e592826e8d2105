"""Matmul epilogue fusion: run a linear layer's bias add inside the kernel that follows it.

``linear(x, W, b)`` is a matrix product followed by a bias add, and in a model it is almost
always followed by more elementwise work (an activation, a layer norm). Eager mode writes the
product, reads it back to add the bias, writes it, reads it back for the activation... Here a
linear layer read only by fused kernels becomes a plain matrix product (BLAS, into a reused
buffer) and the bias add moves into the front of each of those kernels, their *epilogue*: the
product is read once, and bias, activation and normalisation happen in registers. (With two
readers, as when a training step reads the pre-activation again for the ReLU mask, each
kernel adds the bias itself: an add is cheaper than a pass over memory.)

Run it after ``fuse_elementwise``.

May import: numpy, dslearn.ops, dslearn.jit.ir.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Relu
>>> from dslearn.ops.linalg import Linear
>>> from dslearn.jit.ir import Graph
>>> from dslearn.jit.passes.fusion import fuse_elementwise
>>> g = Graph()
>>> x, w, b = g.add_input((4, 3), np.float32), g.add_input((5, 3), np.float32), g.add_input((5,), np.float32)
>>> h = g.add_node("linear", [x, w, b], [((4, 5), np.float32)], fn=Linear).output
>>> g.outputs = [g.add_node("relu", [h], [((4, 5), np.float32)], fn=Relu).output]
>>> fuse_elementwise(g), fuse_matmul_epilogues(g)
(1, 1)
>>> [n.op for n in g.nodes], [n.op for n in g.nodes[-1].body.nodes]
(['permute', 'matmul', 'fused'], ['add', 'relu'])
"""

from __future__ import annotations

import numpy as np

from dslearn.jit.ir import Graph, Node
from dslearn.ops import elementwise as E
from dslearn.ops.linalg import Linear, Matmul
from dslearn.ops.shape import Permute, Reshape


def _epilogue_targets(graph: Graph, node: Node, readers: dict) -> list[Node]:
    """The fused nodes that read this linear layer's output, when they are its only readers."""
    if node.fn is not Linear or len(node.inputs) != 3 or node.output.dtype not in (np.float32, np.float64):
        return []
    users = list(dict.fromkeys(readers.get(node.output, [])))
    if not users or any(u.kind != "fused" for u in users) or node.output in graph.outputs:
        return []
    return users


def fuse_matmul_epilogues(graph: Graph) -> int:
    """Split bias adds off linear layers into the fused kernels that read them; returns how many."""
    readers = graph.users()
    rewritten = 0
    for node in list(graph.nodes):
        targets = _epilogue_targets(graph, node, readers)
        if not targets:
            continue
        x, weight, bias = node.inputs
        out = node.output
        new_nodes: list[Node] = []
        rows = x.size // x.shape[-1]
        x2d = x
        if len(x.shape) != 2:
            x2d = _append(graph, new_nodes, Reshape, [x], (rows, x.shape[-1]), shape=(rows, x.shape[-1]))
        transposed = _append(graph, new_nodes, Permute, [weight], weight.shape[::-1], dims=(1, 0))
        product = _append(graph, new_nodes, Matmul, [x2d, transposed], (rows, weight.shape[0]))
        if len(out.shape) != 2:
            product = _append(graph, new_nodes, Reshape, [product], out.shape, shape=out.shape)
        position = graph.nodes.index(node)
        graph.nodes[position:position + 1] = new_nodes
        for fused in targets:
            _prepend_bias(graph, fused, out, product, bias)
        rewritten += 1
    if rewritten:
        graph.sort()
    return rewritten


def _append(graph: Graph, nodes: list[Node], fn, inputs, out_shape, **attrs):
    """A new node of op ``fn`` (output dtype: its first input's), appended to ``nodes``; returns its output."""
    made = Node(fn.name, "op", inputs, attrs, fn=fn)
    made.outputs.append(graph.new_value(out_shape, inputs[0].dtype, "computed", producer=made,
                                        device=inputs[0].device))
    nodes.append(made)
    return made.output


def _prepend_bias(graph: Graph, fused: Node, old, product, bias) -> None:
    """Make the fused node read ``product`` and ``bias`` and compute ``product + bias`` first."""
    body = fused.body
    k = fused.inputs.index(old)
    old_input = body.inputs[k]
    product_input = body.add_input(product.shape, product.dtype)
    bias_input = body.add_input(bias.shape, bias.dtype)
    body.inputs.remove(product_input)
    body.inputs.remove(bias_input)
    body.inputs[k:k + 1] = [product_input, bias_input]
    fused.inputs[k:k + 1] = [product, bias]
    add = Node("add", "op", [product_input, bias_input], {}, fn=E.Add)
    add.outputs.append(graph.new_value(old.shape, old.dtype, "computed", producer=add, device=old.device))
    for member in body.nodes:
        member.inputs = [add.output if v is old_input else v for v in member.inputs]
    body.outputs = [add.output if v is old_input else v for v in body.outputs]
    body.nodes.insert(0, add)
