"""Draw the computation graph behind a tensor: the tensors it was computed from and the ops between them.

Every tensor an op produced carries its graph node in ``tensor.grad_fn``: the op
(``grad_fn.fn.name``) and the input tensors (``grad_fn.parents``). ``plot_graph`` walks those
links back from the output, places each tensor one column right of its deepest input, and draws
an arrow from each input to the op result it feeds (bowed when it skips columns, so that it does not
run through the tensors between). Leaves that require grad (parameters, inputs)
are green, constants grey, op results blue and labelled with the op.

May import: plotly, dslearn.tensor.

>>> import dslearn as ds
>>> x = ds.tensor([1.0, 2.0], requires_grad=True)
>>> figure = plot_graph((x * x + 1).sum(), names={"x": x})
>>> list(figure.data[1].text)
['x', 'mul', 'constant', 'add', 'sum']
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from dslearn.tensor import Tensor

LEAF_COLOUR, CONSTANT_COLOUR, OP_COLOUR = "#2ca02c", "#9e9e9e", "#1f77b4"
EDGE_BOW = 0.7  # how far an edge that skips columns bows upwards, per column skipped


def _graph(output: Tensor) -> tuple[list[Tensor], list[tuple[int, int]]]:
    """The tensors reachable from ``output`` through ``grad_fn.parents``, inputs before results, and the edges."""
    order, seen, stack = [], set(), [(output, False)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        if tensor.grad_fn is not None:
            stack.extend((parent, False) for parent in reversed(tensor.grad_fn.parents) if id(parent) not in seen)
    position = {id(t): i for i, t in enumerate(order)}
    edges = [(position[id(parent)], position[id(t)]) for t in order if t.grad_fn is not None
             for parent in t.grad_fn.parents]
    return order, edges


def plot_graph(output: Tensor, names: Mapping[str, Tensor] | None = None, title: str = "computation graph",
               ) -> go.Figure:
    """A figure of the graph that produced ``output``; ``names`` labels some tensors (``{"x": x}``).

    The figure holds two traces: the edges (lines) and the nodes (markers with a label each, in
    topological order: every tensor after the tensors it was computed from).
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"plot_graph: expected a Tensor, got {type(output).__name__}")
    labels = {id(t): name for name, t in (names or {}).items()}
    order, edges = _graph(output)
    depth: dict[int, int] = {}
    for t in order:
        depth[id(t)] = 0 if t.grad_fn is None else 1 + max(depth[id(p)] for p in t.grad_fn.parents)
    columns: dict[int, list[int]] = {}
    for i, t in enumerate(order):
        columns.setdefault(depth[id(t)], []).append(i)
    xs, ys = [0.0] * len(order), [0.0] * len(order)
    for column, members in columns.items():  # each column's tensors stacked and centred on y = 0
        for row, i in enumerate(members):
            xs[i], ys[i] = column, (len(members) - 1) / 2 - row
    text, colours, hover = [], [], []
    for t in order:
        if t.grad_fn is not None:
            kind, colour = t.grad_fn.fn.name, OP_COLOUR
        else:
            kind, colour = ("leaf", LEAF_COLOUR) if t.requires_grad else ("constant", CONSTANT_COLOUR)
        text.append(labels.get(id(t), kind))
        colours.append(colour)
        hover.append(f"{kind}: shape {tuple(t.shape)}, {t.dtype.name}")
    edge_x, edge_y, arrows = [], [], []
    for a, b in edges:
        points = _edge_points(xs[a], ys[a], xs[b], ys[b])
        edge_x += [x for x, _ in points] + [None]
        edge_y += [y for _, y in points] + [None]
        (ax, ay), (x, y) = points[-2], points[-1]
        arrows.append({"x": x, "y": y, "ax": ax, "ay": ay, "xref": "x", "yref": "y", "axref": "x", "ayref": "y",
                       "showarrow": True, "arrowhead": 2, "standoff": 11, "arrowcolor": "#999999", "text": ""})
    figure = go.Figure([
        go.Scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "#bbbbbb", "width": 1.5}, hoverinfo="skip",
                   name="inputs → op"),
        go.Scatter(x=xs, y=ys, mode="markers+text", text=text, textposition="top center", hovertext=hover,
                   hoverinfo="text", marker={"size": 18, "color": colours, "line": {"width": 1, "color": "#333"}},
                   name="tensors"),
    ])
    top = max([y for y in edge_y if y is not None] + ys)
    figure.update_layout(title=title, showlegend=False, annotations=arrows, plot_bgcolor="white",
                         height=int(150 + 70 * (top - min(ys) + 1)), margin={"t": 50, "b": 10, "l": 10, "r": 10})
    figure.update_xaxes(visible=False, range=[-0.5, max(xs) + 0.5])
    figure.update_yaxes(visible=False, range=[min(ys) - 0.5, top + 0.6])
    return figure


def _edge_points(x0: float, y0: float, x1: float, y1: float, samples: int = 16) -> list[tuple[float, float]]:
    """An edge's polyline: straight to the next column; over longer spans a curve bowing upwards, clear of the
    tensors in the columns it passes."""
    bow = EDGE_BOW * (x1 - x0 - 1)
    if bow <= 0:
        return [(x0, y0), (x1, y1)]
    cx, cy = (x0 + x1) / 2, max(y0, y1) + bow  # the control point of a quadratic Bezier curve

    def point(t: float) -> tuple[float, float]:
        return ((1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t * t * x1,
                (1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t * t * y1)

    return [point(k / samples) for k in range(samples + 1)]
