"""`dslearn grade`: release, collect, autograde (and --force), feedback without hidden tests, CSV export.

A two-point lab built here (one visible and one hidden test) keeps each autograde to a fresh kernel
and a line of arithmetic; the course's real labs go through the same steps in test_course_quality_gate.py.
"""

import copy
import csv
import getpass
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from dslearn.cli import main
from dslearn.course.syllabus import find_course_root
from dslearn.grading.workflow import CONFIG_FILE, GradingCourse, GradingError

ROOT = find_course_root()
LAB = "00-double"
SECRET = "assert double(-21) == -42"


def nbgrader(grade_id, **flags):
    meta = {"grade": False, "solution": False, "locked": False, "grade_id": grade_id, "schema_version": 3,
            "task": False}
    meta.update(flags)
    return {"nbgrader": meta}


def write_lab(course_dir: Path) -> Path:
    cells = [
        new_markdown_cell("# Double\n\n## Learning objectives\n\n- Double a number.", id="intro",
                          metadata=nbgrader("intro", locked=True)),
        new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION", id="answer",
                      metadata=nbgrader("answer", solution=True)),
        new_code_cell("assert double(2) == 4, 'double(2) should be 4'", id="visible",
                      metadata=nbgrader("visible", grade=True, locked=True, points=1)),
        new_code_cell(f"# Hidden tests: negative numbers.\n### BEGIN HIDDEN TESTS\n{SECRET}, 'negative input'\n"
                      "### END HIDDEN TESTS", id="hidden",
                      metadata=nbgrader("hidden", grade=True, locked=True, points=1)),
    ]
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = course_dir / "labs" / LAB / f"{LAB}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


