"""Elementwise fusion: group chains of broadcasting elementwise ops and reductions into one kernel.

Eager mode runs each op as its own pass over memory: ``(x - mean) * rstd * w + b`` reads and
writes a full array four times. A *fused group* computes the whole chain element by element
in one loop nest, keeping intermediates in registers.

The iteration space. Every group has a *full shape* S, seen as R rows of C elements (C the
last dim, R the product of the others). Each value in the group varies along rows, along
columns, both or neither; its *pattern* ``(rows, cols)`` says which. Broadcasting decides the
pattern of a value from its shape: with S = (64, 256), a (64, 256) array is ``(True, True)``,
a bias of shape (256,) is ``(False, True)``, a (64, 1) mean is ``(True, False)``, a 0-d scalar
``(False, False)``. That is what lets a group mix full arrays, per-row statistics and
per-column parameters, as layer norm does.

Members: elementwise ops, ``expand`` (broadcasting made explicit; free in a group), and
reductions (sum, mean, amax, amin) over the last dim (*row* reductions, whose results later
members may use: layer norm and softmax need them), over all dims but the last (*column*
reductions, such as a bias gradient) or over everything. Column and total reductions finish
only after the last row, so they are group outputs only.

The rule for joining: a node joins the group of one of its inputs' producers (vertical
fusion), or else a group that already reads one of its inputs (horizontal fusion: ``gelu(x)``
and ``gelu'(x)`` read ``x`` once), when every input broadcasts onto S as a pattern, the node's
output does too, and the node does not depend on the group through a node outside it (that
would make the group wait for itself: a cycle).
Each group then becomes one ``fused`` node, whose body is the sub-graph of its members.
Code generation turns the body into one kernel (``dslearn.jit.codegen``).

May import: numpy, dslearn.ops, dslearn.jit.ir, dslearn.jit.opset.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Exp, Mul
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> x = g.add_input((4, 8), np.float32)
>>> e = g.add_node("exp", [x], [((4, 8), np.float32)], fn=Exp).output
>>> g.outputs = [g.add_node("mul", [e, x], [((4, 8), np.float32)], fn=Mul).output]
>>> fuse_elementwise(g), [n.op for n in g.nodes], [n.op for n in g.nodes[0].body.nodes]
(1, ['fused'], ['exp', 'mul'])
"""

from __future__ import annotations

import math

import numpy as np

from dslearn.jit import opset
from dslearn.jit.ir import Graph, Node, Value
from dslearn.ops.shape import Expand

FUSIBLE_DTYPES = {np.dtype(t) for t in (np.float32, np.float64, np.bool_, np.int8, np.int16, np.int32, np.int64,
                                        np.uint8)}
Pattern = tuple  # (varies along rows, varies along columns)


def rows_and_columns(shape: tuple[int, ...]) -> tuple[int, int]:
    """A full shape as (R, C): C is the last dim, R the product of the others (0-d: 1 x 1)."""
    if not shape:
        return 1, 1
    return math.prod(shape[:-1]), shape[-1]


def broadcast_pattern(shape: tuple[int, ...], full: tuple[int, ...]) -> Pattern | None:
    """The pattern of a value of ``shape`` broadcast onto ``full``, or None if it is not one.

    >>> broadcast_pattern((256,), (64, 256)), broadcast_pattern((64, 1), (64, 256)), broadcast_pattern((8,), (64, 256))
    ((False, True), (True, False), None)
    """
    if len(shape) > len(full):
        return None
    if not full:
        return False, False
    padded = (1,) * (len(full) - len(shape)) + tuple(shape)
    rows, columns = rows_and_columns(full)
    if padded[:-1] == full[:-1]:
        varies_rows = rows > 1
    elif all(s == 1 for s in padded[:-1]):
        varies_rows = False
    else:
        return None
    if padded[-1] == full[-1]:
        varies_columns = columns > 1
    elif padded[-1] == 1:
        varies_columns = False
    else:
        return None
    return varies_rows, varies_columns


def reduction_role(node: Node) -> str | None:
    """``'row'`` (last dim), ``'column'`` (all but the last) or ``'all'``, or None for other dims."""
    ndim = len(node.inputs[0].shape)
    dims = node.attrs["dims"]
    if dims is None or tuple(dims) == tuple(range(ndim)):
        return "all"
    if tuple(dims) == (ndim - 1,):
        return "row"
    if ndim >= 2 and tuple(dims) == tuple(range(ndim - 1)):
        return "column"
    return None


