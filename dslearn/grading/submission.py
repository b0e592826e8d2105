"""What runs for a submission: its cells, with every locked and test cell restored from the source notebook.

nbgrader restores test cells from its gradebook by grade id, and records a checksum of every locked
cell to notice edits. ``prepare`` does the same from the lab's source notebook, and decides the cases
nbgrader leaves open:

- a locked or test cell the student edited runs as the source has it (noted);
- a locked or test cell the student deleted is put back after the graded cell that precedes it in the
  source (noted); a deleted answer cell becomes ``raise NotImplementedError`` (noted);
- a graded cell duplicated by the student counts once: copies of a locked or test cell are dropped,
  copies of an answer cell run as the student's ordinary code (both noted);
- a cell with a grade id the source does not know runs as ordinary code;
- a test cell whose grade id has probes runs only its visible part (the probes replace its hidden
  tests, which never enter the sandbox); a test cell without probes runs in full, hidden tests
  included, and is scored in the kernel (nbgrader's way, which a student's code can tamper with).

``read_notebook`` refuses what is not a notebook (``MalformedNotebook``, with the reason).

May import: the standard library, dslearn.course.cells.

>>> source = {"cells": [{"cell_type": "code", "source": "assert f() == 1\\n### BEGIN HIDDEN TESTS\\nassert f(2) == 2\\n"
...                      "### END HIDDEN TESTS", "metadata": {"nbgrader": {"grade_id": "t", "grade": True,
...                      "solution": False, "locked": True, "points": 1}}}]}
>>> prepared = prepare(source, {"cells": []}, probed={"t"})
>>> prepared.cells[0].source, prepared.notes
('assert f() == 1', ['test cell t was missing; restored from the source'])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from dslearn.course.cells import BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS, nbgrader_metadata, source_text

MAX_NOTEBOOK_BYTES = 16 * 1024 * 1024
ANSWER, TESTS, LOCKED, STUDENT = "answer", "tests", "locked", "student"
LABELS = {ANSWER: "answer", TESTS: "test", LOCKED: "locked"}
MISSING_ANSWER = "raise NotImplementedError('the answer cell was missing from the submission')"


class MalformedNotebook(ValueError):
    """A submission that is not a notebook dslearn can grade; the message says why."""


@dataclass(frozen=True)
class PreparedCell:
    """One code cell to run: where it comes from and whether the kernel scores it."""

    source: str
    role: str  # answer, tests, locked or student
    grade_id: str | None = None
    scored_in_kernel: bool = False  # a test cell without probes: its hidden tests run in the sandbox


@dataclass
class Prepared:
    """The cells to run, in order, and what was restored, dropped or added."""

    cells: list[PreparedCell] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def remove_hidden_regions(source: str) -> str:
    """The source with every ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` region (markers included) cut.

    >>> remove_hidden_regions("visible\\n### BEGIN HIDDEN TESTS\\nsecret\\n### END HIDDEN TESTS\\nalso visible")
    'visible\\nalso visible'
    """
    kept, hidden = [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN_TESTS in line:
            hidden = True
        elif END_HIDDEN_TESTS in line:
            hidden = False
        elif not hidden:
            kept.append(line)
    return "\n".join(kept).strip("\n")


def read_notebook(data: bytes) -> dict:
    """Parse a submitted ``.ipynb``; raises ``MalformedNotebook`` unless it is a version-4 notebook.

    >>> read_notebook(b"not json")
    Traceback (most recent call last):
    ...
    dslearn.grading.submission.MalformedNotebook: not a notebook: the file is not JSON
    """
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise MalformedNotebook(f"not a notebook: {len(data)} bytes is over the limit of {MAX_NOTEBOOK_BYTES}")
    try:
        notebook = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise MalformedNotebook("not a notebook: the file is not JSON") from error
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise MalformedNotebook("not a notebook: no list of cells")
    if notebook.get("nbformat", 4) != 4:
        raise MalformedNotebook(f"not a notebook dslearn grades: nbformat {notebook.get('nbformat')!r}, expected 4")
    for index, cell in enumerate(notebook["cells"]):
        source = cell.get("source", "") if isinstance(cell, dict) else None
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str) or not (
                isinstance(source, str) or (isinstance(source, list) and all(isinstance(s, str) for s in source))):
            raise MalformedNotebook(f"not a notebook: cell {index} has no cell_type or no source text")
        if not isinstance(cell.get("metadata", {}), dict) or not isinstance(nbgrader_metadata(cell), dict):
            raise MalformedNotebook(f"not a notebook: cell {index} has malformed metadata")
    return notebook


def cell_role(cell: dict) -> str:
    """A source cell's role: answer (the student writes it), tests, locked (set-up), or student.

    >>> cell_role({"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "t", "grade": True}}})
    'tests'
    """
    meta = nbgrader_metadata(cell)
    if cell.get("cell_type") != "code" or not meta.get("grade_id"):
        return STUDENT
    if meta.get("solution"):
        return ANSWER
    if meta.get("grade"):
        return TESTS
    return LOCKED if meta.get("locked") else STUDENT


def graded_cells(source: dict) -> dict[str, float]:
    """The autograded test cells of a source notebook and their points, in order.

    >>> graded_cells({"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "t", "grade": True,
    ...                                                                          "points": 2}}}]})
    {'t': 2.0}
    """
    return {nbgrader_metadata(cell)["grade_id"]: float(nbgrader_metadata(cell).get("points", 0))
            for cell in source["cells"] if cell_role(cell) == TESTS}


def _restored(cell: dict, probed: set[str]) -> PreparedCell:
    grade_id, role = nbgrader_metadata(cell)["grade_id"], cell_role(cell)
    text = source_text(cell)
    if role == TESTS and grade_id in probed:
        return PreparedCell(remove_hidden_regions(text), role, grade_id)
    return PreparedCell(text, role, grade_id, scored_in_kernel=role == TESTS)


def prepare(source: dict, submitted: dict, probed: set[str] = frozenset()) -> Prepared:
    """The cells to run for a submission: the student's, with locked and test cells restored from ``source``."""
    by_id = {nbgrader_metadata(c)["grade_id"]: c for c in source["cells"] if cell_role(c) != STUDENT}
    prepared, placed = Prepared(), {}
    for cell in submitted["cells"]:
        if cell.get("cell_type") != "code":
            continue
        grade_id = nbgrader_metadata(cell).get("grade_id")
        original = by_id.get(grade_id) if isinstance(grade_id, str) else None
        text = source_text(cell)
        if original is None:
            prepared.cells.append(PreparedCell(text, STUDENT))
            continue
        role = cell_role(original)
        if grade_id in placed:
            prepared.notes.append(f"cell {grade_id} appears more than once; "
                                  + ("the copy ran as ordinary code" if role == ANSWER else "the copy was dropped"))
            if role == ANSWER:
                prepared.cells.append(PreparedCell(text, STUDENT))
            continue
        placed[grade_id] = True
        if role == ANSWER:
            prepared.cells.append(PreparedCell(text, ANSWER, grade_id))
            continue
        if text.strip() not in (source_text(original).strip(), remove_hidden_regions(source_text(original)).strip()):
            prepared.notes.append(f"{LABELS[role]} cell {grade_id} was edited; it ran as the source has it")
        prepared.cells.append(_restored(original, probed))
    _restore_missing(source, prepared, probed, placed)
    return prepared


def _restore_missing(source: dict, prepared: Prepared, probed: set[str], placed: dict) -> None:
    """Put back deleted graded cells, each after the graded cell that precedes it in the source."""
    previous = None
    for cell in source["cells"]:
        role = cell_role(cell)
        if role == STUDENT:
            continue
        grade_id = nbgrader_metadata(cell)["grade_id"]
        if grade_id not in placed:
            if role == ANSWER:
                restored = PreparedCell(MISSING_ANSWER, ANSWER, grade_id)
                prepared.notes.append(f"answer cell {grade_id} was missing; it ran as `raise NotImplementedError`")
            else:
                restored = _restored(cell, probed)
                prepared.notes.append(f"{LABELS[role]} cell {grade_id} was missing; "
                                      "restored from the source")
            positions = [i for i, c in enumerate(prepared.cells) if c.grade_id == previous]
            prepared.cells.insert(positions[-1] + 1 if positions else 0, restored)
            placed[grade_id] = True
        previous = grade_id
