"""The adversarial corpus (grading/submissions/adversarial/*.yml), graded beside honest submissions.

Every attack gets exactly its expected score and status (no credit for cheating, the honest part's
credit when there is one), the grader finishes with one result per submission, and the honest
submissions graded beside the attacks get the same results as when they are graded alone. The course
directory lies outside /tmp, so that only the grader's hiding keeps it from the sandbox, and the
attacks are given its real paths (``{{placeholders}}``): a white-box attacker.
"""

import json
import os
import shutil
import socket
import sqlite3
import threading
import uuid
from pathlib import Path

import psutil
import pytest

import dslearn
from dslearn.course.cells import BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS, source_text
from dslearn.course.syllabus import find_course_root
from dslearn.grading.attacks import ATTACKS_DIR, build_attack, load_attacks
from dslearn.grading.gradebook import GRADEBOOK_FILE, Gradebook
from dslearn.grading.grader import Assignment, Submission
from dslearn.grading.pool import autograde_class
from dslearn.grading.samples import SAMPLES_DIR, apply_sample, load_sample
from dslearn.grading.sandbox import Limits
from dslearn.grading.workflow import CONFIG_FILE, GradingCourse

ROOT = find_course_root()
LAB = "00-welcome"
ATTACKS = load_attacks(ROOT / ATTACKS_DIR)
LIMITS = Limits(cell_seconds=5, call_seconds=2, wall_seconds=40, cpu_seconds=12, memory_mb=2048,
                address_space_mb=4096, processes=16, output_mb=4, file_size_mb=16, tmpfs_mb=32)
RIGHT = """
def mean_squared_error(pred, target):
    if pred.shape != target.shape:
        raise ValueError("shapes differ")
    return ((pred - target) * (pred - target)).mean()
"""
HONEST = {"honest-solution": 4.0, "honest-forgot-the-mean": 2.0, "honest-mean-over-first-axis": 3.0}

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox (own uid per submission) needs root")]


def outside_tmp() -> Path:
    """A fresh folder outside /tmp (the sandbox gets a private /tmp, which would hide a course there anyway)."""
    base = Path("/var/lib/dslearn-grading-tests")
    base.mkdir(mode=0o755, exist_ok=True)
    folder = base / uuid.uuid4().hex[:12]
    folder.mkdir(mode=0o755)
    return folder


def serve_the_solution(listener: socket.socket, accepted: list) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        accepted.append(True)
        connection.sendall(RIGHT.encode())
        connection.close()


def files_mentioning(folder: Path, marker: str) -> list[str]:
    return [str(p) for p in sorted(folder.rglob("*.py")) if marker in p.read_text(errors="replace")]


@pytest.fixture(scope="module")
def graded():
    """Grade the honest submissions alone, then everything together with two workers; return what happened."""
    course_dir = outside_tmp()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []
    threading.Thread(target=serve_the_solution, args=(listener, accepted), daemon=True).start()
    canary = Path("/var/tmp") / f"dslearn-canary-{uuid.uuid4().hex}"
    try:
        shutil.copytree(ROOT / "labs" / LAB, course_dir / "labs" / LAB)
        course = GradingCourse(course_dir, config_file=ROOT / CONFIG_FILE)
        released = json.loads((course.generate(LAB) / f"{LAB}.ipynb").read_text())
        source = (course_dir / "labs" / LAB / f"{LAB}.ipynb").read_bytes()
        honest = {"honest-solution": source}
        for name in ("forgot-the-mean", "mean-over-first-axis"):
            sample = load_sample(ROOT / SAMPLES_DIR / LAB / f"{name}.yml")
            honest[f"honest-{name}"] = json.dumps(apply_sample(released, sample)).encode()
        for student, notebook in honest.items():
            folder = course.folder("submitted", LAB, student)
            folder.mkdir(parents=True)
            (folder / f"{LAB}.ipynb").write_bytes(notebook)
        dslearn_dir = Path(dslearn.__file__).parent
        context = {"course_dir": course_dir, "source_notebook": course_dir / "labs" / LAB / f"{LAB}.ipynb",
                   "probe_file": ROOT / "grading" / "probes" / f"{LAB}.py", "gradebook": course_dir / GRADEBOOK_FILE,
                   "other_submission": course.folder("submitted", LAB, "honest-solution") / f"{LAB}.ipynb",
                   "dslearn_dir": dslearn_dir, "canary": canary, "port": listener.getsockname()[1]}
        attacks = [Submission(LAB, a.name, build_attack(released, a, context)) for a in ATTACKS]
        honest_submissions = [Submission(LAB, student, notebook) for student, notebook in honest.items()]
        assignment = Assignment.load(course_dir, LAB, limits=LIMITS)
        with Gradebook(course_dir / "alone.db") as alone_book:
            alone = autograde_class(assignment, honest_submissions, alone_book, workers=1)
        with Gradebook(course_dir / GRADEBOOK_FILE) as book:
            together = autograde_class(assignment, attacks + honest_submissions, book, workers=2)
            current = book.current(LAB)
        yield {"alone": {r.student: r for r in alone.recorded}, "together": together, "current": current,
               "accepted": accepted, "canary": canary, "patched": files_mentioning(dslearn_dir, str(canary)),
               "course_dir": course_dir, "source": json.loads(source)}
    finally:
        listener.close()
        canary.unlink(missing_ok=True)
        shutil.rmtree(course_dir, ignore_errors=True)


