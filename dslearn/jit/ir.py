"""The JIT's intermediate representation: a graph of typed nodes in static single assignment.

A ``Graph`` is what ``ds.jit`` records when it traces a function, what every optimisation pass
rewrites and what code generation turns into a plan. It holds:

* ``Value``: one array (or one op context) with a static ``shape``, ``dtype`` and ``device``.
  Its ``kind`` says where it comes from: an ``input`` of the function, a ``captured`` tensor
  read live at every call (a parameter), a ``constant`` baked into the graph, a ``computed``
  result of a node, or the ``context`` an op's forward leaves for its backward.
* ``Node``: one operation, ``outputs = op(inputs, **attrs)``. ``kind`` is ``op`` (a
  ``Function`` of ``dslearn.ops``: ``fn`` names it), ``fused`` (a group of elementwise ops and
  reductions run as one kernel; ``body`` is its sub-graph), ``backward`` (an op's own backward
  rule, run as one step) or ``optimizer`` (a parameter update, the one node with side effects).

Nodes are kept in execution order: every value is defined before it is used. ``str(graph)``
prints one line per node, ``v3: f32[64, 256] = relu(v2)``, the form the course reads.

May import: numpy, dslearn.dtypes.

>>> import numpy as np
>>> g = Graph("double")
>>> x = g.add_input((2, 3), np.float32)
>>> two = g.add_constant(np.asarray(2.0, dtype=np.float32))
>>> y = g.add_node("mul", [x, two], [((2, 3), np.float32)]).outputs[0]
>>> g.outputs = [y]
>>> print(g)
graph double(x0: f32[2, 3]) {
  k1: f32[] = 2.0
  v2: f32[2, 3] = mul(x0, k1)
  return v2
}
"""

from __future__ import annotations

import itertools

import numpy as np

KINDS = ("op", "fused", "backward", "optimizer")
_SHORT_DTYPES = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64", "int8": "i8",
                 "int16": "i16", "int32": "i32", "int64": "i64", "uint8": "u8", "bool": "b8"}


class Value:
    """One array in the graph: static shape, dtype and device, and where it comes from."""

    __slots__ = ("id", "shape", "dtype", "device", "kind", "producer", "data", "label", "name")

    def __init__(self, id: int, shape, dtype, kind: str, producer: Node | None = None, data=None,
                 label: str = "", device: str = "cpu") -> None:
        self.id, self.kind, self.producer, self.data, self.label, self.device = id, kind, producer, data, label, device
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self.dtype = None if dtype is None else np.dtype(dtype)
        prefix = {"input": "x", "captured": "p", "constant": "k", "context": "ctx"}.get(kind, "v")
        self.name = f"{prefix}{id}"

    @property
    def type_str(self) -> str:
        """``f32[64, 256]``: the value's dtype and shape, as the printed graph shows them."""
        if self.kind == "context":
            return "context"
        return f"{_SHORT_DTYPES.get(self.dtype.name, self.dtype.name)}[{', '.join(map(str, self.shape))}]"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape is not None else 0

    def __repr__(self) -> str:
        return f"{self.name}: {self.type_str}"


class Node:
    """``outputs = op(inputs, **attrs)``; ``fn`` is the Function class of an ``op`` node."""

    __slots__ = ("op", "kind", "inputs", "outputs", "attrs", "fn", "body", "index")

    def __init__(self, op: str, kind: str, inputs: list[Value], attrs: dict, fn=None, body: Graph | None = None):
        if kind not in KINDS:
            raise ValueError(f"Node: kind must be one of {KINDS}, got {kind!r}")
        self.op, self.kind, self.inputs, self.attrs, self.fn, self.body = op, kind, list(inputs), dict(attrs), fn, body
        self.outputs: list[Value] = []
        self.index = 0  # position in the graph, refreshed by Graph.renumber()

    @property
    def output(self) -> Value:
        """The first output (most nodes have exactly one)."""
        return self.outputs[0]

    def __repr__(self) -> str:
        return format_node(self)


