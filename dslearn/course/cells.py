"""What a lab notebook's cells are for, read from their nbgrader metadata and tags, and how they ran.

nbgrader marks a cell with ``metadata.nbgrader``: an *autograded answer* is a code cell with
``solution: true, grade: false``; an *autograder tests* cell has ``grade: true, solution: false`` and
``points``; a *manually graded answer* has both. The papermill parameters cell carries the tag
``parameters``. A notebook without nbgrader metadata can mark its test cells with the tag ``tests``.

A cell's outcome in an executed notebook: ``failed`` if it has an error output, ``passed`` if it ran
(it has an execution count) without one, ``not run`` otherwise (execution stopped before it).

May import: the standard library.

>>> tests = {"cell_type": "code", "source": "assert True", "execution_count": 3, "outputs": [],
...          "metadata": {"nbgrader": {"grade": True, "solution": False, "grade_id": "t", "points": 1}}}
>>> is_test_cell(tests), cell_outcome(tests)
(True, 'passed')
"""

from __future__ import annotations

from collections.abc import Mapping

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN_TESTS = "### BEGIN HIDDEN TESTS"
END_HIDDEN_TESTS = "### END HIDDEN TESTS"
PARAMETERS_TAG = "parameters"
TESTS_TAG = "tests"
NBGRADER_SCHEMA_VERSION = 3

PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"


def nbgrader_metadata(cell: Mapping) -> Mapping:
    """The cell's nbgrader metadata (empty when it has none)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def tags(cell: Mapping) -> list[str]:
    """The cell's tags."""
    return list(cell.get("metadata", {}).get("tags", []))


def is_autograded_answer(cell: Mapping) -> bool:
    """A code cell the student fills in and the tests after it grade."""
    meta = nbgrader_metadata(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("solution")) and not meta.get("grade")


def is_test_cell(cell: Mapping) -> bool:
    """An autograder tests cell (nbgrader ``grade`` without ``solution``) or a code cell tagged ``tests``."""
    if cell.get("cell_type") != "code":
        return False
    meta = nbgrader_metadata(cell)
    return (bool(meta.get("grade")) and not meta.get("solution")) or TESTS_TAG in tags(cell)


def is_parameters_cell(cell: Mapping) -> bool:
    """The papermill parameters cell."""
    return cell.get("cell_type") == "code" and PARAMETERS_TAG in tags(cell)


def source_text(cell: Mapping) -> str:
    """The cell's source as one string (nbformat allows a list of lines on disk)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def has_hidden_tests(cell: Mapping) -> bool:
    """Whether the cell holds a hidden-tests region."""
    return BEGIN_HIDDEN_TESTS in source_text(cell)


def cell_outcome(cell: Mapping) -> str:
    """``passed``, ``failed`` or ``not run`` for a code cell of an executed notebook."""
    if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
        return FAILED
    return PASSED if cell.get("execution_count") is not None else NOT_RUN


def cell_label(index: int, cell: Mapping) -> str:
    """How a report names a cell: its position and, when it has one, its grade id."""
    grade_id = nbgrader_metadata(cell).get("grade_id")
    return f"cell {index}" + (f" ({grade_id})" if grade_id else "")
