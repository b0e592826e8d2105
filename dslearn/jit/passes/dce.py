"""Dead-code elimination: drop every node whose results nothing uses.

Walking the nodes backwards from the graph's outputs, a node is live when one of its outputs
is read by a live node or is a graph output; the optimizer's update is always live (it
changes parameters: its effect is the point). Captured tensors and constants that no live
node reads are dropped as well. Tracing records everything the function computed, including
values it threw away (a debugging print, a metric nobody returns): this pass removes them.

May import: dslearn.jit.ir.

>>> import numpy as np
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> x = g.add_input((3,), np.float32)
>>> unused = g.add_node("exp", [x], [((3,), np.float32)])
>>> used = g.add_node("neg", [x], [((3,), np.float32)])
>>> g.outputs = [used.output]
>>> eliminate_dead_code(g), [n.op for n in g.nodes]
(1, ['neg'])
"""

from __future__ import annotations

from dslearn.jit.ir import Graph


def eliminate_dead_code(graph: Graph) -> int:
    """Remove unused nodes, captured tensors and constants; returns how many nodes went."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if node.kind == "optimizer" or any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    removed = len(graph.nodes) - len(kept)
    graph.nodes = kept[::-1]
    graph.captured = [v for v in graph.captured if v in live]
    graph.constants = [v for v in graph.constants if v in live]
    return removed
