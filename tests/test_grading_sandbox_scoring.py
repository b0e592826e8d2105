"""Trusted scoring: the plain-data wire format, probe checks, restoring cells, disabled references, fallback.

Everything here runs in the grader's process on data a student's process may have forged; the oracle
is NumPy (and, for the end-to-end fallback test, nbgrader's own rule: a test cell passes if it does
not raise).
"""

import json
import os
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra import numpy as hnp

from dslearn.course.syllabus import find_course_root
from dslearn.grading.grader import Assignment, Submission, grade
from dslearn.grading.probes import (
    Answer,
    ProbeFileError,
    call,
    check,
    gradcheck,
    gradients,
    load_probes,
    probes_from_source,
    raises,
    records_gradient,
    returns,
    seed_for,
)
from dslearn.grading.references import compiled_caches, module_folders, overlays, stub_source
from dslearn.grading.sandbox import Limits
from dslearn.grading.submission import MalformedNotebook, prepare, read_notebook
from dslearn.grading.wire import WireError, decode, encode

ROOT = find_course_root()


@given(hnp.arrays(hnp.scalar_dtypes().filter(lambda d: d.kind in "biufc"), hnp.array_shapes(min_dims=0, max_dims=4,
                                                                                            max_side=4)))
def test_numeric_arrays_cross_the_wire_unchanged(array):
    back = decode(encode({"a": array}))["a"]
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize("line, message", [
    ('{"$array": ["|O", [1], "AA=="]}', "not a plain numeric dtype"),
    ('{"$array": ["<f8", [2], "AAAAAAAAAAA="]}', "do not match shape"),
    ('{"$array": ["<f8", [-1], ""]}', "is not a list of sizes"),
    ('{"$array": ["<f8", [100000, 100000], ""]}', "too large"),
    ('{"$array": ["V8", [1], "AAAAAAAAAAA="]}', "not a plain numeric dtype"),
    ('{"$array": ["<f8", [1], "!!!"]}', "not base64"),
    ('[NaN]', "not plain JSON"),
    ("[" * 5000 + "]" * 5000, "nesting|not JSON"),
    ("\x80abc", "not JSON"),
])
def test_forged_lines_are_refused(line, message):
    with pytest.raises(WireError, match=message):
        decode(line)


def test_only_exact_plain_types_are_sent():
    class Sneaky(float):
        pass

    with pytest.raises(WireError, match="cannot send a Sneaky"):
        encode(Sneaky(1.0))
    with pytest.raises(WireError, match="not a plain numeric dtype"):
        encode(np.array([object()]))
    assert decode(encode([float("nan"), float("inf")]))[1] == float("inf")


def answer(value, **extra):
    return Answer.from_wire({"ok": True, "result": {"kind": "tensor", "value": np.asarray(value, dtype=np.float64),
                                                    "requires_grad": True}, **extra})


@pytest.mark.parametrize("data", [None, [], {"ok": "yes"}, {"ok": True}, {"ok": True, "result": {"kind": "evil"}},
                                  {"ok": True, "result": {"kind": "tensor", "value": [1.0]}},
                                  {"ok": True, "result": {"kind": "number", "value": "1"}},
                                  {"ok": True, "result": {"kind": "tensor", "value": np.ones(1)}, "grads": [1.0]}])
def test_malformed_answers_fail_as_such(data):
    got = Answer.from_wire(data)
    assert not got.ok and got.error == "Malformed"


def test_returns_checks_kind_shape_and_value_against_the_reference():
    probe = returns("x", call("f"), 2.5, rtol=1e-9)
    assert check(probe, [answer(2.5)]) is None
    assert check(probe, [answer([2.5])]) == "returned shape (1,), expected shape ()"
    assert check(probe, [answer(2.6)]) == "wrong value"
    assert check(probe, [Answer.from_wire({"ok": True, "result": {"kind": "object", "type": "Anything"}})]) == \
        "returned an object, expected a tensor"
    assert check(probe, [Answer(False, "CallTimeout")]) == "did not finish in time"
    assert check(returns("x", call("f"), 2.5, kind="number"), [answer(2.5)]) is None


def test_raises_accepts_subclasses_and_names_what_happened():
    probe = raises("x", call("f"), "ValueError")
    assert check(probe, [Answer.from_wire({"ok": False, "error": "ShapeError", "mro": ["ShapeError", "ValueError"]})]) \
        is None
    assert check(probe, [Answer.from_wire({"ok": False, "error": "TypeError"})]) == \
        "raised TypeError, expected ValueError"
    assert check(probe, [answer(1.0)]) == "returned a tensor, expected ValueError"


