"""dslearn.viz: figures hold the data they were given, headless runs create no widget, the dashboard keeps up."""

import ipywidgets
import numpy as np
import plotly.graph_objects as go
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dslearn as ds
from dslearn import viz
from dslearn.data import DataLoader, TensorDataset
from dslearn.profiler import profile
from dslearn.training import confusion_matrix, fit, train_step


@pytest.fixture
def widgets_created(monkeypatch):
    """A list that grows by one for every ipywidgets widget (FigureWidget included) constructed."""
    created = []
    original = ipywidgets.Widget.__init__

    def counting_init(self, *args, **kwargs):
        created.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ipywidgets.Widget, "__init__", counting_init)
    return created


@pytest.fixture
def interactive(monkeypatch):
    for name in viz.HEADLESS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def trace(figure, name):
    [found] = [t for t in figure.data if t.name == name]
    return found


# -- where the code runs ------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["NBGRADER_EXECUTION", "DSLEARN_HEADLESS"])
def test_either_variable_makes_the_run_headless(interactive, monkeypatch, variable):
    assert not viz.is_headless()
    monkeypatch.setenv(variable, "1")
    assert viz.is_headless()


def test_an_empty_variable_is_not_headless(interactive, monkeypatch):
    monkeypatch.setenv("DSLEARN_HEADLESS", "")
    assert not viz.is_headless()


def test_progress_bar_is_silent_when_headless_and_on_otherwise(interactive, monkeypatch, capsys):
    shown = viz.progress(range(3), desc="epoch 1")
    assert not shown.disable and list(shown) == [0, 1, 2]
    assert "epoch 1" in capsys.readouterr().err
    monkeypatch.setenv("NBGRADER_EXECUTION", "1")
    quiet = viz.progress(range(3), desc="epoch 1")
    assert quiet.disable and list(quiet) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    explicit = viz.progress(range(3), disable=False)  # an explicit choice wins
    assert not explicit.disable
    explicit.close()


# -- static figures -----------------------------------------------------------------------------


def test_history_of_fit_is_plotted_per_epoch_with_loss_and_accuracy_panels():
    ds.manual_seed(0)
    x = ds.randn(48, 2)
    y = (x[:, 0] > 0).long()
    model = ds.nn.Linear(2, 2)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    history = fit(model, ds.optim.SGD(model.parameters(), lr=0.5), loader, epochs=3, val_loader=loader,
                  progress=False, log=None)
    figure = viz.plot_history(history)
    assert isinstance(figure, go.Figure) and not isinstance(figure, go.FigureWidget)
    assert [t.name for t in figure.data] == ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert list(trace(figure, name).x) == [1, 2, 3]
        np.testing.assert_allclose(trace(figure, name).y, [record[name] for record in history])
    assert {trace(figure, n).xaxis for n in ("train_loss", "val_loss")} == {"x"}
    assert {trace(figure, n).xaxis for n in ("train_accuracy", "val_accuracy")} == {"x2"}
    assert trace(figure, "val_loss").line.dash == "dash" and trace(figure, "train_loss").line.dash == "solid"


def test_history_as_lists_and_records_with_missing_metrics():
    figure = viz.plot_history({"loss": [1.0, 0.5], "lr": [0.1, 0.1]})
    assert [t.name for t in figure.data] == ["loss"] and list(figure.data[0].x) == [1, 2]
    figure = viz.plot_history([{"train_loss": 1.0}, {"train_loss": 0.5, "val_loss": 0.7}])
    np.testing.assert_equal(trace(figure, "val_loss").y, [np.nan, 0.7])


