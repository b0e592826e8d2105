"""Buffer reuse: give every intermediate result a preallocated buffer, shared when lifetimes do not overlap.

Shapes are static, so memory can be planned once at compile time instead of allocated at every
call. Fused kernels and matrix products write into buffers (``out=``); everything else keeps
allocating its own result. The planner walks the nodes in order:

* a value is *live* from the node that makes it to its last reader. Views (reshape, permute,
  expand, basic indexing) and ops that may return views or keep references to their inputs
  (an opaque op's saved context) extend the life of the buffer they look into;
* a result that leaves the plan (a graph output, including values saved for a backward
  plan) gets a fresh array at every call: the caller keeps it, so it must not be reused;
* otherwise the node takes a free buffer of the same shape and dtype, or a new one. A kernel
  never writes into a buffer it reads, even one that dies there: the loops would still be
  correct, but LLVM vectorises a loop only after checking at run time that its input and
  output arrays do not overlap, and overlapping arrays run 4x slower.

The result is recorded on the graph: ``graph.buffers`` lists (shape, dtype) per buffer and
each writing node's ``attrs['_buffers']`` gives, per output, a buffer number or None (fresh).

May import: numpy, dslearn.ops, dslearn.jit.ir, dslearn.jit.opset.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Exp
>>> from dslearn.jit.ir import Graph
>>> from dslearn.jit.passes.fusion import fuse_elementwise
>>> g = Graph()
>>> x = g.add_input((4, 4), np.float32)
>>> a = g.add_node("exp", [x], [((4, 4), np.float32)], fn=Exp).output
>>> b = g.add_node("matmul", [a, a], [((4, 4), np.float32)], fn=Matmul).output
>>> g.outputs = [g.add_node("exp", [b], [((4, 4), np.float32)], fn=Exp).output]
>>> _ = fuse_elementwise(g); plan_buffers(g)
2
>>> [n.attrs["_buffers"] for n in g.nodes]
[[0], [1], [None]]
"""

from __future__ import annotations

import numpy as np

from dslearn.jit import opset
from dslearn.jit.ir import Graph, Node, Value
from dslearn.ops.linalg import Matmul
from dslearn.ops.shape import Contiguous

_BLAS_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def writes_into_buffer(node: Node) -> bool:
    """Whether the node's code writes its results into given arrays (fused kernels, 2-D products)."""
    if node.outputs and node.outputs[0].device != "cpu":
        return False  # arrays in GPU memory are allocated by their ops
    if node.kind == "fused":
        return True
    return (node.fn is Matmul and node.output.dtype in _BLAS_DTYPES and all(len(v.shape) == 2 for v in node.inputs)
            and all(v.dtype == node.output.dtype for v in node.inputs))


def _may_alias_inputs(node: Node) -> bool:
    """Whether the node's outputs may share memory with (or hold references to) its inputs.

    Views do; so may ``contiguous`` (it returns an already contiguous input itself), a forward
    whose context an opaque backward will read, and an opaque backward itself.
    """
    if writes_into_buffer(node) or node.kind in ("fused", "optimizer"):
        return False
    if node.kind == "backward" or len(node.outputs) > 1:
        return True
    return opset.info(node.fn).category == "view" or node.fn is Contiguous


def plan_buffers(graph: Graph) -> int:
    """Assign buffers to the results of buffer-writing nodes; returns how many buffers were made."""
    roots: dict[Value, set[Value]] = {}
    last_use: dict[Value, float] = {}
    for index, node in enumerate(graph.nodes):
        for value in node.inputs:
            for root in roots.get(value, ()):
                last_use[root] = index
        shared = set().union(*(roots.get(v, set()) for v in node.inputs)) if _may_alias_inputs(node) else set()
        for value in node.outputs:
            roots[value] = {value} | shared
            last_use.setdefault(value, index)
    for value in graph.outputs:
        for root in roots.get(value, ()):
            last_use[root] = float("inf")

    dies_at: dict[float, list[Value]] = {}
    for root, index in last_use.items():
        dies_at.setdefault(index, []).append(root)
    graph.buffers = []
    free: dict[tuple, list[int]] = {}
    owner: dict[Value, int] = {}
    for index, node in enumerate(graph.nodes):
        if writes_into_buffer(node):
            node.attrs["_buffers"] = [_take(graph, value, owner, last_use, free) for value in node.outputs]
        for root in dies_at.get(index, ()):
            if root in owner:
                free.setdefault(graph.buffers[owner[root]], []).append(owner.pop(root))
    return len(graph.buffers)


def _take(graph: Graph, value: Value, owner: dict, last_use: dict, free: dict) -> int | None:
    if last_use[value] == float("inf"):
        return None
    kind = (value.shape, value.dtype)
    slots = free.get(kind)
    slot = slots.pop() if slots else len(graph.buffers)
    if slot == len(graph.buffers):
        graph.buffers.append(kind)
    owner[value] = slot
    return slot
