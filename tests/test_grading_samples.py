"""Sample submissions (grading/submissions/<lab>/*.yml): their format, how they apply, release-leak detection."""

import json

import pytest
import yaml

from dslearn.course.cells import nbgrader_metadata
from dslearn.course.syllabus import find_course_root, load_syllabus
from dslearn.grading.samples import (
    SAMPLES_DIR,
    SampleError,
    apply_sample,
    load_sample,
    load_samples,
    missing_requirements,
    release_leaks,
)

ROOT = find_course_root()
LABS = [lab.id for lab in load_syllabus(ROOT).available_labs()]


def grade_ids(lab_id):
    notebook = json.loads((ROOT / "labs" / lab_id / f"{lab_id}.ipynb").read_text())
    return {nbgrader_metadata(c)["grade_id"]: nbgrader_metadata(c) for c in notebook["cells"] if nbgrader_metadata(c)}


@pytest.mark.parametrize("lab_id", LABS)
def test_every_available_lab_has_wrong_answers_that_name_real_cells(lab_id):
    samples = load_samples(ROOT / SAMPLES_DIR / lab_id)
    assert len(samples) >= 3, "write plausible wrong answers for every lab"
    cells = grade_ids(lab_id)
    full = sum(meta.get("points", 0) for meta in cells.values() if meta.get("grade"))
    for sample in samples:
        assert set(sample.cells) <= set(cells), sample.name
        assert set(sample.expected_cells) <= {g for g, meta in cells.items() if meta.get("grade")}, sample.name
        assert sample.expected_score < full, f"{sample.name}: a wrong answer scores below full marks"
        if sample.expected_cells:
            assert sum(sample.expected_cells.values()) == sample.expected_score, sample.name


def write(tmp_path, data, name="wrong.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


GOOD = {"description": "d", "expected_score": 1, "cells": {"answer": "def f(): pass"}}


def test_sample_loads_with_defaults(tmp_path):
    sample = load_sample(write(tmp_path, GOOD))
    assert (sample.name, sample.expected_score, sample.cells, sample.requires) == ("wrong", 1.0,
                                                                                  {"answer": "def f(): pass"}, ())


@pytest.mark.parametrize("change, message", [
    ({"expected_score": -1}, "expected_score: expected a number >= 0"),
    ({"expected_score": True}, "expected_score: expected a number"),
    ({"cells": {}}, "cells: expected a mapping of grade id to cell source"),
    ({"cells": {"answer": 3}}, "cells: expected a mapping"),
    ({"expected_cells": {"a": "x"}}, "expected_cells: expected a mapping of grade id to points"),
    ({"requires": "dslearn"}, "requires: expected a list of dotted names"),
    ({"score": 1}, "score: unknown field"),
])
def test_sample_mistakes_name_the_file_and_field(tmp_path, change, message):
    path = write(tmp_path, {**GOOD, **change})
    with pytest.raises(SampleError, match=f"wrong.yml: {message}"):
        load_sample(path)


def test_sample_without_description_is_refused(tmp_path):
    with pytest.raises(SampleError, match="description: missing"):
        load_sample(write(tmp_path, {"expected_score": 1, "cells": {"a": "b"}}))


def test_reserved_student_names_are_refused(tmp_path):
    write(tmp_path, GOOD, name="source-solution.yml")
    with pytest.raises(SampleError, match="reserved"):
        load_samples(tmp_path)


def _notebook(*cells):
    return {"cells": [{"cell_type": "code", "source": source, "metadata": {"nbgrader": {"grade_id": grade_id}}}
                      for grade_id, source in cells]}


def test_apply_sample_rewrites_cells_by_grade_id_and_leaves_the_release_alone(tmp_path):
    released = _notebook(("answer", "raise NotImplementedError()"), ("tests", "assert f() is None"))
    sample = load_sample(write(tmp_path, GOOD))
    submitted = apply_sample(released, sample)
    assert [c["source"] for c in submitted["cells"]] == ["def f(): pass", "assert f() is None"]
    assert released["cells"][0]["source"] == "raise NotImplementedError()"


def test_apply_sample_refuses_an_unknown_grade_id(tmp_path):
    sample = load_sample(write(tmp_path, {**GOOD, "cells": {"nope": "x"}}))
    with pytest.raises(SampleError, match="cells.nope: no cell with this grade id"):
        apply_sample(_notebook(("answer", "")), sample)


def test_release_leaks_finds_solution_and_hidden_lines_left_behind():
    source = _notebook(("answer", "def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION"),
                       ("tests", "assert f()\n### BEGIN HIDDEN TESTS\nassert f() == 42\n### END HIDDEN TESTS"))
    clean = _notebook(("answer", "def f():\n    raise NotImplementedError()"), ("tests", "assert f()"))
    assert release_leaks(source, clean) == []
    leaky = _notebook(("answer", "def f():\n    return 42"), ("tests", "assert f()\n### END HIDDEN TESTS"))
    assert release_leaks(source, leaky) == ["answer: the release still contains 'return 42'",
                                            "tests: the release still contains '### END HIDDEN TESTS'"]


def test_missing_requirements_names_what_cannot_be_found():
    assert missing_requirements(["json.dumps", "dslearn.tensor.Tensor"]) == []
    assert missing_requirements(["json.nope", "no_such_package.x"]) == ["json.nope", "no_such_package.x"]
