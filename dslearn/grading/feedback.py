"""Feedback without hidden tests: an nbconvert preprocessor that nbgrader's feedback step runs.

nbgrader builds feedback from the autograded notebook, which holds the hidden tests (restored from the
gradebook) and their tracebacks, which quote the failing lines. ``RedactHiddenTests`` removes every
hidden-tests region from the cell source and replaces the outputs of such a cell with the exception's
type and message only, so a student learns *that* a hidden test failed and its message, never its code.
grading/nbgrader_config.py adds it to ``GenerateFeedback.preprocessors``.

May import: the standard library, nbconvert, dslearn.course.cells.

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

from dslearn.course.cells import BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS, has_hidden_tests, source_text


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