def test_gradients_compare_each_argument_with_the_reference():
    probe = gradients("x", call("f"), [[1.0, 2.0], None])
    assert probe.calls[0].backward
    assert check(probe, [answer(0.0, grads=[np.array([1.0, 2.0]), None])]) is None
    assert check(probe, [answer(0.0, grads=[None, None])]) == "no gradient reached argument 1"
    assert check(probe, [answer(0.0, grads=[np.array([1.0, 2.5]), None])]) == \
        "wrong gradient with respect to argument 1"
    assert check(probe, [answer(0.0, backward_error="x")]) == "backward() failed on the result"


def test_gradcheck_takes_central_differences_of_the_students_own_values():
    a, b = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    probe = gradcheck("x", "f", [a, b], eps=1e-3)
    assert len(probe.calls) == 1 + 2 * (a.size + b.size) and probe.calls[0].backward

    def answers_of(f, grad_a, grad_b):
        values = [np.asarray(f(*[arg.value for arg in c.args])) for c in probe.calls[1:]]
        return [answer(f(a, b), grads=[grad_a, grad_b])] + [answer(v) for v in values]

    summed = lambda x, y: ((x - y) ** 2).sum()
    assert check(probe, answers_of(summed, 2 * (a - b), -2 * (a - b))) is None
    assert check(probe, answers_of(summed, (a - b), -(a - b))) == \
        "gradient with respect to argument 1 disagrees with finite differences"
    assert "disagrees" in check(probe, answers_of(summed, None, None))


def test_records_gradient_and_a_check_that_crashes():
    assert check(records_gradient("x", call("f")), [answer(1.0)]) is None
    probe = returns("x", call("f"), 1.0)
    assert check(probe, []) == "the answer could not be checked (IndexError)"


def test_the_welcome_lab_probes_cover_every_graded_cell_and_pickle_as_source():
    probes = load_probes(ROOT, "00-welcome")
    cells = probes.cells(seed=1)
    assert set(cells) == {"mse-visible", "mse-hidden-values", "mse-hidden-gradients", "mse-hidden-own-work"}
    again = pickle.loads(pickle.dumps(probes))
    first = json.dumps([c.wire("x") for p in cells["mse-hidden-values"] for c in p.calls], default=str)
    second = json.dumps([c.wire("x") for p in again.cells(seed=1)["mse-hidden-values"] for c in p.calls], default=str)
    assert first == second and probes.disabled == again.disabled


def test_inputs_are_drawn_per_submission_from_the_course_secret():
    assert seed_for(b"k", "lab", "alice", "d1") != seed_for(b"k", "lab", "alice", "d2")
    assert seed_for(b"k", "lab", "alice", "d1") != seed_for(b"other", "lab", "alice", "d1")


def test_a_probe_file_without_probes_is_refused():
    with pytest.raises(ProbeFileError, match="defines no probes"):
        probes_from_source("x", "DISABLED = []", "x.py")


def cell(grade_id, source, **flags):
    meta = {"grade_id": grade_id, "grade": False, "solution": False, "locked": False, **flags}
    return {"cell_type": "code", "source": source, "metadata": {"nbgrader": meta}}


