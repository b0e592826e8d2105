"""`dslearn course validate`: the committed course is clean, and each rule catches the mistake it is for."""

import json
import shutil

import pytest

from dslearn.cli import main
from dslearn.course.cells import nbgrader_metadata
from dslearn.course.syllabus import find_course_root, load_syllabus
from dslearn.course.validate import validate_course, validate_notebook

ROOT = find_course_root()
WELCOME = ROOT / "labs" / "00-welcome" / "00-welcome.ipynb"
LAB = load_syllabus(ROOT).lab("00-welcome")


def test_committed_course_has_no_problems():
    assert [str(p) for p in validate_course(ROOT)] == []


def test_validate_command_succeeds_on_the_committed_course(capsys):
    assert main(["course", "validate"]) == 0
    assert "course OK" in capsys.readouterr().out


def _cell(notebook, cell_id):
    [cell] = [c for c in notebook["cells"] if c["id"] == cell_id]
    return cell


def _set(grade_id, key, value):
    def mutate(nb):
        _cell(nb, grade_id)["metadata"]["nbgrader"][key] = value
    return mutate


def _source(grade_id, transform):
    def mutate(nb):
        cell = _cell(nb, grade_id)
        cell["source"] = transform("".join(cell["source"]))
    return mutate


def _add_output(nb):
    cell = _cell(nb, "setup")
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
    cell["execution_count"] = 1


def _untag_parameters(nb):
    _cell(nb, "parameters")["metadata"]["tags"] = []


def _remove_tests_after_answer(nb):
    nb["cells"] = [c for c in nb["cells"] if not nbgrader_metadata(c).get("grade")]


def _drop_hidden_tests(nb):
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"]).replace("### BEGIN HIDDEN TESTS", "").replace(
            "### END HIDDEN TESTS", "")


def _drop_widgets(nb):
    for cell in nb["cells"]:
        cell["source"] = "".join(cell["source"]).replace("ipywidgets", "widgetsless")


MUTATIONS = {
    "outputs": (_add_output, "setup): has outputs or an execution count"),
    "parameters": (_untag_parameters, "expected one code cell tagged 'parameters'"),
    "fast": (_source("parameters", lambda s: s.replace("FAST = False", "QUICK = False")),
             "the parameters cell must set FAST"),
    "objectives": (_source("objectives", lambda s: s.replace("Check that your", "Verify that your")),
                   "the learning objectives differ from course/syllabus.yml"),
    "no-objectives": (_source("objectives", lambda s: s.replace("Learning objectives", "Goals")),
                      "no 'Learning objectives' section"),
    "schema": (_set("mse-answer", "schema_version", 2), "mse-answer): nbgrader schema_version must be 3"),
    "duplicate-id": (_set("mse-hidden-values", "grade_id", "mse-visible"),
                     "grade_id 'mse-visible' is also used by cell"),
    "no-grade-id": (_set("setup", "grade_id", ""), "nbgrader cell without a grade_id"),
    "points": (_set("mse-visible", "points", 0), "mse-visible): a graded cell needs positive points, got 0"),
    "locked-flag": (_set("mse-visible", "locked", "yes"), "nbgrader metadata needs a boolean 'locked'"),
    "no-tests": (_remove_tests_after_answer, "mse-answer): autograded answer without a tests cell after it"),
    "no-hidden": (_drop_hidden_tests, "no hidden tests: grading must probe inputs the student never sees"),
    "solution-markers-outside": (_source("setup", lambda s: s + "\n### BEGIN SOLUTION\n### END SOLUTION"),
                                 "setup): '### BEGIN SOLUTION' markers belong in a solution cell"),
    "unbalanced": (_source("mse-answer", lambda s: s.replace("### END SOLUTION", "")),
                   "mse-answer): unbalanced '### BEGIN SOLUTION'"),
    "hidden-outside-tests": (_source("setup", lambda s: s + "\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"),
                             "'### BEGIN HIDDEN TESTS' markers belong in an autograder tests cell"),
    "answer-without-region": (_source("mse-answer", lambda s: s.replace("### BEGIN SOLUTION", "# begin").replace(
        "### END SOLUTION", "# end")), "autograded answer without a '### BEGIN SOLUTION' region"),
    "no-widgets": (_drop_widgets, "no ipywidgets control"),
    "no-plotly": (_source("figure", lambda s: s.replace("plotly", "matplotlib")), "no plotly figure"),
    "no-nbgrader-guard": (_source("setup", lambda s: s.replace("NBGRADER_EXECUTION", "GRADER")),
                          "never checks NBGRADER_EXECUTION"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_rule_catches_its_mistake_and_names_the_file_and_cell(tmp_path, name):
    mutate, expected = MUTATIONS[name]
    notebook = json.loads(WELCOME.read_text())
    mutate(notebook)
    path = tmp_path / "00-welcome.ipynb"
    path.write_text(json.dumps(notebook))
    problems = [str(p) for p in validate_notebook(path, LAB, display_path="labs/00-welcome/00-welcome.ipynb")]
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("labs/00-welcome/00-welcome.ipynb: ") for p in problems)


def test_a_file_that_is_not_a_notebook_is_one_problem(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    [problem] = validate_notebook(path, LAB)
    assert "not a valid notebook" in str(problem)


@pytest.fixture
def course_copy(tmp_path):
    shutil.copytree(ROOT / "course", tmp_path / "course")
    shutil.copytree(ROOT / "labs", tmp_path / "labs", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return tmp_path


def test_lab_folder_without_syllabus_entry_is_reported(course_copy):
    (course_copy / "labs" / "99-stray").mkdir()
    assert [str(p) for p in validate_course(course_copy)] == ["labs/99-stray: no syllabus entry in course/syllabus.yml"]


def test_available_lab_without_notebook_is_reported(course_copy):
    shutil.rmtree(course_copy / "labs" / "00-welcome")
    [problem] = validate_course(course_copy)
    assert "lab 00-welcome is available in the syllabus but its notebook is missing" in str(problem)


def test_coming_lab_with_a_notebook_is_reported(course_copy):
    coming = next(lab for lab in load_syllabus(ROOT).labs() if not lab.available)
    folder = course_copy / "labs" / coming.id
    folder.mkdir()
    shutil.copy(WELCOME, folder / f"{coming.id}.ipynb")
    [problem] = validate_course(course_copy)
    assert "marked 'coming' in the syllabus but its notebook exists" in str(problem)


def test_broken_syllabus_is_reported_by_validate_with_exit_status_1(course_copy, capsys):
    syllabus = course_copy / "course" / "syllabus.yml"
    syllabus.write_text(syllabus.read_text().replace("hours: 2\n", "hours: two\n", 1))
    assert main(["course", "validate", "--course-dir", str(course_copy)]) == 1
    assert "hours: expected a positive number, got 'two'" in capsys.readouterr().out


def test_stale_index_is_a_validation_problem(course_copy, capsys):
    (course_copy / "course" / "index.ipynb").unlink()
    assert main(["course", "validate", "--course-dir", str(course_copy)]) == 1
    assert "course/index.ipynb: stale or missing" in capsys.readouterr().out

