"""Common-subexpression elimination: compute each distinct expression once.

Two nodes are the same expression when they apply the same op, with the same attributes, to
the same input values; the second is dropped and its readers read the first one's result.
Equal constants are merged first, so that ``x * 2`` written twice is recognised. Nodes with
a side effect (the optimizer) or with a context for an opaque backward are never merged.

May import: numpy, dslearn.jit.ir.

>>> import numpy as np
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> x = g.add_input((3,), np.float32)
>>> a = g.add_node("exp", [x], [((3,), np.float32)]).output
>>> b = g.add_node("exp", [x], [((3,), np.float32)]).output
>>> g.outputs = [g.add_node("add", [a, b], [((3,), np.float32)]).output]
>>> eliminate_common_subexpressions(g), [n.op for n in g.nodes]
(1, ['exp', 'add'])
"""

from __future__ import annotations

from dslearn.jit.ir import Graph, format_attr


def _attrs_key(attrs: dict) -> str:
    return repr(sorted((key, format_attr(value)) for key, value in attrs.items()))


def merge_equal_constants(graph: Graph) -> int:
    """Readers of a constant equal (dtype, shape and bytes) to an earlier one read that one."""
    first: dict[tuple, object] = {}
    merged = 0
    for value in list(graph.constants):
        data = value.data
        if value.device != "cpu":
            continue
        key = (data.dtype.str, data.shape, data.tobytes())
        if key in first:
            graph.replace_uses(value, first[key])
            graph.constants.remove(value)
            merged += 1
        else:
            first[key] = value
    return merged


def eliminate_common_subexpressions(graph: Graph) -> int:
    """Merge repeated expressions; returns how many nodes were removed."""
    merge_equal_constants(graph)
    seen: dict[tuple, object] = {}
    kept, removed = [], 0
    for node in graph.nodes:
        mergeable = node.kind == "op" and len(node.outputs) == 1
        key = (node.op, node.fn, tuple(id(v) for v in node.inputs), _attrs_key(node.attrs)) if mergeable else None
        if key is not None and key in seen:
            graph.replace_uses(node.output, seen[key].output)
            removed += 1
            continue
        if key is not None:
            seen[key] = node
        kept.append(node)
    graph.nodes = kept
    return removed