@pytest.mark.parametrize("history, message", [
    ({"loss": [1.0, 0.5], "accuracy": [0.5]}, "different lengths"),
    ({"seconds": [1.0]}, "no loss or accuracy"),
    ([{"loss": 1.0}, 0.5], "record 1 is a float"),
])
def test_history_errors_say_what_is_wrong(history, message):
    with pytest.raises((ValueError, TypeError), match=message):
        viz.plot_history(history)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_confusion_matrix_figure_shows_the_counts(pairs):
    truth, predicted = np.array(pairs).T
    counts = confusion_matrix(ds.tensor(predicted), ds.tensor(truth), num_classes=4)
    expected = np.zeros((4, 4))
    np.add.at(expected, (truth, predicted), 1)
    heatmap = viz.plot_confusion_matrix(counts).data[0]
    np.testing.assert_array_equal(heatmap.z, expected)
    np.testing.assert_array_equal(heatmap.text, expected)
    normalized = viz.plot_confusion_matrix(counts, normalize=True).data[0].z
    rows = expected.sum(1) > 0
    np.testing.assert_allclose(normalized[rows].sum(1), 1.0)
    np.testing.assert_array_equal(normalized[~rows], 0.0)


def test_confusion_matrix_names_classes_and_puts_the_first_class_on_top():
    figure = viz.plot_confusion_matrix(np.eye(3, dtype=np.int64), class_names=["a", "b", "c"])
    assert list(figure.data[0].x) == list(figure.data[0].y) == ["a", "b", "c"]
    assert figure.layout.yaxis.autorange == "reversed"


@pytest.mark.parametrize("matrix, names, message", [
    (np.zeros((2, 3)), None, "square"), (np.zeros((2, 2)), ["a"], "1 class names"), ("counts", None, "str"),
])
def test_confusion_matrix_errors(matrix, names, message):
    with pytest.raises((ValueError, TypeError), match=message):
        viz.plot_confusion_matrix(matrix, class_names=names)


@pytest.mark.parametrize("layout", ["NHW", "N1HW"])
def test_image_grid_places_every_image_in_its_tile(layout):
    rng = np.random.default_rng(0)
    images = rng.random((5, 6, 4))
    given_images = ds.tensor(images[:, None] if layout == "N1HW" else images)
    figure = viz.show_images(given_images, columns=3)
    mosaic = figure.data[0].z
    assert figure.layout.annotations == ()
    for i in range(5):  # no caption band: tiles are 6x4 with a 2-pixel gap
        top, left = (i // 3) * 8, (i % 3) * 6
        np.testing.assert_array_equal(mosaic[top:top + 6, left:left + 4], images[i])
    assert np.isnan(mosaic).sum() == mosaic.size - images.size


def test_image_grid_captions_mark_wrong_predictions_in_red():
    figure = viz.show_images(np.zeros((4, 28, 28)), labels=ds.tensor([1, 2, 3, 4]),
                             predictions=np.array([1, 0, 3, 9]), class_names=list("0123456789"))
    captions = [(a.text, a.font.color) for a in figure.layout.annotations]
    assert [text for text, _ in captions] == ["1 → 1", "2 → 0", "3 → 3", "4 → 9"]
    assert [colour == "#d62728" for _, colour in captions] == [False, True, False, True]
    assert [a.text for a in viz.show_images(np.zeros((2, 3, 3)), labels=[5, 6]).layout.annotations] == ["5", "6"]


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((2, 3, 4, 4)), None, "shape"), (np.zeros(4), None, "shape"),
    (np.zeros((3, 4, 4)), [1, 2], "2 labels for 3 images"), ({"a": 1}, None, "dict"),
    (np.zeros((0, 4, 4)), None, "no images"),
])
def test_image_grid_errors(images, labels, message):
    with pytest.raises((ValueError, TypeError), match=message):
        viz.show_images(images, labels=labels)


