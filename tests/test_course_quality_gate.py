"""The quality gate every available lab passes, end to end with papermill and nbgrader.

For each lab of the syllabus with status ``available``:
1. the source notebook executes headlessly in fast mode with every visible and hidden test passing,
   within the syllabus budget (time and memory);
2. ``nbgrader generate_assignment`` strips every solution line and every hidden test;
3. the untouched student version scores 0 on every autograded cell;
4. the source notebook submitted as a student scores full marks;
5. each wrong answer in grading/submissions/<lab>/ scores exactly its recorded score, below full marks;
6. feedback for a wrong answer never shows hidden-test code.
"""

import html
import json
import re

import pytest

from dslearn.course.cells import BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS, is_test_cell, source_text
from dslearn.course.runner import PASSED, run_lab
from dslearn.course.syllabus import find_course_root, load_syllabus
from dslearn.grading.samples import SAMPLES_DIR, SOLUTION, UNTOUCHED, check_lab, load_samples

ROOT = find_course_root()
SYLLABUS = load_syllabus(ROOT)
LABS = [lab.id for lab in SYLLABUS.available_labs()]
SAMPLES = [(lab_id, sample.name) for lab_id in LABS for sample in load_samples(ROOT / SAMPLES_DIR / lab_id)]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    """``gate(lab_id)``: the lab released, its untouched release, solution and samples autograded (once per lab)."""
    done = {}

    def checked(lab_id):
        if lab_id not in done:
            done[lab_id] = check_lab(lab_id, ROOT, tmp_path_factory.mktemp(f"gate-{lab_id}"))
        return done[lab_id]

    return checked


@pytest.fixture(params=LABS)
def checked(request, gate):
    return gate(request.param)


@pytest.mark.parametrize("lab_id", LABS)
def test_source_notebook_runs_headless_with_all_tests_passing(lab_id, tmp_path):
    run = run_lab(SYLLABUS.lab(lab_id), ROOT, tmp_path, fast=True, timeout=SYLLABUS.budget.seconds,
                  memory_limit_mb=SYLLABUS.budget.memory_mb)
    assert run.status == PASSED, run.error
    assert run.tests_passed > 0 and run.tests_failed == run.tests_not_run == 0


def test_release_strips_solutions_and_hidden_tests(checked):
    assert checked.leaks == []
    released = (checked.course.folder("release", checked.lab_id) / f"{checked.lab_id}.ipynb").read_text()
    assert "raise NotImplementedError()" in released


def test_untouched_student_version_scores_zero_on_every_cell(checked):
    untouched = checked.scores[UNTOUCHED]
    assert untouched.cells and all(cell.score == 0 for cell in untouched.cells.values())


def test_source_solution_scores_full_marks(checked):
    solution = checked.scores[SOLUTION]
    assert solution.max_score > 0 and solution.score == solution.max_score
    assert all(cell.score == cell.max_score for cell in solution.cells.values())


def test_wrong_answers_score_their_recorded_scores_below_full(checked):
    assert checked.problems() == []
    assert len(checked.samples) - len(checked.skipped) >= 3


@pytest.mark.parametrize("lab_id, sample", SAMPLES)
def test_each_wrong_answer_is_graded(gate, lab_id, sample):
    checked = gate(lab_id)
    if sample in checked.skipped:
        pytest.skip(checked.skipped[sample])
    expected = next(s for s in checked.samples if s.name == sample)
    got = checked.scores[sample]
    assert got.score == expected.expected_score < got.max_score
    assert {g: got.cells[g].score for g in expected.expected_cells} == expected.expected_cells


def test_feedback_never_shows_hidden_test_code(checked):
    wrong = next(s.name for s in checked.samples if s.name not in checked.skipped)
    [page] = checked.course.feedback(checked.lab_id, student=wrong)
    text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))  # the code as typed, highlighting removed
    source = json.loads((ROOT / "labs" / checked.lab_id / f"{checked.lab_id}.ipynb").read_text())
    hidden, visible = _test_lines(source)
    assert hidden and visible
    assert [line for line in visible if line in text] == visible  # the check can see code in the page...
    assert [line for line in hidden if line in text] == []  # ...and finds no hidden-test line
    assert "BEGIN HIDDEN TESTS" not in text


def _test_lines(notebook):
    """Distinctive lines of the test cells: (inside hidden-test regions, outside them)."""
    hidden, visible, inside = [], [], False
    for cell in notebook["cells"]:
        if not is_test_cell(cell):
            continue
        for line in source_text(cell).splitlines():
            if BEGIN_HIDDEN_TESTS in line:
                inside = True
            elif END_HIDDEN_TESTS in line:
                inside = False
            elif len(line.strip()) > 25 and not line.strip().startswith("#"):
                (hidden if inside else visible).append(line.strip())
    return hidden, visible
