"""A live training dashboard: loss and accuracy curves that grow while a model trains.

``TrainingDashboard`` keeps every value it is given and draws it in a two-panel plotly figure
(loss left, accuracy right; metrics are placed by name as in ``dslearn.viz.figures``). Feed it
from any loop::

    dashboard = TrainingDashboard()
    dashboard.display()
    for epoch in range(epochs):
        for step, (images, labels) in enumerate(loader):
            loss = ...
            dashboard.update(epoch + (step + 1) / len(loader), {"train_loss": loss})
        dashboard.update(epoch + 1, {"val_accuracy": accuracy})
        if dashboard.stop_requested:
            break

or hand it to a training loop as a callback: ``on_batch_end(epoch, metrics)``,
``on_epoch_end(record)`` (what ``dslearn.training.fit`` records per epoch) and ``on_train_end()``.

In a notebook the figure is a ``plotly.graph_objects.FigureWidget`` with controls under it: a
smoothing slider (an exponential moving average of the drawn curves; the values kept are raw),
a pause button (stop redrawing, e.g. to zoom in, while values keep arriving) and a stop button
that sets ``stop_requested``. Jupyter handles widget events only while the kernel is idle, so
pause and stop act during training when the loop runs in a background thread; the slider works at
any time after training. Headless (``is_headless()``: nbgrader, the course runner) no widget is
created: ``figure`` is a static ``plotly.graph_objects.Figure`` updated with the same data, and
``display()`` shows nothing.

Redrawing costs a message to the browser, so updates closer together than ``refresh_seconds``
only record; ``refresh()`` (called by ``on_epoch_end`` and ``close``) draws whatever is pending.

May import: plotly, ipywidgets, IPython, dslearn.viz.

>>> dashboard = TrainingDashboard(headless=True)
>>> for step in range(1, 5):
...     dashboard.on_batch_end(step / 4, {"train_loss": 1.0 / step})
>>> dashboard.on_epoch_end({"epoch": 1, "train_loss": 0.6, "val_loss": 0.7, "val_accuracy": 0.8, "seconds": 2.0})
>>> [(trace.name, list(trace.x)) for trace in dashboard.figure.data]
[('train_loss', [0.25, 0.5, 0.75, 1.0]), ('val_loss', [1]), ('val_accuracy', [1])]
>>> dashboard.widget is None
True
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

import plotly.graph_objects as go

from dslearn.environment import is_headless
from dslearn.viz.figures import metric_panel, metric_style, training_axes

_NOT_METRICS = ("epoch", "seconds")


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard): ``weight`` 0 keeps the values.

    >>> smooth([1.0, 0.0, 0.0], 0.5)
    [1.0, 0.3333333333333333, 0.14285714285714285]
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smooth: weight must be in [0, 1), got {weight}")
    if weight == 0.0:
        return list(values)
    smoothed, average, correction = [], 0.0, 1.0
    for value in values:
        average = weight * average + (1.0 - weight) * value
        correction *= weight
        smoothed.append(average / (1.0 - correction))
    return smoothed


class TrainingDashboard:
    """Live loss/accuracy curves for a training loop; a widget in a notebook, a static figure when headless.

    ``headless=None`` asks ``is_headless()``. ``smoothing`` in [0, 1) is the starting position of
    the smoothing slider.
    """

    def __init__(self, title: str = "training", smoothing: float = 0.0, refresh_seconds: float = 0.25,
                 headless: bool | None = None) -> None:
        smooth([], smoothing)  # validates the weight
        self.headless = is_headless() if headless is None else headless
        self.smoothing = smoothing
        self.refresh_seconds = refresh_seconds
        self.values: dict[str, tuple[list[float], list[float]]] = {}  # metric -> (epochs, values), raw
        self.paused = False
        self.stop_requested = False
        self._batch_metrics: set[str] = set()
        self._drawn_at = float("-inf")
        self._pending = False
        if self.headless:
            self.figure = training_axes(title)
            self.widget = None
        else:
            self.figure = training_axes(title, go.FigureWidget)
            self.widget = self._build_widget()

    # -- feeding it ---------------------------------------------------------------------------

    def update(self, epoch: float, metrics: Mapping[str, float]) -> None:
        """Record one value per metric at ``epoch`` (fractional within an epoch) and redraw if it is time."""
        for name, value in metrics.items():
            if name in _NOT_METRICS or metric_panel(name) is None:
                continue
            epochs, values = self.values.setdefault(name, ([], []))
            epochs.append(epoch)
            values.append(float(value))
        self._pending = True
        if time.monotonic() - self._drawn_at >= self.refresh_seconds:
            self.refresh()

    def on_batch_end(self, epoch: float, metrics: Mapping[str, float]) -> None:
        """Callback after each batch: record ``metrics`` (e.g. ``{"train_loss": ...}``) at ``epoch``."""
        self._batch_metrics.update(metrics)
        self.update(epoch, metrics)

    def on_epoch_end(self, record: Mapping[str, float]) -> None:
        """Callback after each epoch with ``fit``'s record (it has ``epoch``); metrics fed per batch are skipped."""
        self.update(record["epoch"], {name: value for name, value in record.items()
                                      if name not in self._batch_metrics})
        self.refresh()

    def on_train_end(self) -> None:
        """Callback after the last epoch: ``close()``."""
        self.close()

    def close(self) -> None:
        """Training is over: resume drawing, draw what is pending, disable the buttons (the slider stays)."""
        if self.widget is not None:
            self._pause_button.value = False
            self._pause_button.disabled = self._stop_button.disabled = True
        self.set_paused(False)

    # -- drawing ------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Push every recorded value into the figure (smoothed as the slider says), unless paused."""
        if self.paused or not self._pending:
            return
        traces = {trace.name: trace for trace in self.figure.data}
        missing = [name for name in self.values if name not in traces]
        for name in missing:
            mode = "lines" if name in self._batch_metrics else "lines+markers"  # markers for one point per epoch
            self.figure.add_scatter(x=[], y=[], name=name, mode=mode, **metric_style(name), row=1,
                                    col=metric_panel(name))
        traces = {trace.name: trace for trace in self.figure.data}
        with self.figure.batch_update() if self.widget is not None else contextlib.nullcontext():
            for name, (epochs, values) in self.values.items():
                traces[name].x = list(epochs)
                traces[name].y = smooth(values, self.smoothing)
        self._pending = False
        self._drawn_at = time.monotonic()

    def display(self) -> None:
        """Show the dashboard in the notebook (nothing happens when headless)."""
        if self.widget is not None:
            from IPython.display import display

            display(self.widget)

    def _ipython_display_(self) -> None:
        self.display()

    # -- controls -----------------------------------------------------------------------------

    def _build_widget(self):
        import ipywidgets as widgets

        self._smoothing_slider = widgets.FloatSlider(value=self.smoothing, min=0.0, max=0.99, step=0.01,
                                                     description="smoothing", continuous_update=False)
        self._pause_button = widgets.ToggleButton(value=False, description="pause", icon="pause")
        self._stop_button = widgets.Button(description="stop", icon="stop", button_style="danger")
        self._smoothing_slider.observe(lambda change: self.set_smoothing(change["new"]), names="value")
        self._pause_button.observe(lambda change: self.set_paused(change["new"]), names="value")
        self._stop_button.on_click(lambda _: self.request_stop())
        controls = widgets.HBox([self._smoothing_slider, self._pause_button, self._stop_button])
        return widgets.VBox([self.figure, controls])

    def set_smoothing(self, weight: float) -> None:
        """Redraw the curves with another smoothing weight in [0, 1) (what the slider calls)."""
        smooth([], weight)
        self.smoothing = weight
        self._pending = True
        self.refresh()

    def set_paused(self, paused: bool) -> None:
        """Stop redrawing (values are still recorded) or resume and draw what arrived meanwhile."""
        self.paused = paused
        self.refresh()

    def request_stop(self) -> None:
        """Ask the training loop to stop: sets ``stop_requested``, which the loop checks (what the button calls)."""
        self.stop_requested = True
        if self.widget is not None:
            self._stop_button.disabled = True
            self._stop_button.description = "stopping"

