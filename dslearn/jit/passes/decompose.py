"""Lowering: rewrite layer norm, softmax and log-softmax over the last dim into primitive ops.

In eager mode each of these is one hand-written kernel. Written as primitives (mean, subtract,
multiply, sqrt, max, exp, sum, divide) they become visible to the fusion pass, which can then
run the bias add before them and the activation after them in the *same* kernel: one pass
over memory for ``linear -> layer_norm -> gelu`` instead of three. The primitives compute
the same formulas as the kernels::

    layer_norm(x) = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * weight + bias
    softmax(x)    = exp(x - max(x)) / sum(exp(x - max(x)))
    log_softmax(x) = (x - max(x)) - log(sum(exp(x - max(x))))

An op whose forward context is needed by an opaque backward node (training graphs) keeps its
kernel: the backward reads what the kernel saved.

May import: numpy, dslearn.ops, dslearn.jit.ir.

>>> import numpy as np
>>> from dslearn.ops.softmax import Softmax
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> x = g.add_input((2, 5), np.float32)
>>> g.outputs = [g.add_node("softmax", [x], [((2, 5), np.float32)], {"dim": 1}, fn=Softmax).output]
>>> lower_composite_ops(g), [n.op for n in g.nodes]
(1, ['amax', 'sub', 'exp', 'sum', 'div'])
"""

from __future__ import annotations

import numpy as np

from dslearn.jit.ir import Graph, Node, Value
from dslearn.ops import elementwise as E
from dslearn.ops import reduction as R
from dslearn.ops.normalization import LayerNorm
from dslearn.ops.softmax import LogSoftmax, Softmax


class _Builder:
    """Appends primitive nodes (with their output types) to a list, in order."""

    def __init__(self, graph: Graph) -> None:
        self.graph, self.nodes = graph, []

    def op(self, fn, inputs: list[Value], shape, dtype, **attrs) -> Value:
        node = Node(fn.name, "op", inputs, attrs, fn=fn)
        node.outputs.append(self.graph.new_value(shape, dtype, "computed", producer=node, device=inputs[0].device))
        self.nodes.append(node)
        return node.output

    def constant(self, number: float, dtype) -> Value:
        return self.graph.add_constant(np.asarray(number, dtype=dtype))


def _row_stat(b: _Builder, fn, x: Value, dim: int) -> Value:
    kept = x.shape[:-1] + (1,)
    return b.op(fn, [x], kept, x.dtype, dims=(dim,), keepdim=True)


def _layer_norm(b: _Builder, node: Node) -> Value:
    x, weight, bias = node.inputs
    dim, dtype = len(x.shape) - 1, x.dtype
    mean = _row_stat(b, R.Mean, x, dim)
    centered = b.op(E.Sub, [x, mean], x.shape, dtype)
    variance = _row_stat(b, R.Mean, b.op(E.Mul, [centered, centered], x.shape, dtype), dim)
    shifted = b.op(E.Add, [variance, b.constant(node.attrs["eps"], dtype)], variance.shape, dtype)
    rstd = b.op(E.Div, [b.constant(1.0, dtype), b.op(E.Sqrt, [shifted], variance.shape, dtype)], variance.shape, dtype)
    normalized = b.op(E.Mul, [centered, rstd], x.shape, dtype)
    return b.op(E.Add, [b.op(E.Mul, [normalized, weight], x.shape, dtype), bias], x.shape, dtype)


def _softmax(b: _Builder, node: Node, log: bool) -> Value:
    (x,) = node.inputs
    dim, dtype = len(x.shape) - 1, x.dtype
    shifted = b.op(E.Sub, [x, _row_stat(b, R.Amax, x, dim)], x.shape, dtype)
    if log:
        total = _row_stat(b, R.Sum, b.op(E.Exp, [shifted], x.shape, dtype), dim)
        return b.op(E.Sub, [shifted, b.op(E.Log, [total], total.shape, dtype)], x.shape, dtype)
    exps = b.op(E.Exp, [shifted], x.shape, dtype)
    return b.op(E.Div, [exps, _row_stat(b, R.Sum, exps, dim)], x.shape, dtype)


def _lowerable(node: Node) -> bool:
    if node.kind != "op" or len(node.outputs) != 1 or node.output.dtype not in (np.float32, np.float64):
        return False
    last = len(node.output.shape) - 1
    if node.fn is LayerNorm:
        return node.attrs["normalized_ndim"] == 1 and last >= 0
    if node.fn in (Softmax, LogSoftmax):
        return last >= 0 and node.attrs["dim"] == last
    return False


def lower_composite_ops(graph: Graph) -> int:
    """Replace each lowerable layer norm / softmax / log-softmax by primitives; returns how many."""
    nodes, replaced = [], []
    for node in graph.nodes:
        if not _lowerable(node):
            nodes.append(node)
            continue
        builder = _Builder(graph)
        if node.fn is LayerNorm:
            result = _layer_norm(builder, node)
        else:
            result = _softmax(builder, node, log=node.fn is LogSoftmax)
        nodes.extend(builder.nodes)
        replaced.append((node.output, result))
    graph.nodes = nodes
    for old, new in replaced:
        graph.replace_uses(old, new)
    return len(replaced)
