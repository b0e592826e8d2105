"""Layout: keep the activations between linear layers transposed ("feature-major"), where that is faster.

A linear layer computes ``y = x @ W.T`` with ``W`` of shape (out, in). BLAS is not equally fast
at every arrangement of the same product: on the course's MLP at batch 64, ``W @ x.T`` (which
is ``y.T``) runs about 20% faster than ``x @ W.T``, and ``W2 @ h.T`` with ``h.T`` already
contiguous faster still. And a fused kernel that reads its input transposed, (C, R) instead of
(R, C), can loop over the batch in its innermost loop, which vectorises across rows and keeps
each row's statistics (layer norm's mean and variance) in small arrays.

So this pass looks for fused kernels that sit between matrix products (a full-shaped input
made by ``x @ W.T``, or a full-shaped result read by ``(.) @ W.T``) and marks them
``layout='columns'``: their full-shaped inputs and results are passed transposed. Then it
rewrites each such product ``x @ W.T`` as the transpose of ``W @ x.T``. Both changes are
transposes, which NumPy expresses as views: a ``permute`` around a product, which the
algebraic simplifier cancels against the next one, so the activations of a stack of linear
layers are never transposed in memory at all.

Only small kernels (run serially, no column or total reduction) are marked; large batches keep
the row layout, whose kernels run in parallel over rows.

May import: numpy, dslearn.ops, dslearn.jit.ir, dslearn.jit.passes.fusion, dslearn.jit.codegen.fused_cpu.

>>> import numpy as np
>>> import dslearn as ds
>>> from dslearn.jit import trace
>>> from dslearn.jit.passes import PassManager
>>> layer = ds.nn.Linear(32, 32)
>>> g = PassManager(["lowering", "fusion", "epilogue_fusion", "layout", "algebraic_simplification", "dce"]).run(
...     trace(lambda x: layer(ds.gelu(layer(x))), ds.randn(8, 32)))
>>> [n.op for n in g.nodes], g.nodes[3].attrs["layout"]
(['permute', 'matmul', 'permute', 'fused', 'linear'], 'columns')
"""

from __future__ import annotations

import numpy as np

from dslearn.jit.codegen.fused_cpu import PARALLEL_MIN_SIZE
from dslearn.jit.ir import Graph, Node, Value
from dslearn.jit.passes.fusion import reduction_role, rows_and_columns
from dslearn.ops import reduction as R
from dslearn.ops.linalg import Matmul
from dslearn.ops.shape import Permute

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _transposed_weight(node: Node | None, producers: dict) -> Value | None:
    """For ``x @ W.T`` (a 2-D product whose right operand is a transposed 2-D array): ``W``."""
    if node is None or node.fn is not Matmul or node.output.dtype not in _FLOATS:
        return None
    if any(len(v.shape) != 2 or v.dtype != node.output.dtype for v in node.inputs):
        return None
    right = producers.get(node.inputs[1])
    if right is None or right.fn is not Permute or tuple(right.attrs["dims"]) != (1, 0):
        return None
    return right.inputs[0]


def can_use_columns(node: Node) -> bool:
    """A 2-D fused kernel, small enough to run serially, with no column or total reduction."""
    if node.kind != "fused" or len(node.attrs["shape"]) != 2 or node.outputs[0].device != "cpu":
        return False
    rows, columns = rows_and_columns(node.attrs["shape"])
    if rows < 2 or columns < 2 or rows * columns >= PARALLEL_MIN_SIZE:
        return False
    return all(reduction_role(n) == "row" for n in node.body.nodes if n.fn in (R.Sum, R.Mean, R.Amax, R.Amin))


def transpose_layouts(graph: Graph) -> int:
    """Mark fused kernels between matrix products column-major and flip those products; returns how many."""
    producers = {v: n for n in graph.nodes for v in n.outputs}
    readers = graph.users()
    marked = []
    for node in graph.nodes:
        if not can_use_columns(node) or node.attrs.get("layout") == "columns":
            continue
        full = node.attrs["shape"]
        fed = any(v.shape == full and _transposed_weight(producers.get(v), producers) is not None for v in node.inputs)
        feeds = any(v.shape == full and any(_transposed_weight(r, producers) is not None and r.inputs[0] is v
                                            for r in readers.get(v, [])) for v in node.outputs)
        if fed or feeds:
            node.attrs["layout"] = "columns"
            marked.append(node)
    columns_outputs = {v for n in marked for v in n.outputs if v.shape == n.attrs["shape"]}
    flipped = 0
    for node in list(graph.nodes):
        weight = _transposed_weight(node, producers)
        if weight is None:
            continue
        users = readers.get(node.output, [])
        into_columns = bool(users) and all(u.attrs.get("layout") == "columns" for u in users)
        if node.output in graph.outputs or not (into_columns or node.inputs[0] in columns_outputs):
            continue
        _flip(graph, node, weight)
        flipped += 1
    if flipped:
        graph.sort()
    return len(marked) + flipped


def _op(graph: Graph, fn, inputs: list[Value], shape, **attrs) -> Node:
    node = Node(fn.name, "op", inputs, attrs, fn=fn)
    node.outputs.append(graph.new_value(shape, inputs[0].dtype, "computed", producer=node, device=inputs[0].device))
    return node


def _flip(graph: Graph, node: Node, weight: Value) -> None:
    """Replace ``x @ W.T`` by ``(W @ x.T).T``: the same values, computed as the transposed product."""
    x, out = node.inputs[0], node.output
    x_t = _op(graph, Permute, [x], x.shape[::-1], dims=(1, 0))
    product = _op(graph, Matmul, [weight, x_t.output], out.shape[::-1])
    y = _op(graph, Permute, [product.output], out.shape, dims=(1, 0))
    position = graph.nodes.index(node)
    graph.nodes[position:position + 1] = [x_t, product, y]
    graph.replace_uses(out, y.output)