class Graph:
    """Inputs, captured tensors, constants, nodes in execution order, and outputs."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.captured: list[Value] = []
        self.constants: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.buffers: list[tuple[tuple[int, ...], np.dtype]] = []  # filled by the buffer-reuse pass
        self._ids = itertools.count()

    # -- building ---------------------------------------------------------------------------

    def new_value(self, shape, dtype, kind: str, **fields) -> Value:
        return Value(next(self._ids), shape, dtype, kind, **fields)

    def add_input(self, shape, dtype, label: str = "", kind: str = "input") -> Value:
        """A value the caller passes in at every call."""
        value = self.new_value(shape, dtype, kind, label=label)
        self.inputs.append(value)
        return value

    def add_captured(self, tensor, label: str = "") -> Value:
        """A tensor read live at every call (``tensor._data``): parameters and buffers."""
        value = self.new_value(tensor.shape, tensor._data.dtype, "captured", data=tensor, label=label)
        self.captured.append(value)
        return value

    def add_constant(self, array, label: str = "", device: str = "cpu") -> Value:
        """An array baked into the graph (a NumPy array, or an array already in GPU memory)."""
        if device == "cpu":
            array = np.asarray(array)
        value = self.new_value(array.shape, array.dtype, "constant", data=array, label=label, device=device)
        self.constants.append(value)
        return value

    def add_node(self, op: str, inputs: list[Value], output_types: list[tuple], attrs: dict | None = None,
                 fn=None, kind: str = "op", body: Graph | None = None, position: int | None = None) -> Node:
        """Append (or insert at ``position``) a node whose outputs have the given (shape, dtype) types."""
        node = Node(op, kind, inputs, attrs or {}, fn=fn, body=body)
        for shape, dtype in output_types:
            node.outputs.append(self.new_value(shape, dtype, "context" if shape is None else "computed",
                                               producer=node))
        self.nodes.insert(len(self.nodes) if position is None else position, node)
        return node

    # -- queries and rewrites ------------------------------------------------------------------

    def users(self) -> dict[Value, list[Node]]:
        """For every value, the nodes that read it (in order; a node reading it twice appears twice)."""
        found: dict[Value, list[Node]] = {}
        for node in self.nodes:
            for value in node.inputs:
                found.setdefault(value, []).append(node)
        return found

    def replace_uses(self, old: Value, new: Value) -> None:
        """Make every reader of ``old`` (nodes and graph outputs) read ``new`` instead."""
        for node in self.nodes:
            node.inputs = [new if v is old else v for v in node.inputs]
        self.outputs = [new if v is old else v for v in self.outputs]

    def renumber(self) -> None:
        for i, node in enumerate(self.nodes):
            node.index = i

    def sort(self) -> None:
        """Reorder nodes so that each comes after its producers, keeping the current order where it can."""
        producer = {v: n for n in self.nodes for v in n.outputs}
        waiting = {n: {producer[v] for v in n.inputs if v in producer} for n in self.nodes}
        position = {n: i for i, n in enumerate(self.nodes)}
        consumers: dict[Node, list[Node]] = {n: [] for n in self.nodes}
        for node, needs in waiting.items():
            for need in needs:
                consumers[need].append(node)
        ready = sorted((n for n, needs in waiting.items() if not needs), key=position.get)
        order = []
        while ready:
            node = ready.pop(0)
            order.append(node)
            for user in consumers[node]:
                waiting[user].discard(node)
                if not waiting[user]:
                    ready.append(user)
            ready.sort(key=position.get)
        if len(order) != len(self.nodes):
            raise AssertionError(f"graph {self.name}: the nodes form a cycle")
        self.nodes = order
        self.renumber()

    def verify(self) -> None:
        """Raise if a node reads a value that is not defined before it (the SSA invariant)."""
        defined = set(self.inputs) | set(self.captured) | set(self.constants)
        for node in self.nodes:
            for value in node.inputs:
                if value not in defined:
                    raise AssertionError(f"graph {self.name}: {format_node(node)} reads {value.name}, "
                                         "which is not defined before it")
            defined.update(node.outputs)
        for value in self.outputs:
            if value not in defined:
                raise AssertionError(f"graph {self.name}: output {value.name} is not defined")

    def count(self, op: str | None = None, kind: str | None = None) -> int:
        """How many nodes have this op name (or kind)."""
        return sum(1 for n in self.nodes if (op is None or n.op == op) and (kind is None or n.kind == kind))

    def __str__(self) -> str:
        return format_graph(self)


# -- printing -----------------------------------------------------------------------------------


def format_attr(value) -> str:
    """Attributes as a reader expects them: numbers, tuples, dtypes and classes by name."""
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, type):
        return value.__name__
    if hasattr(value, "name") and type(value).__module__.startswith("dslearn.dtypes"):
        return value.name
    return repr(value)


def format_node(node: Node) -> str:
    """``v3: f32[2, 3] = mul(v1, k0)`` (one line; fused nodes list their body separately)."""
    results = ", ".join(f"{v.name}: {v.type_str}" for v in node.outputs) or "()"
    args = [v.name for v in node.inputs]
    args += [f"{key}={format_attr(value)}" for key, value in node.attrs.items() if not key.startswith("_")]
    return f"{results} = {node.op}({', '.join(args)})"


def _constant_text(value: Value) -> str:
    data = value.data
    if data.size == 1:
        return repr(data.reshape(()).item())
    return f"array({value.type_str})"


def format_graph(graph: Graph, indent: str = "") -> str:
    """The whole graph: signature, captured tensors and constants, nodes, outputs."""
    signature = ", ".join(f"{v.name}: {v.type_str}" for v in graph.inputs)
    lines = [f"{indent}graph {graph.name}({signature}) {{"]
    for value in graph.captured:
        lines.append(f"{indent}  {value.name}: {value.type_str} = captured {value.label}".rstrip())
    for value in graph.constants:
        lines.append(f"{indent}  {value.name}: {value.type_str} = {_constant_text(value)}")
    for node in graph.nodes:
        lines.append(f"{indent}  {format_node(node)}")
        if node.body is not None:
            lines.append(format_graph(node.body, indent + "    "))
    lines.append(f"{indent}  return {', '.join(v.name for v in graph.outputs)}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)