def reduction_pattern(role: str, full: tuple[int, ...]) -> Pattern:
    rows, columns = rows_and_columns(full)
    return {"row": (rows > 1, False), "column": (False, columns > 1), "all": (False, False)}[role]


def _within(inner: Pattern, outer: Pattern) -> bool:
    return (outer[0] or not inner[0]) and (outer[1] or not inner[1])


def _union(patterns) -> Pattern:
    patterns = list(patterns)
    return any(p[0] for p in patterns), any(p[1] for p in patterns)


def member_kind(node: Node) -> str | None:
    """``'elementwise'``, ``'reduction'`` or ``'expand'`` for a node fusion may take, else None."""
    if node.kind != "op" or node.fn is None or len(node.outputs) != 1:
        return None
    if any(v.dtype not in FUSIBLE_DTYPES for v in (*node.inputs, node.output)):
        return None
    if node.fn is Expand:
        return "expand"
    if opset.is_category(node.fn, "elementwise"):
        return "elementwise"
    if node.fn in opset.reduction_ops() and reduction_role(node) is not None:
        return "reduction"
    return None


def value_patterns(body: Graph, full: tuple[int, ...]) -> dict[Value, Pattern]:
    """The pattern of every value in a fused body (inputs by broadcasting, members as produced)."""
    patterns = {v: broadcast_pattern(v.shape, full) for v in [*body.inputs, *body.constants]}
    for node in body.nodes:
        patterns[node.output] = _produced_pattern(node, patterns, full)
    return patterns


def _produced_pattern(node: Node, patterns: dict, full) -> Pattern:
    if node.fn in opset.reduction_ops():
        return reduction_pattern(reduction_role(node), full)
    return _union(patterns[v] for v in node.inputs)


class _Group:
    def __init__(self, full: tuple[int, ...]) -> None:
        self.full = full
        self.members: list[Node] = []
        self.patterns: dict[Value, Pattern] = {}
        self.terminal: set[Value] = set()

    def accepts(self, node: Node, kind: str) -> bool:
        """Whether ``node`` fits this group's iteration space (cycles are checked separately)."""
        patterns = {}
        for v in node.inputs:
            if v in self.terminal:
                return False
            seen = broadcast_pattern(v.shape, self.full)
            if seen is None or (v in self.patterns and not _within(self.patterns[v], seen)):
                return False
            patterns[v] = self.patterns.get(v, seen)
        if kind == "reduction":
            return node.inputs[0].shape == self.full and patterns[node.inputs[0]] is not None
        shown = broadcast_pattern(node.output.shape, self.full)
        return shown is not None and _within(_union(patterns.values()), shown)

    def add(self, node: Node, kind: str) -> None:
        self.members.append(node)
        for v in node.inputs:
            if v not in self.patterns:
                self.patterns[v] = broadcast_pattern(v.shape, self.full)
        if kind == "reduction":
            role = reduction_role(node)
            self.patterns[node.output] = reduction_pattern(role, self.full)
            if role != "row":
                self.terminal.add(node.output)
        else:
            self.patterns[node.output] = _union(self.patterns[v] for v in node.inputs)


def _depends_on(value: Value, target: _Group, group_of: dict[Node, _Group]) -> bool:
    """Whether ``value`` needs ``target``'s results through nodes outside it (groups contracted)."""
    stack, seen = [value.producer], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        group = group_of.get(node)
        if group is target:
            return True
        unit = group.members if group is not None else [node]
        for member in unit:
            seen.add(member)
            stack.extend(v.producer for v in member.inputs)
    return False


def fuse_elementwise(graph: Graph) -> int:
    """Replace every group of fusible nodes by one ``fused`` node; returns how many groups were made."""
    group_of: dict[Node, _Group] = {}
    groups: list[_Group] = []
    readers: dict[Value, list[_Group]] = {}  # groups that read a value from outside (for sibling fusion)
    for node in graph.nodes:
        kind = member_kind(node)
        if kind is None:
            continue
        joined = None
        producers = [group_of[v.producer] for v in node.inputs if v.producer in group_of]
        siblings = [g for v in node.inputs for g in readers.get(v, [])]
        for candidate in producers + siblings:
            if not candidate.accepts(node, kind):
                continue
            outside = [u for u in node.inputs if group_of.get(u.producer) is not candidate]
            if not any(_depends_on(u, candidate, group_of) for u in outside):
                joined = candidate
                break
        if joined is None:
            full = node.inputs[0].shape if kind == "reduction" else node.output.shape
            joined = _Group(full)
            if not joined.accepts(node, kind):
                continue
            groups.append(joined)
        joined.add(node, kind)
        group_of[node] = joined
        for v in node.inputs:
            if group_of.get(v.producer) is not joined and joined not in readers.setdefault(v, []):
                readers[v].append(joined)
    made = 0
    for group in groups:
        if any(member_kind(n) != "expand" for n in group.members) and _contract(graph, group, made):
            made += 1
    if made:
        graph.sort()
    return made


