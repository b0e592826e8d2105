"""The start page (course/index.ipynb) and the progress it shows."""

import json
import shutil

import nbformat
import pytest

from dslearn.cli import main
from dslearn.course.cells import is_test_cell
from dslearn.course.index import INDEX_FILE, build_index, index_is_current, write_index
from dslearn.course.progress import (
    ABSENT,
    COMING,
    IN_PROGRESS,
    NOT_STARTED,
    VISIBLE_PASS,
    course_progress,
    lab_progress,
    progress_markdown,
)
from dslearn.course.syllabus import find_course_root, load_syllabus
from dslearn.grading.feedback import remove_hidden_regions

ROOT = find_course_root()
SYLLABUS = load_syllabus(ROOT)
WELCOME = ROOT / "labs" / "00-welcome" / "00-welcome.ipynb"


def test_committed_index_is_what_the_syllabus_generates():
    assert index_is_current(SYLLABUS, ROOT), "run `dslearn course index`"


def test_index_is_a_valid_notebook_without_outputs():
    notebook = nbformat.read(ROOT / INDEX_FILE, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


def test_index_links_every_available_lab_and_marks_the_others_coming():
    text = "\n".join(cell.source for cell in build_index(SYLLABUS).cells)
    for lab in SYLLABUS.labs():
        link = f"(../labs/{lab.id}/{lab.id}.ipynb)"
        assert (link in text) == lab.available, lab.id
        assert lab.title in text
        for objective in lab.objectives:
            assert f"- {objective}" in text
    coming = sum(1 for lab in SYLLABUS.labs() if not lab.available)
    assert text.count("· **coming**") == coming


def test_index_shows_hours_per_level_and_has_a_progress_cell():
    notebook = build_index(SYLLABUS)
    assert "## Beginner · about 20 hours" in notebook.cells[2].source
    [code] = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "show_progress()" in code.source


def test_index_command_writes_and_checks(tmp_path, capsys):
    shutil.copytree(ROOT / "course", tmp_path / "course")
    (tmp_path / INDEX_FILE).unlink()
    assert main(["course", "index", "--check", "--course-dir", str(tmp_path)]) == 1
    assert main(["course", "index", "--course-dir", str(tmp_path)]) == 0
    assert main(["course", "index", "--check", "--course-dir", str(tmp_path)]) == 0
    assert (tmp_path / INDEX_FILE).read_text() == (ROOT / INDEX_FILE).read_text()
    assert "is current" in capsys.readouterr().out


def test_write_index_is_deterministic(tmp_path):
    (tmp_path / "course").mkdir()
    first = write_index(SYLLABUS, tmp_path).read_text()
    assert write_index(SYLLABUS, tmp_path).read_text() == first


# -- progress ------------------------------------------------------------------------------------


def _student_copy(executed=None, failing=()):
    """The welcome notebook as a student has it (hidden tests cut), with test cells run as asked."""
    notebook = json.loads(WELCOME.read_text())
    for cell in notebook["cells"]:
        cell["source"] = remove_hidden_regions("".join(cell["source"]))
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if is_test_cell(cell) and executed:
            cell["execution_count"] = 1
            if grade_id in failing:
                cell["outputs"] = [{"output_type": "error", "ename": "AssertionError", "evalue": "", "traceback": []}]
    return notebook


def _folder(tmp_path, notebook):
    folder = tmp_path / "labs" / "00-welcome"
    folder.mkdir(parents=True)
    (folder / "00-welcome.ipynb").write_text(json.dumps(notebook))
    return tmp_path / "labs"


def test_missing_notebook_is_not_in_your_folder(tmp_path):
    assert lab_progress(SYLLABUS.lab("00-welcome"), tmp_path).state == ABSENT


def test_unrun_notebook_is_not_started_and_counts_only_visible_test_cells(tmp_path):
    progress = lab_progress(SYLLABUS.lab("00-welcome"), _folder(tmp_path, _student_copy()))
    assert (progress.state, progress.tests_passed, progress.tests_total) == (NOT_STARTED, 0, 1)


def test_all_visible_tests_run_without_error_pass(tmp_path):
    progress = lab_progress(SYLLABUS.lab("00-welcome"), _folder(tmp_path, _student_copy(executed=True)))
    assert (progress.state, progress.tests_passed, progress.tests_total) == (VISIBLE_PASS, 1, 1)


def test_a_failing_visible_test_is_in_progress(tmp_path):
    labs = _folder(tmp_path, _student_copy(executed=True, failing={"mse-visible"}))
    progress = lab_progress(SYLLABUS.lab("00-welcome"), labs)
    assert (progress.state, progress.tests_passed, progress.tests_total) == (IN_PROGRESS, 0, 1)


def test_source_notebook_counts_its_hidden_test_cells_too(tmp_path):
    notebook = json.loads(WELCOME.read_text())
    assert lab_progress(SYLLABUS.lab("00-welcome"), _folder(tmp_path, notebook)).tests_total == 4


def test_unreadable_notebook_counts_as_absent(tmp_path):
    folder = tmp_path / "00-welcome"
    folder.mkdir()
    (folder / "00-welcome.ipynb").write_text("{")
    assert lab_progress(SYLLABUS.lab("00-welcome"), tmp_path).state == ABSENT


def test_course_progress_covers_the_path_and_coming_labs_stay_coming(tmp_path):
    progress = course_progress(SYLLABUS, _folder(tmp_path, _student_copy(executed=True)))
    assert [p.lab.id for p in progress] == [lab.id for lab in SYLLABUS.labs()]
    assert {p.state for p in progress if not p.lab.available} == {COMING}
    table = progress_markdown(progress)
    assert table.startswith(f"**1 of {len(SYLLABUS.available_labs())} available labs with all visible tests")
    assert "| 00-welcome · Welcome to dslearn | beginner | visible tests pass | 1 / 1 |" in table


@pytest.mark.parametrize("labs_dir_given", [False, True])
def test_progress_command_prints_the_table(tmp_path, capsys, labs_dir_given):
    argv = ["course", "progress"] + (["--labs-dir", str(_folder(tmp_path, _student_copy()))] if labs_dir_given else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| 00-welcome · Welcome to dslearn | beginner |" in out
    if labs_dir_given:
        assert "not started" in out
