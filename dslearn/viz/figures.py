"""Static figures for training, evaluation and profiling: plain plotly ``Figure`` objects.

They need no widget and no running kernel, so they survive headless execution (nbgrader,
papermill): a lab builds them in every run and shows them only when someone is watching.

* ``plot_history``: loss and accuracy curves per epoch, from ``fit``'s history or your own lists;
* ``plot_confusion_matrix``: a heatmap of ``counts[true, predicted]``;
* ``show_images``: a grid of digits with their labels and, if given, the predictions (wrong ones in red);
* ``plot_profile``: a bar chart of the ops a ``dslearn.profiler.profile`` timed.

Metrics are placed by name: a name containing ``acc`` goes to the accuracy panel, one containing
``loss`` to the loss panel, others are left out; ``val_``/``test_`` curves are dashed.

May import: numpy, plotly, dslearn.tensor.

>>> figure = plot_history([{"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.7},
...                        {"epoch": 2, "train_loss": 0.5, "train_accuracy": 0.8}])
>>> [(trace.name, list(trace.y)) for trace in figure.data]
[('train_loss', [0.9, 0.5]), ('train_accuracy', [0.7, 0.8])]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dslearn.tensor import Tensor

LOSS_PANEL, ACCURACY_PANEL = 1, 2
TRAIN_COLOUR, EVALUATION_COLOUR = "#1f77b4", "#ff7f0e"
_EVALUATION_PREFIXES = ("val", "test", "eval")


def metric_panel(name: str) -> int | None:
    """Which panel a metric belongs to: ``LOSS_PANEL``, ``ACCURACY_PANEL`` or None (not plotted).

    >>> metric_panel("val_accuracy"), metric_panel("train_loss"), metric_panel("seconds")
    (2, 1, None)
    """
    lowered = name.lower()
    if "acc" in lowered:
        return ACCURACY_PANEL
    if "loss" in lowered:
        return LOSS_PANEL
    return None


def metric_style(name: str) -> dict:
    """Line style of a metric's curve: evaluation (``val_``, ``test_``) curves orange and dashed.

    >>> metric_style("val_loss")["line"]["dash"]
    'dash'
    """
    if name.lower().startswith(_EVALUATION_PREFIXES):
        return {"line": {"color": EVALUATION_COLOUR, "dash": "dash"}}
    return {"line": {"color": TRAIN_COLOUR, "dash": "solid"}}


def training_axes(title: str, figure_class=go.Figure):
    """An empty two-panel figure, loss on the left and accuracy on the right, both against epochs.

    >>> training_axes("run").layout.title.text
    'run'
    """
    figure = figure_class(make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy")))
    figure.update_layout(title=title, height=380, legend={"orientation": "h", "y": -0.2}, margin={"t": 60})
    figure.update_xaxes(title_text="epoch")
    figure.update_yaxes(tickformat=".0%", row=1, col=ACCURACY_PANEL)
    return figure


def _as_columns(history) -> dict[str, list[float]]:
    """``{name: values}`` from a list of per-epoch dicts (``fit``'s history) or a dict of lists."""
    if isinstance(history, Mapping):
        return {str(name): [float(v) for v in values] for name, values in history.items()}
    columns: dict[str, list[float]] = {}
    for position, record in enumerate(history):
        if not isinstance(record, Mapping):
            raise TypeError(f"plot_history: record {position} is a {type(record).__name__}, expected a dict")
        for name, value in record.items():
            columns.setdefault(str(name), [float("nan")] * position).append(float(value))
        for values in columns.values():
            values.extend([float("nan")] * (position + 1 - len(values)))
    return columns


def plot_history(history: Sequence[Mapping] | Mapping[str, Sequence[float]], title: str = "training history",
                 ) -> go.Figure:
    """Loss and accuracy curves: ``history`` is ``fit``'s list of per-epoch dicts, or ``{name: values}``.

    The x axis is the ``epoch`` entry when there is one, else 1, 2, 3...

    >>> figure = plot_history({"loss": [1.0, 0.4, 0.2], "val_accuracy": [0.5, 0.8, 0.9]})
    >>> [(trace.name, list(trace.x)) for trace in figure.data]
    [('loss', [1, 2, 3]), ('val_accuracy', [1, 2, 3])]
    """
    columns = _as_columns(history)
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"plot_history: the metrics have different lengths {sorted(lengths)}")
    count = lengths.pop() if lengths else 0
    epochs = columns.get("epoch") or list(range(1, count + 1))
    figure = training_axes(title)
    for name, values in columns.items():
        panel = metric_panel(name)
        if panel is not None:
            figure.add_scatter(x=epochs, y=values, name=name, mode="lines+markers", **metric_style(name),
                               row=1, col=panel)
    if not figure.data:
        raise ValueError(f"plot_history: no loss or accuracy metric among {sorted(columns)}")
    return figure


