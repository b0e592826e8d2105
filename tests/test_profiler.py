"""The profiler: exact call counts, self <= total time, bytes, the table, Chrome traces, record_function."""

import collections
import json
import os
import threading

import numpy as np
import pytest

import dslearn as ds
from dslearn.autograd import OpObserver, function, observe
from dslearn.profiler import OpStats, ProfileSummary, profile, record_function

NS = 1e-9  # trace times are rounded to the nanosecond


class CountCalls(OpObserver):
    """An independent tally of forward and backward calls, straight from the observer hook."""

    def __init__(self):
        self.counts = collections.Counter()

    def forward(self, fn, inputs, attrs, run):
        self.counts[fn.name] += 1
        return run()

    def backward(self, ctx, grad, run):
        self.counts[ctx.fn.name + "_backward"] += 1
        return run()


def train_steps(steps: int = 3):
    a = ds.randn(4, 3, requires_grad=True)
    b = ds.randn(3, 2, requires_grad=True)
    for _ in range(steps):
        with record_function("forward"):
            loss = (a @ b).relu().sum()
        with record_function("backward"):
            loss.backward()


def counts_of(prof: profile) -> dict:
    return {row.name: row.calls for row in prof.key_averages()}


def test_forward_counts_are_exact_for_a_known_graph():
    x, y = ds.ones(5), ds.ones(5)
    with profile() as prof:
        for _ in range(4):
            (x * y + x).exp()
        x.reshape(5, 1)
    assert counts_of(prof) == {"mul": 4, "add": 4, "exp": 4, "reshape": 1}


def test_counts_with_backward_match_an_independent_observer():
    with observe(CountCalls()) as tally, profile() as prof:
        train_steps()
    assert counts_of(prof) == {**tally.counts, "forward": 3, "backward": 3}
    assert {name: n for name, n in counts_of(prof).items() if name.endswith("_backward")} == {
        "sum_backward": 3, "relu_backward": 3, "matmul_backward": 3}


def test_self_time_is_total_minus_directly_nested_calls_and_never_exceeds_total(tmp_path):
    with profile() as prof:
        with record_function("outer"):
            with record_function("inner"):
                train_steps(2)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    events = json.loads(path.read_text())["traceEvents"]
    for event in events:
        inside = [e for e in events if e is not event and e["tid"] == event["tid"]
                  and e["ts"] >= event["ts"] and e["ts"] + e["dur"] <= event["ts"] + event["dur"]]
        direct = [e for e in inside if not any(o is not e and o["ts"] <= e["ts"] and
                                                o["ts"] + o["dur"] >= e["ts"] + e["dur"] for o in inside)]
        expected_self = event["dur"] - sum(e["dur"] for e in direct)
        assert event["args"]["self_us"] == pytest.approx(expected_self, abs=len(direct) * 2e-3 + 2e-3)
        assert 0 <= event["args"]["self_us"] <= event["dur"]
    rows = {row.name: row for row in prof.key_averages()}
    assert all(0 <= row.self_time <= row.total_time for row in rows.values())
    assert rows["outer"].total_time >= rows["inner"].total_time >= rows["forward"].total_time
    assert rows["outer"].self_time == pytest.approx(rows["outer"].total_time - rows["inner"].total_time, abs=4 * NS)
    assert rows["matmul_backward"].total_time >= rows["matmul_backward"].self_time


def test_chrome_trace_has_complete_events_for_every_call(tmp_path):
    with profile(record_shapes=True) as prof:
        train_steps(1)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    assert collections.Counter(e["name"] for e in events) == collections.Counter(counts_of(prof))
    for event in events:
        assert event["ph"] == "X" and event["pid"] == os.getpid() and event["tid"] == threading.get_ident()
        assert event["ts"] >= 0 and event["dur"] >= 0
        assert event["cat"] in ("forward", "backward", "user")
    matmul = next(e for e in events if e["name"] == "matmul")
    assert matmul["args"]["input_shapes"] == [[4, 3], [3, 2]] and matmul["args"]["bytes"] == 4 * 2 * 4
    assert [e["cat"] for e in events if e["name"] == "matmul_backward"] == ["backward"]
    assert os.listdir(tmp_path) == ["trace.json"]


def test_exporting_a_trace_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "trace.json"
    path.write_text("old")
    with profile() as prof:
        ds.ones(2).exp()

    def refuse(*args):
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        prof.export_chrome_trace(path)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["trace.json"]


def test_bytes_count_new_outputs_and_not_views():
    x = ds.ones(100)
    with profile() as prof:
        y = x * 2
        x.reshape(10, 10)
        y.double()
    rows = {row.name: row for row in prof.key_averages()}
    assert rows["mul"].bytes == 100 * 4
    assert rows["reshape"].bytes == 0
    assert rows["cast"].bytes == 100 * 8


