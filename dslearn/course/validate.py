"""Check the course before anyone grades it: the syllabus, the lab folders, every lab notebook's metadata.

A lab notebook must: be valid nbformat, be committed without outputs, have one ``parameters`` cell that
sets ``FAST``, open with a "Learning objectives" list equal to its syllabus entry's, give every nbgrader
cell schema version 3 and a unique grade id, give every graded cell positive points, keep solution
markers in solution cells and hidden-test markers in test cells (balanced), follow every autograded
answer with at least one test cell, hold at least one hidden-tests region, import plotly (a figure), import
ipywidgets (a control), and check ``NBGRADER_EXECUTION`` so that widgets stay out of the grader's way.

May import: the standard library, nbformat, dslearn.course.

>>> print(Problem("labs/00-welcome/00-welcome.ipynb", "cell 3 (mse-answer)", "no tests cell after it"))
labs/00-welcome/00-welcome.ipynb: cell 3 (mse-answer): no tests cell after it
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dslearn.course.cells import (
    BEGIN_HIDDEN_TESTS,
    BEGIN_SOLUTION,
    END_HIDDEN_TESTS,
    END_SOLUTION,
    NBGRADER_SCHEMA_VERSION,
    cell_label,
    has_hidden_tests,
    is_autograded_answer,
    is_parameters_cell,
    is_test_cell,
    nbgrader_metadata,
    source_text,
)
from dslearn.course.syllabus import Lab, SyllabusError, load_syllabus

OBJECTIVES_HEADING = re.compile(r"^#+\s*Learning objectives\s*$", re.IGNORECASE | re.MULTILINE)
BULLET = re.compile(r"^\s*[-*]\s+(.+?)\s*$")
IMPORTS_PLOTLY = re.compile(r"^\s*(import|from)\s+plotly\b", re.MULTILINE)
IMPORTS_WIDGETS = re.compile(r"^\s*(import|from)\s+ipywidgets\b", re.MULTILINE)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with the file and (when it is about one) the cell."""

    path: str
    where: str
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.path, self.where, self.message) if part)


def validate_course(root: Path) -> list[Problem]:
    """Every problem in the syllabus, the labs/ folder and the notebooks of the available labs."""
    root = Path(root)
    try:
        syllabus = load_syllabus(root)
    except SyllabusError as error:
        return [Problem("", "", str(error))]
    problems = []
    known = {lab.id: lab for lab in syllabus.labs()}
    labs_dir = root / "labs"
    for folder in sorted(p for p in labs_dir.iterdir() if p.is_dir()) if labs_dir.is_dir() else []:
        if folder.name not in known and not folder.name.startswith((".", "_")):
            problems.append(Problem(f"labs/{folder.name}", "", "no syllabus entry in course/syllabus.yml"))
    for lab in syllabus.labs():
        notebook = root / lab.notebook
        if lab.available and not notebook.is_file():
            problems.append(Problem(lab.notebook.as_posix(), "", f"lab {lab.id} is available in the syllabus "
                                    "but its notebook is missing"))
        elif not lab.available and notebook.is_file():
            problems.append(Problem(lab.notebook.as_posix(), "", f"lab {lab.id} is marked 'coming' in the syllabus "
                                    "but its notebook exists: mark it available"))
        elif lab.available:
            problems += validate_notebook(notebook, lab, display_path=lab.notebook.as_posix())
    return problems


def validate_notebook(path: Path, lab: Lab, display_path: str | None = None) -> list[Problem]:
    """Every problem in one lab notebook (see the module docstring for the rules)."""
    import nbformat

    shown = display_path or str(path)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        nbformat.validate(nbformat.from_dict(raw))
    except (OSError, ValueError, nbformat.ValidationError) as error:
        return [Problem(shown, "", f"not a valid notebook: {str(error).splitlines()[0]}")]
    cells = raw["cells"]
    checks = _NotebookChecks(shown, cells)
    checks.outputs()
    checks.parameters()
    checks.objectives(lab)
    checks.nbgrader_cells()
    checks.answers_have_tests()
    checks.course_features()
    if raw.get("metadata", {}).get("kernelspec", {}).get("language", "python") != "python":
        checks.add("", "the kernel must be a Python kernel")
    return checks.problems