SOURCE = {"cells": [cell("setup", "import numpy", locked=True),
                    cell("answer", "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                         solution=True),
                    cell("visible", "assert f() == 1", grade=True, locked=True, points=1),
                    cell("hidden", "# more\n### BEGIN HIDDEN TESTS\nassert f() + 1 == 2\n### END HIDDEN TESTS",
                         grade=True, locked=True, points=1)]}


def test_prepare_restores_edited_cells_and_keeps_the_students_answer_and_extra_cells():
    submitted = {"cells": [cell("setup", "import os; os._exit(0)", locked=True),
                           {"cell_type": "code", "source": "x = 1"},
                           cell("answer", "def f():\n    return 2", solution=True),
                           cell("visible", "pass", grade=True, locked=True, points=1), cell("hidden", "# more")]}
    prepared = prepare(SOURCE, submitted, probed={"hidden"})
    assert [c.source for c in prepared.cells] == ["import numpy", "x = 1", "def f():\n    return 2",
                                                  "assert f() == 1", "# more"]
    assert [c.scored_in_kernel for c in prepared.cells] == [False, False, False, True, False]
    assert prepared.notes == ["locked cell setup was edited; it ran as the source has it",
                              "test cell visible was edited; it ran as the source has it"]


def test_prepare_puts_back_deleted_cells_in_place_and_counts_duplicates_once():
    submitted = {"cells": [cell("setup", "import numpy"), cell("visible", "x"), cell("visible", "y"),
                           cell("setup", "import numpy")]}
    prepared = prepare(SOURCE, submitted)
    assert [(c.grade_id, c.role) for c in prepared.cells] == [("setup", "locked"), ("answer", "answer"),
                                                              ("visible", "tests"), ("hidden", "tests")]
    assert "BEGIN HIDDEN TESTS" in prepared.cells[3].source  # no probes for it: the hidden tests run in the kernel
    assert "answer cell answer was missing; it ran as `raise NotImplementedError`" in prepared.notes
    assert "cell visible appears more than once; the copy was dropped" in prepared.notes
    assert "test cell hidden was missing; restored from the source" in prepared.notes


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xfe", "not JSON"), (b"[]", "no list of cells"), (b'{"cells": {}}', "no list of cells"),
    (b'{"cells": [], "nbformat": 3}', "nbformat 3"), (b'{"cells": [{"source": "x"}]}', "cell 0 has no cell_type"),
    (b'{"cells": [{"cell_type": "code", "source": "", "metadata": []}]}', "cell 0 has malformed metadata"),
    (b" " * (17 * 1024 * 1024), "over the limit"),
])
def test_read_notebook_says_why_a_file_is_not_a_notebook(data, reason):
    with pytest.raises(MalformedNotebook, match=reason):
        read_notebook(data)


def test_stubbed_classes_refuse_to_be_built():
    namespace = {}
    exec(stub_source("class Loss:\n    def forward(self):\n        return 1\n", {"Loss": "lib.Loss"}), namespace)
    with pytest.raises(RuntimeError, match="lib.Loss is disabled while this lab is graded"):
        namespace["Loss"]()


def test_overlays_stub_the_defining_module_and_hide_its_caches(tmp_path):
    binds = overlays(["dslearn.nn.functional.mse_loss", "dslearn.nn.MSELoss"], tmp_path)
    hidden = compiled_caches([original for _, original in binds])
    originals = sorted(original for _, original in binds)
    assert [os.path.basename(p) for p in originals] == ["loss.py", "loss.py"]
    copy = dict((original, stub) for stub, original in binds)[originals[0]]
    assert "is disabled while this lab is graded" in open(copy).read()
    assert all("__pycache__" in path for path in hidden)
    with pytest.raises(LookupError, match="no_such_loss"):
        overlays(["dslearn.nn.functional.no_such_loss"], tmp_path)
    assert module_folders(["numpy"]) and module_folders(["json"])


@pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox needs root")
def test_a_lab_without_probes_is_scored_in_the_kernel_and_flagged_tamperable():
    notebook = lambda answer: json.dumps({"cells": [cell("setup", "import numpy", locked=True),
                                                    cell("answer", answer, solution=True),
                                                    SOURCE["cells"][2], SOURCE["cells"][3]]}).encode()
    assignment = Assignment("00-tiny", SOURCE, None, Limits(wall_seconds=60, cell_seconds=10))
    honest = grade(assignment, Submission("00-tiny", "honest", notebook("def f():\n    return 1")))
    wrong = grade(assignment, Submission("00-tiny", "wrong", notebook("def f():\n    return 2")))
    cheat = grade(assignment, Submission("00-tiny", "cheat", notebook(
        "def f():\n    return 2\nget_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])")))
    assert (honest.score, wrong.score) == (2.0, 0.0)
    assert cheat.score == 2.0, "in-kernel tests can be fooled: that is why probes exist"
    assert all(c.tamperable for c in cheat.cells.values())
    assert any("tamperable" in w for w in cheat.warnings)
    assert "f() + 1 == 2" not in json.dumps(wrong.to_dict())  # no hidden test in what is recorded


def test_every_missing_isolation_mechanism_is_a_loud_warning():
    from dslearn.grading.launcher import isolation_warnings

    everything = {"mounts": True, "network": True, "pids": True, "ipc": True}
    assert isolation_warnings(True, everything) == []
    warnings = isolation_warnings(False, dict.fromkeys(everything, False))
    assert len(warnings) == 3
    assert warnings[0].startswith("NO NETWORK ISOLATION") and "127.0.0.1" in warnings[0]
    assert any("no PID namespace" in w for w in warnings) and any("not root" in w for w in warnings)
