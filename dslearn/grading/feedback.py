"""Feedback without hidden tests: nbgrader's feedback step, and the sandboxed grader's feedback pages.

nbgrader builds feedback from the autograded notebook, which holds the hidden tests (restored from the
gradebook) and their tracebacks, which quote the failing lines. ``RedactHiddenTests`` removes every
hidden-tests region from the cell source and replaces the outputs of such a cell with the exception's
type and message only, so a student learns *that* a hidden test failed and its message, never its code.
grading/nbgrader_config.py adds it to ``GenerateFeedback.preprocessors``. ``markdown_feedback`` writes
the page of a sandboxed grade (``dslearn grade sandboxed-feedback``) from what the grader decided.

May import: the standard library, nbconvert, dslearn.course.cells, dslearn.grading.submission.

>>> import nbformat
>>> source = "# checks more shapes\\n### BEGIN HIDDEN TESTS\\nassert f(2) == 4\\n### END HIDDEN TESTS"
>>> cell = nbformat.v4.new_code_cell(source)
>>> cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=["assert f(2) == 4"])]
>>> redacted, _ = RedactHiddenTests().preprocess_cell(cell, {}, 0)
>>> redacted.source, redacted.outputs[0].traceback
('# checks more shapes', ['AssertionError', '(the traceback of a hidden test is not shown)'])
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from dslearn.course.cells import has_hidden_tests, source_text
from dslearn.grading.submission import remove_hidden_regions


class RedactHiddenTests(Preprocessor):
    """Strip hidden tests, and outputs that could quote them, from every cell that holds some."""

    enabled = Bool(True, help="nbconvert runs a registered preprocessor only when it is enabled").tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if cell.get("cell_type") != "code" or not has_hidden_tests(cell):
            return cell, resources
        cell.source = remove_hidden_regions(source_text(cell))
        errors = [output for output in cell.get("outputs", []) if output.get("output_type") == "error"]
        for output in errors:
            message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}".rstrip(": ")
            output["traceback"] = [message, "(the traceback of a hidden test is not shown)"]
        cell.outputs = errors
        return cell, resources


def markdown_feedback(result) -> str:
    """A student's feedback page for a sandboxed grade (a ``dslearn.grading.grader.GradeResult``), in Markdown.

    It shows the score per cell and each probe's description with passed or failed and why, as the
    grader decided it; never a hidden test's code, its inputs or its expected values.

    >>> from types import SimpleNamespace as Result
    >>> cell = Result(grade_id="t", score=0.0, max_score=1.0, feedback=("failed: a 2-d input: wrong value",))
    >>> print(markdown_feedback(Result(lab_id="00-welcome", student="alice", status="graded", reason="",
    ...                                score=0.0, max_score=1.0, cells={"t": cell}, notes=())))
    # 00-welcome: alice
    <BLANKLINE>
    **Score: 0 / 1**
    <BLANKLINE>
    ## t: 0 / 1
    <BLANKLINE>
    - failed: a 2-d input: wrong value
    """
    lines = [f"# {result.lab_id}: {result.student}", "", f"**Score: {result.score:g} / {result.max_score:g}**"]
    if result.status != "graded":
        lines += ["", f"Grading did not finish ({result.status}): {result.reason}"]
    if result.notes:
        lines += ["", "What the grader changed in your notebook before running it:", ""]
        lines += [f"- {note}" for note in result.notes]
    for cell in result.cells.values():
        lines += ["", f"## {cell.grade_id}: {cell.score:g} / {cell.max_score:g}", ""]
        lines += [f"- {line}" for line in cell.feedback]
    return "\n".join(lines)