def _host_array(values, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().numpy()
    if isinstance(values, np.ndarray) or isinstance(values, (list, tuple)):
        return np.asarray(values)
    raise TypeError(f"{name}: expected a Tensor, a NumPy array or a list, got {type(values).__name__}")


def plot_confusion_matrix(matrix, class_names: Sequence[str] | None = None, normalize: bool = False,
                          title: str = "confusion matrix") -> go.Figure:
    """A heatmap of ``matrix[true, predicted]`` (as ``dslearn.training.confusion_matrix`` returns).

    ``normalize=True`` shows each row as fractions of its true class (the recall on the diagonal);
    the cell text always gives the counts.

    >>> figure = plot_confusion_matrix([[5, 1], [0, 4]], class_names=["cat", "dog"])
    >>> figure.data[0].z.tolist(), list(figure.data[0].x)
    ([[5.0, 1.0], [0.0, 4.0]], ['cat', 'dog'])
    """
    counts = _host_array(matrix, "plot_confusion_matrix").astype(np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square matrix, got shape {counts.shape}")
    size = counts.shape[0]
    names = [str(c) for c in (range(size) if class_names is None else class_names)]
    if len(names) != size:
        raise ValueError(f"plot_confusion_matrix: {len(names)} class names for a {size}x{size} matrix")
    shown = counts
    if normalize:
        totals = counts.sum(axis=1, keepdims=True)
        shown = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    figure = go.Figure(go.Heatmap(z=shown, x=names, y=names, colorscale="Blues", text=counts.astype(np.int64),
                                  texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{text}"
                                  "<extra></extra>"))
    figure.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", height=460, width=500)
    figure.update_xaxes(type="category")
    figure.update_yaxes(type="category", autorange="reversed")
    return figure


def show_images(images, labels=None, predictions=None, columns: int = 8, class_names: Sequence[str] | None = None,
                title: str = "") -> go.Figure:
    """A grid of images (N, H, W) or (N, 1, H, W) with their labels; wrong predictions are marked in red.

    Each tile's caption is its label, or ``label → prediction`` when predictions are given.
    All images share one heatmap (a mosaic), so a grid of a hundred digits stays light.

    >>> import numpy as np
    >>> figure = show_images(np.zeros((3, 28, 28)), labels=[7, 2, 1], predictions=[7, 3, 1], columns=2)
    >>> [a.text for a in figure.layout.annotations]
    ['7 → 7', '2 → 3', '1 → 1']
    >>> figure.data[0].z.shape
    (74, 58)
    """
    pixels = _host_array(images, "show_images").astype(np.float64)
    if pixels.ndim == 4 and pixels.shape[1] == 1:
        pixels = pixels[:, 0]
    if pixels.ndim != 3:
        raise ValueError(f"show_images: expected images of shape (N, H, W) or (N, 1, H, W), got {pixels.shape}")
    count, height, width = pixels.shape
    if count == 0:
        raise ValueError("show_images: no images to show")
    captions = _captions(count, labels, predictions, class_names)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    gap, band = 2, 0 if captions is None else 8  # pixels between tiles, and above each tile for its caption
    tile_h, tile_w = height + band + gap, width + gap
    mosaic = np.full((rows * tile_h - gap, columns * tile_w - gap), np.nan)
    annotations = []
    for i in range(count):
        top, left = (i // columns) * tile_h + band, (i % columns) * tile_w
        mosaic[top:top + height, left:left + width] = pixels[i]
        if captions is not None:
            text, wrong = captions[i]
            annotations.append({"x": left + (width - 1) / 2, "y": top - band / 2 - 0.5, "text": text,
                                "showarrow": False, "font": {"size": 11, "color": "#d62728" if wrong else "#222"}})
    figure = go.Figure(go.Heatmap(z=mosaic, colorscale="Greys", showscale=False, hoverinfo="skip"))
    figure.update_layout(title=title or None, annotations=annotations, height=max(160, rows * tile_h * 3 + 60),
                         width=max(200, columns * tile_w * 3 + 40), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    return figure


def _captions(count: int, labels, predictions, class_names) -> list[tuple[str, bool]] | None:
    if labels is None and predictions is None:
        return None
    def names(values, what):
        values = _host_array(values, "show_images").reshape(-1)
        if len(values) != count:
            raise ValueError(f"show_images: {len(values)} {what} for {count} images")
        return [str(class_names[int(v)]) if class_names is not None else str(v) for v in values.tolist()]

    truth = names(labels, "labels") if labels is not None else None
    guess = names(predictions, "predictions") if predictions is not None else None
    if guess is None:
        return [(t, False) for t in truth]
    if truth is None:
        return [(g, False) for g in guess]
    return [(f"{t} → {g}", t != g) for t, g in zip(truth, guess)]


def plot_profile(summary, top: int = 12, sort_by: str = "self_time", title: str = "where the time goes",
                 ) -> go.Figure:
    """A horizontal bar chart of the ops a profiler timed, the costliest on top.

    ``summary`` is a ``dslearn.profiler.profile`` or its ``key_averages()``; ``sort_by`` is
    ``'self_time'``, ``'total_time'`` or ``'calls'``. The bar text gives the number of calls.

    >>> from dslearn.profiler import OpStats, ProfileSummary
    >>> figure = plot_profile(ProfileSummary([OpStats("matmul", 2, 0.004, 0.004), OpStats("relu", 8, 0.001, 0.001)]))
    >>> list(figure.data[0].y), list(figure.data[0].x), list(figure.data[0].text)
    (['relu', 'matmul'], [1.0, 4.0], ['8 calls', '2 calls'])
    """
    if sort_by not in ("self_time", "total_time", "calls"):
        raise ValueError(f"plot_profile: sort_by must be 'self_time', 'total_time' or 'calls', got {sort_by!r}")
    rows = summary.key_averages() if hasattr(summary, "key_averages") else list(summary)
    rows = sorted(rows, key=lambda row: getattr(row, sort_by), reverse=True)[:top]
    rows.reverse()  # plotly draws the first bar at the bottom
    values = [row.calls if sort_by == "calls" else getattr(row, sort_by) * 1e3 for row in rows]
    figure = go.Figure(go.Bar(
        x=values, y=[row.name for row in rows], orientation="h", text=[f"{row.calls} calls" for row in rows],
        customdata=[[row.total_time * 1e3, row.self_time * 1e3] for row in rows],
        hovertemplate="%{y}: %{text}, self %{customdata[1]:.3f} ms, total %{customdata[0]:.3f} ms<extra></extra>"))
    axis = "calls" if sort_by == "calls" else sort_by.replace("_", " ") + " (ms)"
    figure.update_layout(title=title, xaxis_title=axis, height=max(240, 28 * len(rows) + 120),
                         margin={"l": 140})
    return figure