class _NotebookChecks:
    """The rules of ``validate_notebook``, one method each, collecting problems."""

    def __init__(self, path: str, cells: list[Mapping]):
        self.path = path
        self.cells = cells
        self.problems: list[Problem] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.path, where, message))

    def outputs(self) -> None:
        for i, cell in enumerate(self.cells):
            if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
                self.add(cell_label(i, cell), "has outputs or an execution count: commit notebooks without outputs")

    def parameters(self) -> None:
        found = [i for i, cell in enumerate(self.cells) if is_parameters_cell(cell)]
        if len(found) != 1:
            self.add("", f"expected one code cell tagged 'parameters' (papermill), found {len(found)}")
        elif not re.search(r"^FAST\s*=", source_text(self.cells[found[0]]), re.MULTILINE):
            self.add(cell_label(found[0], self.cells[found[0]]), "the parameters cell must set FAST")

    def objectives(self, lab: Lab) -> None:
        for i, cell in enumerate(self.cells):
            text = source_text(cell)
            if cell.get("cell_type") == "markdown" and OBJECTIVES_HEADING.search(text):
                after = text[OBJECTIVES_HEADING.search(text).end():]
                bullets = []
                for line in after.strip("\n").splitlines():
                    match = BULLET.match(line)
                    if not match:
                        break
                    bullets.append(match.group(1))
                if bullets != list(lab.objectives):
                    self.add(cell_label(i, cell), f"the learning objectives differ from course/syllabus.yml "
                             f"(lab {lab.id}); notebook: {bullets}, syllabus: {list(lab.objectives)}")
                return
        self.add("", "no 'Learning objectives' section in a markdown cell")

    def nbgrader_cells(self) -> None:
        seen: dict[str, int] = {}
        for i, cell in enumerate(self.cells):
            meta = nbgrader_metadata(cell)
            text = source_text(cell)
            where = cell_label(i, cell)
            if meta:
                if meta.get("schema_version") != NBGRADER_SCHEMA_VERSION:
                    self.add(where, f"nbgrader schema_version must be {NBGRADER_SCHEMA_VERSION}, "
                             f"got {meta.get('schema_version')!r}")
                for key in ("grade", "solution", "locked"):
                    if not isinstance(meta.get(key), bool):
                        self.add(where, f"nbgrader metadata needs a boolean {key!r}")
                grade_id = meta.get("grade_id")
                if not grade_id:
                    self.add(where, "nbgrader cell without a grade_id")
                elif grade_id in seen:
                    self.add(where, f"grade_id {grade_id!r} is also used by cell {seen[grade_id]}")
                else:
                    seen[grade_id] = i
                points = meta.get("points")
                if meta.get("grade") and (isinstance(points, bool) or not isinstance(points, (int, float))
                                          or points <= 0):
                    self.add(where, f"a graded cell needs positive points, got {points!r}")
            self._markers(where, text, BEGIN_SOLUTION, END_SOLUTION, allowed=bool(meta.get("solution")),
                          role="a solution cell (nbgrader solution: true)")
            self._markers(where, text, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS, allowed=is_test_cell(cell),
                          role="an autograder tests cell (nbgrader grade: true, solution: false)")
            if is_autograded_answer(cell) and BEGIN_SOLUTION not in text:
                self.add(where, f"autograded answer without a '{BEGIN_SOLUTION}' region")

    def _markers(self, where: str, text: str, begin: str, end: str, allowed: bool, role: str) -> None:
        if begin not in text and end not in text:
            return
        if not allowed:
            self.add(where, f"'{begin}' markers belong in {role}")
            return
        depth = 0
        for line in text.splitlines():
            if begin in line:
                depth += 1
            elif end in line:
                depth -= 1
            if depth not in (0, 1):
                break
        if depth != 0:
            self.add(where, f"unbalanced '{begin}' / '{end}' markers")

    def answers_have_tests(self) -> None:
        answers = [i for i, cell in enumerate(self.cells) if is_autograded_answer(cell)]
        for k, i in enumerate(answers):
            following = self.cells[i + 1: answers[k + 1] if k + 1 < len(answers) else len(self.cells)]
            if not any(is_test_cell(cell) for cell in following):
                self.add(cell_label(i, self.cells[i]), "autograded answer without a tests cell after it")
        if not any(has_hidden_tests(cell) for cell in self.cells if is_test_cell(cell)):
            self.add("", "no hidden tests: grading must probe inputs the student never sees")

    def course_features(self) -> None:
        code = "\n".join(source_text(cell) for cell in self.cells if cell.get("cell_type") == "code")
        if not IMPORTS_PLOTLY.search(code):
            self.add("", "no plotly figure: every lab has at least one")
        if not IMPORTS_WIDGETS.search(code):
            self.add("", "no ipywidgets control: every lab has at least one")
        if "NBGRADER_EXECUTION" not in code:
            self.add("", "the lab never checks NBGRADER_EXECUTION, so widgets would run under the autograder")