def fuse_nodes(graph: Graph, members: list[Node]) -> Node:
    """Replace ``members`` by one ``fused`` node: the building block for writing a fusion pass.

    The members must be fusible (elementwise ops, reductions, expands), fit one iteration space,
    and not depend on each other through a node outside them; otherwise ValueError says why.

    >>> import numpy as np
    >>> from dslearn.ops.elementwise import Exp, Neg
    >>> g = Graph()
    >>> x = g.add_input((3,), np.float32)
    >>> a = g.add_node("exp", [x], [((3,), np.float32)], fn=Exp)
    >>> b = g.add_node("neg", [a.output], [((3,), np.float32)], fn=Neg)
    >>> g.outputs = [b.output]
    >>> fuse_nodes(g, [a, b]).op, len(g.nodes)
    ('fused', 1)
    """
    order = {node: i for i, node in enumerate(graph.nodes)}
    members = sorted(dict.fromkeys(members), key=lambda n: order.get(n, -1))
    if not members or any(n not in order for n in members):
        raise ValueError("fuse_nodes: give a non-empty list of nodes of this graph")
    kinds = [member_kind(n) for n in members]
    for node, kind in zip(members, kinds):
        if kind is None:
            raise ValueError(f"fuse_nodes: {node.op} cannot be fused (only elementwise ops, reductions and expands)")
    first = members[0]
    group = _Group(first.inputs[0].shape if kinds[0] == "reduction" else
                   max((n.output.shape for n in members), key=lambda s: (math.prod(s), len(s))))
    group_of = {}
    for node, kind in zip(members, kinds):
        if not group.accepts(node, kind):
            raise ValueError(f"fuse_nodes: {node.op} with output shape {node.output.shape} does not fit the "
                             f"group's iteration space {group.full}")
        outside = [v for v in node.inputs if group_of.get(v.producer) is not group]
        if any(_depends_on(v, group, group_of) for v in outside):
            raise ValueError(f"fuse_nodes: {node.op} depends on the group through a node outside it (a cycle)")
        group.add(node, kind)
        group_of[node] = group
    number = sum(1 for n in graph.nodes if n.kind == "fused")
    if not _contract(graph, group, number):
        raise ValueError("fuse_nodes: nothing reads the members' results (remove dead code first)")
    graph.sort()
    return next(n for n in graph.nodes if n.kind == "fused" and n.body.nodes[0] is first)


def _contract(graph: Graph, group: _Group, number: int) -> bool:
    """Move the group's members into the body of one new ``fused`` node (False if nothing reads them)."""
    members = set(group.members)
    readers_outside = {v for n in graph.nodes if n not in members for v in n.inputs} | set(graph.outputs)
    if not any(n.output in readers_outside for n in group.members):
        return False  # dead code: left for dead-code elimination
    body = Graph(f"fused_{number}")
    outer_inputs, mapping = [], {}
    for node in group.members:
        for v in node.inputs:
            if v.kind == "constant" and v.size == 1:
                if v not in body.constants:
                    body.constants.append(v)  # scalars become literals in the kernel
            elif v.producer not in members and v not in mapping:
                mapping[v] = body.add_input(v.shape, v.dtype)
                outer_inputs.append(v)
        node.inputs = [mapping.get(v, v) for v in node.inputs]
    body.nodes = list(group.members)
    body.outputs = [n.output for n in group.members if n.output in readers_outside]
    position = max(graph.nodes.index(n) for n in group.members)
    fused = Node("fused", "fused", outer_inputs, {"shape": group.full}, body=body)
    for value in body.outputs:
        fused.outputs.append(graph.new_value(value.shape, value.dtype, "computed", producer=fused,
                                             device=value.device))
    graph.nodes.insert(position + 1, fused)
    graph.nodes = [n for n in graph.nodes if n not in members]
    for old, new in zip(body.outputs, fused.outputs):
        graph.replace_uses(old, new)
    return True
