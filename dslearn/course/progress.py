"""Where a student is on the path, read from the lab notebooks in their folder as last saved.

The rule is simple and says only what the files show:

- ``coming``: the lab is not written yet (syllabus status).
- ``not in your folder``: there is no ``<labs_dir>/<id>/<id>.ipynb``.
- ``not started``: none of its visible test cells has been run in the saved notebook.
- ``in progress``: some visible test cells have been run, but not all of them passed.
- ``visible tests pass``: every visible test cell ran without an error when the notebook was last saved.

A *visible* test cell is a test cell with code in the student's copy (hidden-test cells hold only a
comment there). Hidden tests run only when the instructor grades, so "visible tests pass" is not a grade.

May import: the standard library, dslearn.course.

>>> from dslearn.course.syllabus import Lab
>>> lab = Lab("01-next", "Next", "coming", 6, (), ("Learn.",), "beginner", "basics")
>>> lab_progress(lab, "/nonexistent").state
'coming'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dslearn.course.cells import FAILED, PASSED, cell_outcome, is_test_cell, source_text
from dslearn.course.syllabus import Lab, Syllabus, find_course_root, load_syllabus

COMING, ABSENT, NOT_STARTED, IN_PROGRESS, VISIBLE_PASS = (
    "coming", "not in your folder", "not started", "in progress", "visible tests pass")


@dataclass(frozen=True)
class LabProgress:
    """One lab's state and its visible test cells passed out of those in the notebook."""

    lab: Lab
    state: str
    tests_passed: int = 0
    tests_total: int = 0


def has_code(cell: dict) -> bool:
    """Whether a cell holds anything but comments and blank lines.

    >>> has_code({"source": "# Hidden tests: other shapes"}), has_code({"source": "assert f(1) == 2"})
    (False, True)
    """
    return any(line.strip() and not line.strip().startswith("#") for line in source_text(cell).splitlines())


def lab_progress(lab: Lab, labs_dir: Path | str) -> LabProgress:
    """The state of one lab in a student's folder (see the module docstring)."""
    if not lab.available:
        return LabProgress(lab, COMING)
    path = Path(labs_dir) / lab.id / f"{lab.id}.ipynb"
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return LabProgress(lab, ABSENT)
    outcomes = [cell_outcome(cell) for cell in cells if is_test_cell(cell) and has_code(cell)]
    passed = outcomes.count(PASSED)
    if not any(outcome in (PASSED, FAILED) for outcome in outcomes):
        state = NOT_STARTED
    else:
        state = VISIBLE_PASS if passed == len(outcomes) else IN_PROGRESS
    return LabProgress(lab, state, passed, len(outcomes))


def course_progress(syllabus: Syllabus, labs_dir: Path | str) -> list[LabProgress]:
    """Every lab's state, in path order."""
    return [lab_progress(lab, labs_dir) for lab in syllabus.labs()]


def progress_markdown(progress: list[LabProgress]) -> str:
    """A Markdown table of the states, with a one-line summary.

    >>> from dslearn.course.syllabus import Lab
    >>> lab = Lab("00-welcome", "Welcome", "available", 2, (), ("Start.",), "beginner", "basics")
    >>> print(progress_markdown([LabProgress(lab, VISIBLE_PASS, 1, 1)]))
    **1 of 1 available labs with all visible tests passing** (as last saved; hidden tests run at grading).
    <BLANKLINE>
    | lab | level | state | visible test cells passing |
    |---|---|---|---:|
    | 00-welcome · Welcome | beginner | visible tests pass | 1 / 1 |
    """
    available = [p for p in progress if p.state != COMING]
    done = sum(p.state == VISIBLE_PASS for p in available)
    lines = [f"**{done} of {len(available)} available labs with all visible tests passing** "
             "(as last saved; hidden tests run at grading).", "",
             "| lab | level | state | visible test cells passing |", "|---|---|---|---:|"]
    for p in progress:
        count = f"{p.tests_passed} / {p.tests_total}" if p.state not in (COMING, ABSENT) else ""
        lines.append(f"| {p.lab.id} · {p.lab.title} | {p.lab.level} | {p.state} | {count} |")
    return "\n".join(lines)


def show_progress(labs_dir: Path | str | None = None, root: Path | str | None = None) -> None:
    """Display the progress table in a notebook (print it elsewhere); ``labs_dir`` defaults to ``<root>/labs``."""
    root = find_course_root() if root is None else Path(root)
    progress = course_progress(load_syllabus(root), Path(labs_dir) if labs_dir is not None else root / "labs")
    text = progress_markdown(progress)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
    else:
        if get_ipython() is None:
            print(text)
        else:
            display(Markdown(text))