def test_the_corpus_has_at_least_twenty_attacks_of_many_kinds():
    assert len(ATTACKS) >= 20
    assert len({attack.attack for attack in ATTACKS}) >= 10
    for attack in ATTACKS:
        if attack.expected_cells:
            assert sum(attack.expected_cells.values()) == attack.expected_score, attack.name


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_every_attack_gets_its_expected_score_and_status(graded, attack):
    result = graded["current"][attack.name]
    assert (result.status, result.score) == (attack.expected_status, attack.expected_score), result.reason
    assert {g: c.score for g, c in result.cells.items() if g in attack.expected_cells} == attack.expected_cells
    if attack.expected_status != "graded":
        assert result.reason, "a failed run says why"


def test_the_grader_finishes_with_one_result_per_submission(graded):
    recorded = [r.student for r in graded["together"].recorded]
    assert sorted(recorded) == sorted([a.name for a in ATTACKS] + list(HONEST))
    assert set(graded["current"]) == set(recorded)


def test_honest_submissions_get_the_same_result_beside_the_attacks(graded):
    for student, score in HONEST.items():
        alone, together = graded["alone"][student], graded["current"][student]
        assert alone.score == together.score == score
        assert alone.status == together.status == "graded"
        assert {g: c.feedback for g, c in alone.cells.items()} == {g: c.feedback for g, c in together.cells.items()}


def test_nothing_reached_the_network_the_machine_or_dslearn(graded):
    assert graded["accepted"] == [], "a sandbox connected to the listener on 127.0.0.1"
    assert not graded["canary"].exists(), "a payload ran outside the sandbox"
    assert graded["patched"] == [], "an attack wrote into dslearn's files"


def test_the_gradebook_holds_what_the_grader_decided(graded):
    book = sqlite3.connect(graded["course_dir"] / GRADEBOOK_FILE)
    assert book.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = dict(book.execute("SELECT student, score FROM results").fetchall())
    assert rows == {r.student: r.score for r in graded["together"].recorded}
    assert len(book.execute("SELECT * FROM submissions").fetchall()) == len(rows)


def test_no_sandbox_process_outlives_its_submission(graded):
    uids = {r.isolation["uid"] for r in graded["together"].recorded if r.isolation.get("uid")}
    assert len(uids) >= len(ATTACKS) - 3  # every run that started had a uid of its own
    survivors = [p.info for p in psutil.process_iter(["pid", "uids", "name"]) if p.info["uids"].real in uids]
    assert survivors == []


def test_feedback_never_shows_hidden_tests_or_students_messages_for_them(graded):
    hidden_lines = set()
    for cell in graded["source"]["cells"]:
        text = source_text(cell)
        if BEGIN_HIDDEN_TESTS in text:
            region = text.split(BEGIN_HIDDEN_TESTS)[1].split(END_HIDDEN_TESTS)[0]
            hidden_lines |= {line.strip() for line in region.splitlines() if len(line.strip()) > 10}
    for result in graded["current"].values():
        for cell in result.cells.values():
            text = "\n".join(cell.feedback)
            assert not any(line in text for line in hidden_lines), (result.student, cell.grade_id)
    cells = graded["current"]["recovers-the-library-loss"].cells
    assert "is not callable" in "\n".join(cells["mse-visible"].feedback)  # the student's own message, visible
    assert "is not callable" not in "\n".join(cells["mse-hidden-values"].feedback)  # not for a hidden probe


def test_restored_and_duplicated_cells_are_noted(graded):
    notes = graded["current"]["duplicates-graded-cells"].notes
    assert any("mse-hidden-gradients appears more than once; the copy was dropped" in n for n in notes)
    assert any("mse-answer appears more than once; the copy ran as ordinary code" in n for n in notes)
    notes = graded["current"]["deletes-the-test-cells"].notes
    assert sum("was missing; restored from the source" in n for n in notes) == 4
