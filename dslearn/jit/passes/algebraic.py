"""Algebraic simplification: rewrite expressions into cheaper equal ones.

Each rule replaces a node by one of its inputs (or a shorter chain) when the result is
provably the same array, value for value, shape and dtype included:

* ``x + 0``, ``0 + x``, ``x - 0``, ``x * 1``, ``1 * x``, ``x / 1``, ``x ** 1`` are ``x``
  (only when broadcasting does not enlarge ``x`` and the dtype is unchanged; ``x * 0`` is
  *not* 0, since ``inf * 0`` is NaN);
* ``-(-x)`` is ``x``;
* a reshape, expand or permute that changes nothing is ``x``; a reshape of a reshape is one
  reshape; a permute of a permute is one permute;
* ``clone(x)`` and ``contiguous(x)`` are ``x`` when their result is not returned (compiled
  code never writes into its arrays, so a copy inside the graph protects nothing);
* ``sum(x, d).reshape(shape with d kept as 1)`` is ``sum(x, d, keepdim=True)`` (the same for
  mean, amax, amin): the backward of broadcasting writes it that way, and in keepdim form the
  fusion pass can keep the reduction inside a kernel.

May import: numpy, dslearn.ops, dslearn.jit.ir.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Mul
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> x = g.add_input((3,), np.float32)
>>> one = g.add_constant(np.asarray(1.0, dtype=np.float32))
>>> g.outputs = [g.add_node("mul", [x, one], [((3,), np.float32)], fn=Mul).output]
>>> simplify(g), g.outputs[0] is x
(1, True)
"""

from __future__ import annotations

import numpy as np

from dslearn.jit.ir import Graph, Node, Value
from dslearn.ops import elementwise as E
from dslearn.ops import reduction as R
from dslearn.ops import shape as S


def _is_constant(value: Value, number: float) -> bool:
    return value.kind == "constant" and value.data.size > 0 and bool(np.all(value.data == number))


def _same(node: Node, value: Value) -> bool:
    """Replacing ``node``'s output by ``value`` keeps the shape and dtype."""
    return value.shape == node.output.shape and value.dtype == node.output.dtype


def _identity_operand(node: Node) -> Value | None:
    """The input that ``node`` leaves unchanged, if the node is an identity."""
    fn, inputs = node.fn, node.inputs
    if fn in (E.Add, E.Sub) and _is_constant(inputs[1], 0):
        return inputs[0]
    if fn is E.Add and _is_constant(inputs[0], 0):
        return inputs[1]
    if fn in (E.Mul, E.Div) and _is_constant(inputs[1], 1):
        return inputs[0]
    if fn is E.Mul and _is_constant(inputs[0], 1):
        return inputs[1]
    if fn is E.PowScalar and node.attrs["exponent"] == 1:
        return inputs[0]
    if fn in (S.Reshape, S.Expand) or (fn is S.Permute and tuple(node.attrs["dims"]) == tuple(range(len(
            node.attrs["dims"])))):
        return inputs[0]
    if fn is E.Cast:
        return inputs[0]
    return None


def _keeps_reduced_dims(reduction: Node, reshape: Node) -> bool:
    """Whether ``reshape`` only puts back, as size-1 dims, the dims ``reduction`` removed."""
    if reduction.fn not in (R.Sum, R.Mean, R.Amax, R.Amin) or reduction.attrs["keepdim"]:
        return False
    in_shape, dims = reduction.inputs[0].shape, reduction.attrs["dims"]
    kept = tuple(1 if dims is None or i in dims else s for i, s in enumerate(in_shape))
    return reshape.output.shape == kept


def simplify(graph: Graph) -> int:
    """Apply the rules until none applies; returns how many rewrites were made."""
    total = 0
    while True:
        rewrites = _simplify_once(graph)
        total += rewrites
        if not rewrites:
            return total


def _simplify_once(graph: Graph) -> int:
    producer = {v: n for n in graph.nodes for v in n.outputs}
    returned = set(graph.outputs)
    rewrites = 0
    kept = []
    for node in graph.nodes:
        if node.kind != "op" or len(node.outputs) != 1:
            kept.append(node)
            continue
        replacement = _identity_operand(node)
        source = producer.get(node.inputs[0]) if node.inputs else None
        if replacement is None and node.fn is E.Neg and source is not None and source.fn is E.Neg:
            replacement = source.inputs[0]
        if replacement is None and node.fn in (S.Clone, S.Contiguous) and node.output not in returned:
            replacement = node.inputs[0]
        if replacement is not None and _same(node, replacement):
            graph.replace_uses(node.output, replacement)
            rewrites += 1
            continue
        if node.fn is S.Reshape and source is not None and _keeps_reduced_dims(source, node):
            node.fn, node.op, node.inputs = source.fn, source.op, list(source.inputs)
            node.attrs = {**source.attrs, "keepdim": True}
            rewrites += 1
            kept.append(node)
            continue
        if source is not None and source.fn is node.fn and node.fn in (S.Reshape, S.Permute):
            if node.fn is S.Permute:
                inner, outer = source.attrs["dims"], node.attrs["dims"]
                node.attrs = {**node.attrs, "dims": tuple(inner[d] for d in outer)}
            node.inputs = [source.inputs[0]]
            rewrites += 1
        kept.append(node)
    graph.nodes = kept
    return rewrites
