"""Parallel grading: a pool of local workers and a Dask cluster on 127.0.0.1 give the same grades, once each.

A class of 24 synthetic submissions of lab 00 (the solution and the sample wrong answers, each in
several copies that differ only in formatting, so that every one is its own submission) is graded
with two local workers and with a two-worker Dask ``LocalCluster``. How fast is measured in
benchmarks/grading.py, not here. The gradebook is also hammered by several processes at once.
"""

import multiprocessing
import os
import sqlite3

import pytest

from dslearn.course.syllabus import find_course_root
from dslearn.grading.gradebook import Gradebook
from dslearn.grading.grader import Assignment, GradeResult, Submission
from dslearn.grading.pool import autograde_class, collect_submissions
from dslearn.grading.samples import SAMPLES_DIR, SOLUTION, load_samples, synthetic_class
from dslearn.grading.sandbox import Limits

ROOT = find_course_root()
LAB = "00-welcome"
LIMITS = Limits(wall_seconds=120, cell_seconds=30, call_seconds=10)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox (own uid per submission) needs root")]


def expected_scores(students: dict[str, str]) -> dict[str, float]:
    """What each synthetic submission scores: the solution 4, a sample its score, a library caller 0."""
    samples = {s.name: s for s in load_samples(ROOT / SAMPLES_DIR / LAB)}
    library = {"dslearn.nn.functional.mse_loss"}  # disabled while grading: calling it scores nothing
    return {student: 4.0 if name == SOLUTION else 0.0 if library & set(samples[name].requires)
            else samples[name].expected_score for student, name in students.items()}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    course_dir = tmp_path_factory.mktemp("class")
    expected = expected_scores(synthetic_class(LAB, ROOT, course_dir, 24))
    assignment = Assignment.load(course_dir, LAB, limits=LIMITS)
    submissions = collect_submissions(course_dir, LAB)
    with Gradebook(course_dir / "local.db") as book:
        local = autograde_class(assignment, submissions, book, workers=2, engine="local")
    return course_dir, expected, assignment, submissions, local


def cell_scores(results: list[GradeResult]) -> dict:
    return {r.student: (r.status, {g: c.score for g, c in r.cells.items()}) for r in results}


def test_a_local_pool_grades_every_submission_once_with_its_expected_score(graded_class):
    course_dir, expected, _, _, local = graded_class
    assert sorted(r.student for r in local.recorded) == sorted(expected)
    assert {r.student: r.score for r in local.recorded} == expected
    assert all(r.status == "graded" for r in local.recorded)
    with Gradebook(course_dir / "local.db") as book:
        assert len(book.current(LAB)) == 24


def test_a_dask_cluster_on_localhost_gives_the_same_grades(graded_class):
    pytest.importorskip("distributed")
    course_dir, _, assignment, submissions, local = graded_class
    with Gradebook(course_dir / "dask.db") as book:
        distributed = autograde_class(assignment, submissions, book, workers=2, engine="dask")
        assert len(book.current(LAB)) == 24
    assert cell_scores(distributed.recorded) == cell_scores(local.recorded)


def _record_many(path: str, offset: int) -> None:
    with Gradebook(path) as book:
        for number in range(40):
            student = f"s{(number + offset) % 60:02d}"  # overlapping ranges: the same results from several writers
            book.record(GradeResult(LAB, student, "d" * 64, "graded", "", 1.0, 4.0))
            book.register(LAB, {student: "d" * 64})


def test_the_gradebook_stays_consistent_under_concurrent_writers(tmp_path):
    path = str(tmp_path / "book.db")
    Gradebook(path).close()
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_record_many, args=(path, offset)) for offset in (0, 10, 20, 30)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0, 0, 0]
    book = sqlite3.connect(path)
    assert book.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert book.execute("SELECT COUNT(*), COUNT(DISTINCT student) FROM results").fetchone() == (60, 60)
    assert book.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_recording_a_result_twice_keeps_the_first_unless_replacing(tmp_path):
    with Gradebook(tmp_path / "book.db") as book:
        first = GradeResult(LAB, "alice", "d1", "graded", "", 1.0, 4.0)
        assert book.record(first) is True
        assert book.record(GradeResult(LAB, "alice", "d1", "graded", "", 4.0, 4.0)) is False
        assert [r.score for r in book.results(LAB)] == [1.0]
        assert book.record(GradeResult(LAB, "alice", "d1", "graded", "", 3.0, 4.0), replace=True) is True
        assert [r.score for r in book.results(LAB)] == [3.0]


def test_an_unknown_engine_is_refused(graded_class):
    _, _, assignment, submissions, _ = graded_class
    with pytest.raises(ValueError, match="engine 'spark' is not one of local, dask"):
        autograde_class(assignment, submissions, None, engine="spark")


def test_a_student_folder_without_the_notebook_is_recorded_as_malformed(tmp_path, graded_class):
    _, _, assignment, _, _ = graded_class
    (tmp_path / "submitted" / "empty" / LAB).mkdir(parents=True)
    [submission] = collect_submissions(tmp_path, LAB)
    assert submission == Submission(LAB, "empty", b"")
    with Gradebook(tmp_path / "book.db") as book:
        [result] = autograde_class(assignment, [submission], book, workers=1).recorded
    assert (result.status, result.score) == ("malformed", 0.0) and "not JSON" in result.reason
