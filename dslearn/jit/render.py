"""Seeing a graph: a one-line-per-op summary and an interactive plotly drawing.

``summary(graph)`` counts what a graph is made of (``12 nodes: 3 matmul, 2 fused (24 ops),
...``): the quickest before/after comparison for a pass. ``figure(graph)`` draws the graph
left to right: each column is one *level* (a node sits one column right of its latest
input), inputs and captured tensors on the left, outputs on the right; colours tell inputs,
parameters, constants, ops, fused kernels and backward steps apart, and hovering a node shows
its line of the printed graph (a fused node also lists the ops inside it).

May import: dslearn.jit.ir; plotly (imported when a figure is drawn).

>>> import numpy as np
>>> from dslearn.jit.ir import Graph
>>> g = Graph()
>>> x = g.add_input((2,), np.float32)
>>> g.outputs = [g.add_node("exp", [x], [((2,), np.float32)]).output]
>>> summary(g)
'1 node: 1 exp'
"""

from __future__ import annotations

from collections import Counter

from dslearn.jit.ir import Graph, Node, format_node

COLOURS = {"input": "#4C78A8", "captured": "#F58518", "constant": "#BAB0AC", "op": "#54A24B", "fused": "#E45756",
           "backward": "#B279A2", "optimizer": "#9D755D"}


def summary(graph: Graph) -> str:
    """How many nodes of each op, fused groups with the number of ops they hold."""
    counts = Counter(node.op for node in graph.nodes)
    inside = sum(len(node.body.nodes) for node in graph.nodes if node.body is not None)
    parts = [f"{n} {op}" + (f" ({inside} ops)" if op == "fused" else "") for op, n in counts.most_common()]
    total = len(graph.nodes)
    return f"{total} node{'s' if total != 1 else ''}" + (": " + ", ".join(parts) if parts else "")


def _levels(graph: Graph) -> dict:
    level = {v: 0 for v in [*graph.inputs, *graph.captured, *graph.constants]}
    for node in graph.nodes:
        depth = 1 + max((level.get(v, 0) for v in node.inputs), default=0)
        level[node] = depth
        for v in node.outputs:
            level[v] = depth
    return level


def _hover(node: Node) -> str:
    text = format_node(node)
    if node.body is not None:
        text += "<br>" + "<br>".join("&nbsp;&nbsp;" + format_node(n) for n in node.body.nodes)
    return text


def figure(graph: Graph, title: str | None = None):
    """A plotly Figure of the graph (columns = levels; hover a node for its details)."""
    import plotly.graph_objects as go

    level = _levels(graph)
    sources = [*graph.inputs, *graph.captured, *graph.constants]
    items = [(v, v.kind, f"{v.name}: {v.type_str} {v.label}".strip()) for v in sources]
    items += [(n, n.kind, _hover(n)) for n in graph.nodes]
    rows: Counter = Counter()
    position = {}
    for item, _, _ in items:
        column = level[item]
        position[item] = (column, -rows[column])
        rows[column] += 1
    producer = {v: n for n in graph.nodes for v in n.outputs}
    edge_x, edge_y = [], []
    for node in graph.nodes:
        for v in node.inputs:
            start = position[producer.get(v, v)]
            edge_x += [start[0], position[node][0], None]
            edge_y += [start[1], position[node][1], None]
    fig = go.Figure()
    fig.add_scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "#cccccc", "width": 1}, hoverinfo="skip",
                    showlegend=False)
    for kind, colour in COLOURS.items():
        chosen = [(item, text) for item, k, text in items if k == kind]
        if not chosen:
            continue
        labels = [item.name if hasattr(item, "name") else item.op for item, _ in chosen]
        fig.add_scatter(x=[position[i][0] for i, _ in chosen], y=[position[i][1] for i, _ in chosen],
                        mode="markers+text", text=labels, textposition="top center", name=kind,
                        hovertext=[t for _, t in chosen], hoverinfo="text",
                        marker={"size": 14, "color": colour, "symbol": "square" if kind == "fused" else "circle"})
    height = max(300, 60 * max(rows.values(), default=1))
    fig.update_layout(title=title or f"graph {graph.name}: {summary(graph)}", xaxis={"visible": False},
                      yaxis={"visible": False}, plot_bgcolor="white", height=height)
    return fig