def test_input_shapes_are_recorded_only_when_asked():
    with profile() as plain, profile(record_shapes=True) as shaped:
        ds.ones(2, 3).sum(0)
        ds.ones(4).sum(0)
    assert all(event.input_shapes == () for event in plain.events())
    grouped = shaped.key_averages(group_by_input_shape=True)
    assert sorted((row.name, row.calls, row.input_shapes) for row in grouped) == [
        ("sum", 1, ((2, 3),)), ("sum", 1, ((4,),))]
    assert [(row.name, row.calls) for row in shaped.key_averages()] == [("sum", 2)]


def test_profile_works_as_a_decorator_and_keeps_adding():
    prof = profile()

    @prof
    def step(x):
        return (x * x).sum()

    step(ds.ones(3))
    step(ds.ones(3))
    assert counts_of(prof) == {"mul": 2, "sum": 2}
    assert prof.total_time > 0
    assert prof not in function._observers


def test_record_function_works_as_a_decorator_and_is_free_without_a_profiler():
    @record_function("data")
    def load_batch():
        return ds.ones(8).exp()

    load_batch()  # no profiler running: nothing to record, no error
    with profile() as prof:
        load_batch()
    assert counts_of(prof) == {"data": 1, "exp": 1}
    event = {e.name: e for e in prof.events()}
    assert event["data"].kind == "user" and event["data"].duration >= event["exp"].duration


def test_only_calls_inside_the_block_are_recorded_and_profilers_nest():
    x = ds.ones(2)
    with profile() as outer:
        x.exp()
        with profile() as inner:
            x.sin()
        x.cos()
    x.tanh()
    assert counts_of(outer) == {"exp": 1, "sin": 1, "cos": 1}
    assert counts_of(inner) == {"sin": 1}
    assert outer not in function._observers and inner not in function._observers


class Boom(ds.Function):
    @staticmethod
    def forward(ctx, x):
        raise ValueError("no luck")


def test_an_op_that_raises_is_recorded_and_leaves_timing_consistent():
    with profile() as prof:
        with record_function("step"):
            with pytest.raises(ValueError, match="boom: no luck"):
                Boom.apply(ds.ones(2))
            ds.ones(2).exp()
    rows = {row.name: row for row in prof.key_averages()}
    assert counts_of(prof) == {"step": 1, "boom": 1, "exp": 1}
    assert rows["step"].total_time >= rows["boom"].total_time + rows["exp"].total_time
    assert rows["step"].self_time == pytest.approx(
        rows["step"].total_time - rows["boom"].total_time - rows["exp"].total_time, abs=4 * NS)


def test_ops_in_another_thread_are_recorded_on_their_own_timeline():
    def work():
        ds.ones(3).exp()

    with profile() as prof:
        with record_function("main"):
            worker = threading.Thread(target=work)
            worker.start()
            worker.join()
    threads = {e.name: e.thread for e in prof.events()}
    assert threads["exp"] != threads["main"]
    main = next(e for e in prof.events() if e.name == "main")
    assert main.self_time == main.duration, "the worker's op is not nested in the main thread's range"


def test_the_table_shows_every_column_sorts_and_limits_rows():
    with profile() as prof:
        train_steps(2)
    text = prof.table(row_limit=3)
    lines = text.splitlines()
    assert lines[0].split() == ["name", "calls", "self", "ms", "total", "ms", "self", "%", "avg", "us", "bytes"]
    assert len(lines) == 1 + 3 + 1 and lines[-1].startswith("self time total:")
    by_calls = prof.key_averages().table(sort_by="calls", row_limit=100).splitlines()[1:-1]
    calls = [int(line.split()[1]) for line in by_calls]
    assert calls == sorted(calls, reverse=True) and len(by_calls) == len(prof.key_averages())
    assert prof.table(sort_by="cpu_time_total") == prof.table(sort_by="total_time")
    with pytest.raises(ValueError, match="unknown sort_by 'speed'"):
        prof.table(sort_by="speed")


def test_self_percentages_add_up_to_one_hundred():
    summary = ProfileSummary([OpStats("a", 1, 0.003, 0.001, 10), OpStats("b", 3, 0.003, 0.003, 2 * 1024 ** 2)])
    rows = summary.table().splitlines()
    assert rows[1].split() == ["b", "3", "3.000", "3.000", "75.0%", "1000.0", "2.0", "MB"]
    assert rows[2].split() == ["a", "1", "1.000", "3.000", "25.0%", "3000.0", "10", "B"]
    assert np.isclose(sum(float(line.split()[4][:-1]) for line in rows[1:-1]), 100.0)