def answer(released: Path, body: str) -> dict:
    notebook = json.loads(released.read_text())
    for cell in notebook["cells"]:
        if cell["id"] == "answer":
            cell["source"] = f"def double(x):\n    {body}"
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course with the lab released and two submissions (right, wrong on negatives) autograded."""
    root = tmp_path_factory.mktemp("course")
    write_lab(root)
    course = GradingCourse(root, config_file=ROOT / CONFIG_FILE, exchange=root / "exchange")
    (root / "exchange").mkdir()
    course.release(LAB, to=root / "handout")
    released = course.folder("release", LAB) / f"{LAB}.ipynb"
    inbox = root / "inbox"
    (inbox / "alice").mkdir(parents=True)
    (inbox / "alice" / f"{LAB}.ipynb").write_text(json.dumps(answer(released, "return x + x")))
    (inbox / "bob.ipynb").write_text(json.dumps(answer(released, "return abs(2 * x)")))
    course.collect(LAB, from_folder=inbox)
    course.autograde(LAB)
    return course


def test_release_writes_the_student_version_without_solutions_or_hidden_tests(course):
    released = (course.folder("release", LAB) / f"{LAB}.ipynb").read_text()
    assert "raise NotImplementedError()" in released and "return 2 * x" not in released
    assert SECRET not in released and "BEGIN HIDDEN TESTS" not in released
    assert "# Hidden tests: negative numbers." in released


def test_release_copies_to_a_folder_and_to_the_exchange(course):
    assert (course.root / "handout" / LAB / f"{LAB}.ipynb").is_file()
    assert (course.root / "exchange" / "dslearn" / "outbound" / LAB / f"{LAB}.ipynb").is_file()


def test_releasing_again_to_the_exchange_needs_force(course):
    with pytest.raises(GradingError, match="Destination already exists"):
        course.release(LAB)
    assert len(course.release(LAB, force=True)) == 2


def test_collect_from_a_folder_takes_student_folders_and_single_notebooks(course):
    assert course.students(LAB) == ["alice", "bob"]
    for student in ("alice", "bob"):
        folder = course.folder("submitted", LAB, student)
        assert (folder / f"{LAB}.ipynb").is_file() and (folder / "timestamp.txt").is_file()


def test_autograde_scores_each_cell_with_the_hidden_tests_restored(course):
    scores = course.scores(LAB)
    assert (scores["alice"].score, scores["alice"].max_score) == (2.0, 2.0)
    assert scores["bob"].score == 1.0
    assert scores["bob"].cells["visible"].score == 1.0 and scores["bob"].cells["hidden"].score == 0.0


def test_autograde_skips_graded_submissions_unless_forced(course):
    again = course.autograde(LAB)
    assert again.graded == [] and again.skipped == ["alice", "bob"]
    forced = course.autograde(LAB, student="bob", force=True)
    assert forced.graded == ["bob"] and forced.skipped == []
    assert course.scores(LAB)["bob"].score == 1.0


def test_a_newer_submission_is_regraded_without_force(course, tmp_path):
    released = course.folder("release", LAB) / f"{LAB}.ipynb"
    (tmp_path / "carol.ipynb").write_text(json.dumps(answer(released, "return 2 * x")))
    course.collect(LAB, from_folder=tmp_path)
    assert course.autograde(LAB, student="carol").graded == ["carol"]
    (tmp_path / "carol.ipynb").write_text(json.dumps(answer(released, "return 0")))
    course.collect(LAB, from_folder=tmp_path)  # a new timestamp.txt, later than the graded one
    assert course.autograde(LAB, student="carol").graded == ["carol"]
    assert course.scores(LAB)["carol"].score == 0.0


def test_feedback_shows_scores_and_hidden_test_messages_but_never_their_code(course):
    [page] = course.feedback(LAB, student="bob")
    html = page.read_text()
    assert "negative input" in html  # the assertion message the test author chose to show
    assert "double(-21)" not in html and "BEGIN HIDDEN TESTS" not in html
    assert "the traceback of a hidden test is not shown" in html


def test_export_writes_one_csv_row_per_student(course, tmp_path):
    path = course.export(tmp_path / "grades.csv", lab_ids=[LAB])
    rows = {row["student_id"]: row for row in csv.DictReader(path.open())}
    assert {"alice", "bob"} <= set(rows)
    assert float(rows["alice"]["score"]) == 2.0 and float(rows["bob"]["max_score"]) == 2.0


def test_collect_from_the_exchange_brings_in_a_submitted_lab(course, tmp_path):
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import ExchangeFetchAssignment, ExchangeSubmit
    config = copy.deepcopy(course.config)
    config.CourseDirectory.root = str(tmp_path)
    config.CourseDirectory.assignment_id = LAB
    config.Exchange.assignment_dir = str(tmp_path)
    config.Exchange.cache = str(tmp_path / "cache")
    coursedir = CourseDirectory(config=config)
    for step in (ExchangeFetchAssignment, ExchangeSubmit):  # what a student does in JupyterLab
        step(coursedir=coursedir, authenticator=Authenticator(config=config), config=config).start()
    student = getpass.getuser()
    assert student in course.collect(LAB)


def test_autograde_of_an_unknown_lab_raises_with_nbgrader_log(course):
    with pytest.raises(GradingError, match="nbgrader autograde 99-nope"):
        course.autograde("99-nope")


def test_collect_needs_a_folder_or_an_exchange(tmp_path):
    with pytest.raises(GradingError, match="give a folder of submissions or an exchange folder"):
        GradingCourse(tmp_path).collect(LAB)
    with pytest.raises(FileNotFoundError):
        GradingCourse(tmp_path).collect(LAB, from_folder=tmp_path / "nowhere")


def test_missing_configuration_file_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nbgrader configuration"):
        GradingCourse(tmp_path, config_file=tmp_path / "none.py")


def test_cli_runs_the_whole_workflow_from_another_directory(tmp_path, monkeypatch, capsys):
    write_lab(tmp_path / "course")
    shutil.copytree(ROOT / "grading", tmp_path / "course" / "grading", ignore=shutil.ignore_patterns("submissions"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.chdir(tmp_path)  # not the course: everything goes through --course-dir
    common = ["--course-dir", str(tmp_path / "course")]
    assert main(["grade", "release", LAB, *common]) == 0
    released = tmp_path / "course" / "release" / LAB / f"{LAB}.ipynb"
    (inbox / "dana.ipynb").write_text(json.dumps(answer(released, "return 2 * x")))
    assert main(["grade", "autograde", LAB, "--from", str(inbox), *common]) == 0
    assert "dana\t2/2\t1\t1" in capsys.readouterr().out
    assert main(["grade", "autograde", LAB, *common]) == 0
    assert "pass --force to re-grade them" in capsys.readouterr().out
    assert main(["grade", "feedback", LAB, *common]) == 0
    assert main(["grade", "export", "--to", "out.csv", *common]) == 0
    assert (tmp_path / "out.csv").read_text().count("\n") == 2
    assert main(["grade", "scores", LAB, *common]) == 0
    assert main(["grade", "autograde", "99-nope", *common]) == 2
    assert "nbgrader autograde 99-nope" in capsys.readouterr().err


def test_grade_check_reports_a_sample_whose_score_disagrees(tmp_path, capsys):
    write_lab(tmp_path)
    shutil.copytree(ROOT / "grading", tmp_path / "grading", ignore=shutil.ignore_patterns("submissions"))
    samples = tmp_path / "grading" / "submissions" / LAB
    samples.mkdir(parents=True)
    (samples / "drops-sign.yml").write_text(
        "description: Loses the sign.\nexpected_score: 1\nexpected_cells: {visible: 1, hidden: 0}\n"
        "cells:\n  answer: |\n    def double(x):\n        return abs(2 * x)\n")
    (samples / "miscalibrated.yml").write_text(
        "description: Right answer recorded as wrong.\nexpected_score: 1\n"
        "cells:\n  answer: |\n    def double(x):\n        return x * 2\n")
    assert main(["grade", "check", LAB, "--course-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "miscalibrated: scores 2, expected 1 (miscalibrated.yml)" in out
    assert "miscalibrated: expected_score" not in out and "drops-sign:" not in out
    assert "untouched-release\t0/2" in out and "source-solution\t2/2" in out
