"""Kill the grader mid-run, start it again: no grade is lost, none is recorded twice, nothing is regraded.

``dslearn grade sandboxed`` runs as its own process over a class of a dozen submissions; the test kills
it (SIGKILL: no clean-up) once a few results are in the gradebook, checks that the file is consistent
and that the sandboxes it had started died with it, then runs it again to the end.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import time

import psutil
import pytest

from dslearn.course.syllabus import find_course_root
from dslearn.grading.gradebook import GRADEBOOK_FILE, Gradebook
from dslearn.grading.samples import SAMPLES_DIR, apply_sample, load_samples
from dslearn.grading.sandbox import UID_BASE
from dslearn.grading.workflow import CONFIG_FILE, GradingCourse

ROOT = find_course_root()
LAB = "00-welcome"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox (own uid per submission) needs root")]


@pytest.fixture
def course(tmp_path):
    """A course with twelve submissions of lab 00: the solution and every sample, some twice."""
    shutil.copytree(ROOT / "labs" / LAB, tmp_path / "labs" / LAB)
    course = GradingCourse(tmp_path, config_file=ROOT / CONFIG_FILE)
    released = json.loads((course.generate(LAB) / f"{LAB}.ipynb").read_text())
    notebooks = {"solution": (tmp_path / "labs" / LAB / f"{LAB}.ipynb").read_bytes()}
    samples = load_samples(ROOT / SAMPLES_DIR / LAB)
    for number in range(11):
        sample = samples[number % len(samples)]
        notebooks[f"student-{number:02d}"] = json.dumps(apply_sample(released, sample), indent=number % 3).encode()
    for student, notebook in notebooks.items():
        folder = course.folder("submitted", LAB, student)
        folder.mkdir(parents=True)
        (folder / f"{LAB}.ipynb").write_bytes(notebook)
    return course


def grade_command(course) -> list[str]:
    return [sys.executable, "-m", "dslearn.cli", "grade", "sandboxed", LAB, "--course-dir", str(course.root),
            "--workers", "2"]


def environment() -> dict:
    return dict(os.environ, PATH=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))


def recorded(course) -> list[tuple]:
    book = sqlite3.connect(course.root / GRADEBOOK_FILE, timeout=30)
    try:
        return book.execute("SELECT student, digest, score, graded_at FROM results ORDER BY student").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        book.close()


def test_a_killed_run_resumes_without_losing_or_repeating_a_grade(course):
    grader = subprocess.Popen(grade_command(course), env=environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    deadline, sandboxes = time.monotonic() + 300, set()
    while len(recorded(course)) < 4 and time.monotonic() < deadline and grader.poll() is None:
        for child in psutil.Process(grader.pid).children():
            sandboxes.add(UID_BASE + child.pid)
        time.sleep(0.05)
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    before = recorded(course)
    assert 4 <= len(before) < 12, "kill the grader while it is half way"

    book = sqlite3.connect(course.root / GRADEBOOK_FILE)
    assert book.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    book.close()
    deadline = time.monotonic() + 30
    alive = lambda: [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real in sandboxes]
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sandboxes and alive() == [], "the sandboxes die with the grader that started them"

    resumed = subprocess.run(grade_command(course), env=environment(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"graded {12 - len(before)} submission(s)" in resumed.stdout
    assert f"{len(before)} had a result already" in resumed.stdout
    after = recorded(course)
    assert len(after) == len({(student, digest) for student, digest, _, _ in after}) == 12
    assert set(before) <= set(after), "a result recorded before the kill was graded again"
    with Gradebook(course.root / GRADEBOOK_FILE) as gradebook:
        current = gradebook.current(LAB)
    assert len(current) == 12 and current["solution"].score == 4.0
    assert all(result.status == "graded" for result in current.values())


def test_a_new_submission_is_graded_and_replaces_the_old_one_in_current_grades(course):
    subprocess.run(grade_command(course), env=environment(), check=True, capture_output=True, timeout=600)
    notebook = course.folder("submitted", LAB, "student-00") / f"{LAB}.ipynb"
    notebook.write_bytes((course.root / "labs" / LAB / f"{LAB}.ipynb").read_bytes())
    again = subprocess.run(grade_command(course), env=environment(), check=True, capture_output=True, text=True,
                           timeout=600)
    assert "graded 1 submission(s)" in again.stdout and "11 had a result already" in again.stdout
    with Gradebook(course.root / GRADEBOOK_FILE) as gradebook:
        current = gradebook.current(LAB)
        history = [r for r in gradebook.results(LAB) if r.student == "student-00"]
    assert current["student-00"].score == 4.0 and len(current) == 12
    assert len(history) == 2, "both submissions keep their grade; only the current one counts"


def test_scores_csv_and_feedback_commands_read_the_sandboxed_gradebook(course, tmp_path, capsys):
    from dslearn.cli import main

    common = ["--course-dir", str(course.root)]
    assert main(["grade", "sandboxed", LAB, *common, "--student", "solution", "--workers", "1"]) == 0
    assert "solution\tgraded\t4/4" in capsys.readouterr().out
    assert main(["grade", "sandboxed-scores", LAB, *common]) == 0
    assert "solution\tgraded\t4/4" in capsys.readouterr().out
    assert main(["grade", "sandboxed-scores", LAB, *common, "--csv", str(tmp_path / "grades.csv")]) == 0
    assert (tmp_path / "grades.csv").read_text().splitlines()[1].startswith("solution,graded,4.0,4.0,")
    assert main(["grade", "sandboxed-feedback", LAB, *common, "--to", str(tmp_path / "feedback")]) == 0
    page = (tmp_path / "feedback" / "solution" / f"{LAB}.md").read_text()
    assert "**Score: 4 / 4**" in page and "passed: gradients with respect to both inputs" in page
    assert "BEGIN HIDDEN TESTS" not in page and "default_rng" not in page
    assert main(["grade", "isolation"]) == 0
    assert "yes  no network (connect to 127.0.0.1 fails)" in capsys.readouterr().out
