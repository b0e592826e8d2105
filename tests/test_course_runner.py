"""The headless runner: papermill per lab, time and memory limits, test-cell counts, the report and `course run`."""

import os
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from dslearn.cli import main
from dslearn.course.report import html_report, markdown_report, write_report
from dslearn.course.runner import (
    FAILED_RUN,
    MISSING,
    OVER_MEMORY,
    PASSED,
    TIMEOUT,
    LabRun,
    count_test_cells,
    environment,
    run_lab,
)
from dslearn.course.syllabus import Lab

TESTS = {"tags": ["tests"]}


def make_lab(root: Path, lab_id: str, cells: list) -> Lab:
    parameters = new_code_cell("FAST = False", metadata={"tags": ["parameters"]})
    notebook = new_notebook(cells=[parameters, *cells], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = root / "labs" / lab_id / f"{lab_id}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return Lab(lab_id, lab_id.title(), "available", 1, (), ("Run.",), "beginner", "basics")


def test_passing_lab_reports_its_test_cells_and_sees_fast_and_headless(tmp_path):
    lab = make_lab(tmp_path, "00-ok", [
        new_code_cell("import os\nassert FAST is True\nassert os.environ['DSLEARN_HEADLESS'] == '1'", metadata=TESTS),
        new_code_cell("assert 1 + 1 == 2", metadata=TESTS),
        new_code_cell("print('not a test')"),
    ])
    run = run_lab(lab, tmp_path, tmp_path / "out", fast=True, timeout=60)
    assert (run.status, run.tests_passed, run.tests_failed, run.tests_not_run) == (PASSED, 2, 0, 0), run.error
    assert run.notebook == tmp_path / "out" / "00-ok.ipynb" and run.notebook.is_file()
    assert 10 < run.peak_memory_mb < 1024  # a Python kernel, measured: tens of MiB at least
    assert "DSLEARN_HEADLESS" not in os.environ


def test_failing_test_cell_fails_the_lab_and_later_tests_do_not_run(tmp_path):
    lab = make_lab(tmp_path, "01-bad", [
        new_code_cell("assert True", metadata=TESTS),
        new_code_cell("assert 1 == 2, 'arithmetic is broken'", metadata=TESTS),
        new_code_cell("assert True", metadata=TESTS),
    ])
    run = run_lab(lab, tmp_path, tmp_path / "out", fast=True, timeout=60)
    assert (run.status, run.tests_passed, run.tests_failed, run.tests_not_run) == (FAILED_RUN, 1, 1, 1)
    assert "AssertionError: arithmetic is broken" in run.error


def test_lab_past_its_time_limit_is_stopped(tmp_path):
    lab = make_lab(tmp_path, "02-slow", [new_code_cell("import time\ntime.sleep(60)")])
    run = run_lab(lab, tmp_path, tmp_path / "out", timeout=3)
    assert run.status == TIMEOUT and run.seconds < 30
    assert "limit 3 s" in run.error


def test_lab_over_its_memory_limit_is_stopped(tmp_path):
    lab = make_lab(tmp_path, "03-big", [new_code_cell(
        "import time\nimport numpy as np\nblock = np.ones(400 * 2**20 // 8)\ntime.sleep(30)")])
    run = run_lab(lab, tmp_path, tmp_path / "out", timeout=60, memory_limit_mb=250)
    assert run.status == OVER_MEMORY and run.peak_memory_mb > 250 and run.seconds < 30


def test_missing_notebook_is_reported_without_running(tmp_path):
    lab = Lab("04-gone", "Gone", "available", 1, (), ("Run.",), "beginner", "basics")
    assert run_lab(lab, tmp_path, tmp_path / "out").status == MISSING


def test_test_cells_are_recognised_by_nbgrader_metadata_or_tag():
    graded = {"cell_type": "code", "execution_count": 1, "outputs": [],
              "metadata": {"nbgrader": {"grade": True, "solution": False}}}
    answer = {"cell_type": "code", "execution_count": 1, "outputs": [],
              "metadata": {"nbgrader": {"grade": False, "solution": True}}}
    failed = {"cell_type": "code", "execution_count": 2, "metadata": TESTS,
              "outputs": [{"output_type": "error", "ename": "E", "evalue": "", "traceback": []}]}
    assert count_test_cells({"cells": [graded, answer, failed]}) == (1, 1, 0)


def test_environment_restores_a_variable_that_was_set():
    os.environ["DSLEARN_RUNNER_TEST"] = "before"
    try:
        with environment(DSLEARN_RUNNER_TEST="during"):
            assert os.environ["DSLEARN_RUNNER_TEST"] == "during"
        assert os.environ["DSLEARN_RUNNER_TEST"] == "before"
    finally:
        del os.environ["DSLEARN_RUNNER_TEST"]


RUNS = [LabRun("00-ok", "Ok", PASSED, 3.14, 120.4, 2, 0, 0, notebook=Path("out/00-ok.ipynb")),
        LabRun("01-bad", "Bad <b>", FAILED_RUN, 2.0, 99.0, 1, 1, 1, "cell 2: AssertionError: a | b")]


def test_markdown_report_has_a_row_per_lab_and_escapes_pipes():
    text = markdown_report(RUNS, {"mode": "fast"})
    assert "- result: 1 of 2 labs passed" in text
    assert "| 00-ok | Ok | passed | 3.1 | 120 | 2 | 0 | 0 |  |" in text
    assert "AssertionError: a \\| b |" in text


def test_html_report_escapes_text_links_notebooks_and_marks_failures():
    page = html_report(RUNS, {"mode": "fast"})
    assert "Bad &lt;b&gt;" in page and "<b>" not in page.replace("<body>", "")
    assert '<a href="notebooks/00-ok.ipynb">00-ok</a>' in page
    assert page.count('<tr class="bad">') == 1


def test_write_report_writes_both_files(tmp_path):
    markdown_path, html_path = write_report(RUNS, {"mode": "fast"}, tmp_path / "r")
    assert markdown_path.read_text().startswith("# Course run") and html_path.read_text().startswith("<!DOCTYPE html>")


def _course(tmp_path, cells):
    make_lab(tmp_path, "00-welcome", cells)
    syllabus = {"schema": 1, "title": "T", "budget": {"seconds": 60, "memory_mb": 2048}, "levels": [
        {"id": "beginner", "title": "B", "goal": "G", "units": [{"id": "u", "title": "U", "labs": [
            {"id": "00-welcome", "title": "W", "status": "available", "hours": 1, "prerequisites": [],
             "objectives": ["O."]},
            {"id": "01-later", "title": "L", "status": "coming", "hours": 1, "prerequisites": [],
             "objectives": ["O."]}]}]}]}
    (tmp_path / "course").mkdir()
    (tmp_path / "course" / "syllabus.yml").write_text(yaml.safe_dump(syllabus))
    return tmp_path


def test_course_run_writes_the_report_and_exits_1_when_a_lab_fails(tmp_path, capsys):
    root = _course(tmp_path, [new_code_cell("assert False, 'nope'", metadata=TESTS)])
    status = main(["course", "run", "--fast", "--course-dir", str(root), "--no-progress"])
    assert status == 1
    report = (root / "reports" / "course" / "report.md").read_text()
    assert "| 00-welcome | W | failed |" in report and "- mode: fast" in report
    assert (root / "reports" / "course" / "report.html").is_file()
    assert (root / "reports" / "course" / "notebooks" / "00-welcome.ipynb").is_file()
    assert "| 00-welcome | W | failed |" in capsys.readouterr().out


def test_course_run_exits_0_when_every_lab_passes_and_honours_report_dir(tmp_path):
    root = _course(tmp_path, [new_code_cell("assert True", metadata=TESTS)])
    status = main(["course", "run", "--course-dir", str(root), "--report", str(tmp_path / "r"), "--no-progress"])
    assert status == 0
    assert "| 00-welcome | W | passed |" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("lab, message", [("01-later", "not available yet"), ("07-nope", "no lab '07-nope'")])
def test_course_run_refuses_labs_it_cannot_run(tmp_path, capsys, lab, message):
    root = _course(tmp_path, [])
    assert main(["course", "run", "--course-dir", str(root), "--lab", lab]) == 2
    assert message in capsys.readouterr().err


def test_course_run_without_a_course_says_so(tmp_path, capsys):
    assert main(["course", "run", "--course-dir", str(tmp_path)]) == 2
    assert "course/syllabus.yml" in capsys.readouterr().err


def test_executed_notebook_is_kept_for_inspection(tmp_path):
    lab = make_lab(tmp_path, "05-print", [new_code_cell("print('hello from the lab')")])
    run = run_lab(lab, tmp_path, tmp_path / "out")
    [output] = nbformat.read(run.notebook, as_version=4).cells[-1].outputs
    assert output.text == "hello from the lab\n"