def test_profile_chart_has_one_bar_per_op_with_its_calls_costliest_on_top():
    x = ds.randn(8, 8, requires_grad=True)
    with profile() as prof:
        for _ in range(3):
            (x @ x).relu().sum().backward()
    rows = {row.name: row for row in prof.key_averages()}
    bars = viz.plot_profile(prof, top=100).data[0]
    assert sorted(bars.y) == sorted(rows)
    for name, value, text in zip(bars.y, bars.x, bars.text):
        assert text == f"{rows[name].calls} calls"
        assert value == pytest.approx(rows[name].self_time * 1e3)
    assert list(bars.x) == sorted(bars.x)  # plotly draws the first bar at the bottom
    by_calls = viz.plot_profile(prof.key_averages(), top=2, sort_by="calls").data[0]
    assert len(by_calls.y) == 2 and max(by_calls.x) == max(row.calls for row in rows.values())
    with pytest.raises(ValueError, match="sort_by"):
        viz.plot_profile(prof, sort_by="bytes")


def test_graph_figure_has_a_node_per_tensor_and_an_edge_per_input():
    x = ds.tensor([1.0, 2.0], requires_grad=True)
    w = ds.tensor([3.0, 4.0], requires_grad=True)
    h = x * w
    out = (h * h + x).sum()  # h is used twice and x feeds two ops: both appear once
    edges, nodes = viz.plot_graph(out, names={"x": x, "w": w, "h": h}).data
    assert list(nodes.text) == ["x", "w", "h", "mul", "add", "sum"]
    assert list(nodes.x) == [0, 0, 1, 2, 3, 4]  # each tensor one column right of its deepest input
    assert list(edges.x).count(None) == 2 + 2 + 2 + 1  # mul(x, w), mul(h, h), add(., x), sum(.)
    assert nodes.marker.color[0] == "#2ca02c"


def test_graph_of_a_leaf_and_of_a_non_tensor():
    x = ds.ones(2)
    assert list(viz.plot_graph(x).data[1].text) == ["constant"]
    with pytest.raises(TypeError, match="expected a Tensor"):
        viz.plot_graph([1.0])


# -- the dashboard ------------------------------------------------------------------------------


def test_headless_dashboard_creates_no_widget_and_keeps_a_static_figure(monkeypatch, widgets_created, capsys):
    monkeypatch.setenv("NBGRADER_EXECUTION", "1")
    dashboard = viz.TrainingDashboard()
    dashboard.update(0.5, {"train_loss": 2.0, "train_accuracy": 0.25})
    dashboard.update(1.0, {"train_loss": 1.0, "train_accuracy": 0.5})
    dashboard.display()
    dashboard.close()
    assert widgets_created == []
    assert dashboard.widget is None and type(dashboard.figure) is go.Figure
    assert capsys.readouterr().out == ""
    assert list(trace(dashboard.figure, "train_loss").y) == [2.0, 1.0]
    assert list(trace(dashboard.figure, "train_accuracy").x) == [0.5, 1.0]


def test_interactive_dashboard_is_a_figure_widget_with_controls(interactive, widgets_created):
    dashboard = viz.TrainingDashboard(refresh_seconds=0.0)
    assert isinstance(dashboard.figure, go.FigureWidget)
    assert isinstance(dashboard.widget, ipywidgets.VBox)
    assert {"FigureWidget", "FloatSlider", "ToggleButton", "Button"} <= set(widgets_created)
    dashboard.update(1, {"loss": 0.5, "accuracy": 0.9, "seconds": 3.0})
    assert [t.name for t in dashboard.figure.data] == ["loss", "accuracy"]


