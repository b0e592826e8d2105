"""Constant folding: evaluate at compile time every op whose inputs are all constants.

Scalars that ``2 * math.pi`` or a Python number produce, masks built with ``ds.ones(...)``
inside the function, the all-ones gradient that starts a backward pass: whatever depends on
constants only is computed once, here, with the op's own forward, and becomes a constant.
Results larger than ``MAX_FOLDED_SIZE`` elements stay as nodes (baking them would trade
memory for little time). Captured tensors are not constants: they are read at every call. On
the GPU, the one op folded is the copy of a constant to the device (a Python number used with
a CUDA tensor): the copy is made once, here, instead of at every call.

May import: numpy, dslearn.autograd, dslearn.ops, dslearn.jit.ir.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Mul
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> two = g.add_constant(np.asarray(2.0, dtype=np.float32))
>>> g.outputs = [g.add_node("mul", [two, two], [((), np.float32)], fn=Mul).output]
>>> fold_constants(g), g.nodes, float(g.outputs[0].data)
(1, [], 4.0)
"""

from __future__ import annotations

import numpy as np

from dslearn.autograd.function import Context
from dslearn.jit.ir import Graph
from dslearn.ops.transfer import ToDevice

MAX_FOLDED_SIZE = 4096


def fold_constants(graph: Graph) -> int:
    """Replace all-constant op nodes by their values; returns how many were folded."""
    kept, folded = [], 0
    for node in graph.nodes:
        foldable = (node.kind == "op" and node.fn is not None and len(node.outputs) == 1
                    and (node.output.device == "cpu" or node.fn is ToDevice)
                    and all(v.kind == "constant" for v in node.inputs) and node.output.size <= MAX_FOLDED_SIZE)
        if not foldable:
            kept.append(node)
            continue
        with np.errstate(all="ignore"):
            result = node.fn.forward(Context(), *[v.data for v in node.inputs], **node.attrs)
        if node.output.device == "cpu":
            result = np.array(result, dtype=node.output.dtype, copy=True).reshape(node.output.shape)
        constant = graph.add_constant(result, device=node.output.device)
        graph.replace_uses(node.output, constant)
        folded += 1
    graph.nodes = kept
    return folded