def test_dashboard_from_a_manual_training_loop_records_every_batch():
    ds.manual_seed(1)
    x = ds.randn(40, 3)
    y = (x.sum(1) > 0).long()
    model = ds.nn.Linear(3, 2)
    optimizer = ds.optim.SGD(model.parameters(), lr=0.3)
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    dashboard = viz.TrainingDashboard(headless=True, refresh_seconds=3600.0)  # draws on epoch end only
    losses = []
    for epoch in range(2):
        for step, batch in enumerate(loader):
            loss, _ = train_step(model, optimizer, batch)
            losses.append(loss / 10)
            dashboard.on_batch_end(epoch + (step + 1) / len(loader), {"train_loss": loss / 10})
        dashboard.on_epoch_end({"epoch": epoch + 1, "train_loss": 99.0, "val_accuracy": 0.5 + epoch / 10})
    dashboard.on_train_end()
    assert list(trace(dashboard.figure, "train_loss").x) == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    np.testing.assert_allclose(trace(dashboard.figure, "train_loss").y, losses)  # 99.0 was fed per batch: skipped
    assert list(trace(dashboard.figure, "val_accuracy").y) == [0.5, 0.6]


def test_updates_closer_than_the_refresh_interval_are_drawn_on_refresh():
    dashboard = viz.TrainingDashboard(headless=True, refresh_seconds=3600.0)
    dashboard.update(1, {"loss": 1.0})  # the first update draws
    dashboard.update(2, {"loss": 0.5})
    assert list(trace(dashboard.figure, "loss").y) == [1.0]
    assert dashboard.values["loss"] == ([1, 2], [1.0, 0.5])
    dashboard.refresh()
    assert list(trace(dashboard.figure, "loss").y) == [1.0, 0.5]


@given(st.lists(st.floats(-1e3, 1e3), max_size=30), st.floats(0.0, 0.99))
def test_smoothing_is_a_debiased_moving_average(values, weight):
    expected, average = [], 0.0
    for i, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        expected.append(average / (1 - weight ** (i + 1)))
    np.testing.assert_allclose(viz.smooth(values, weight), expected, rtol=1e-9, atol=1e-9)


def test_smoothing_slider_redraws_the_curves_and_keeps_the_raw_values(interactive):
    dashboard = viz.TrainingDashboard(refresh_seconds=0.0)
    for step, value in enumerate([4.0, 0.0, 2.0]):
        dashboard.update(step, {"train_loss": value})
    dashboard._smoothing_slider.value = 0.5
    np.testing.assert_allclose(trace(dashboard.figure, "train_loss").y, viz.smooth([4.0, 0.0, 2.0], 0.5))
    assert dashboard.values["train_loss"][1] == [4.0, 0.0, 2.0]
    with pytest.raises(ValueError, match=r"weight must be in \[0, 1\)"):
        dashboard.set_smoothing(1.0)
    with pytest.raises(ValueError, match="weight"):
        viz.TrainingDashboard(smoothing=-0.1, headless=True)


def test_pause_holds_the_figure_and_resume_draws_what_arrived(interactive):
    dashboard = viz.TrainingDashboard(refresh_seconds=0.0)
    dashboard.update(1, {"loss": 1.0})
    dashboard._pause_button.value = True
    dashboard.update(2, {"loss": 0.5})
    assert list(trace(dashboard.figure, "loss").y) == [1.0]
    dashboard._pause_button.value = False
    assert list(trace(dashboard.figure, "loss").y) == [1.0, 0.5]


def test_stop_button_asks_the_loop_to_stop_and_close_disables_the_buttons(interactive):
    dashboard = viz.TrainingDashboard(refresh_seconds=3600.0)
    assert not dashboard.stop_requested
    dashboard._stop_button.click()
    assert dashboard.stop_requested and dashboard._stop_button.disabled
    dashboard.update(1, {"loss": 1.0})
    dashboard._pause_button.value = True
    dashboard.update(2, {"loss": 0.5})
    dashboard.close()  # resumes, draws what is pending
    assert list(trace(dashboard.figure, "loss").y) == [1.0, 0.5]
    assert not dashboard.paused and not dashboard._pause_button.value
    assert dashboard._pause_button.disabled and not dashboard._smoothing_slider.disabled


def test_epoch_record_without_an_epoch_is_refused():
    with pytest.raises(KeyError, match="epoch"):
        viz.TrainingDashboard(headless=True).on_epoch_end({"train_loss": 1.0})
