"""Adversarial submissions: notebooks that try to cheat or to break the grader, with the score they must get.

``grading/submissions/adversarial/<name>.yml`` describes one attack on a lab's released notebook::

    description: Monkeypatches NumPy's comparisons, then forgets the mean.
    attack: tampering          # what kind of attack (the README's table groups them)
    lab: 00-welcome
    expected_score: 2          # what the sandboxed grader must give: the honest part, nothing for the attack
    expected_cells: {mse-visible: 0, mse-hidden-values: 0, mse-hidden-gradients: 1, mse-hidden-own-work: 1}
    expected_status: graded    # optional: timeout, memory, output, crash or malformed when the attack ends the run
    cells: {mse-answer: "..."} # grade id -> new source (as in sample submissions)
    insert: [{after: mse-answer, source: "..."}]   # new cells after a graded cell
    delete: [mse-visible]      # graded cells removed
    duplicate: [mse-visible]   # graded cells copied (the copy right after the original)
    notebook: "..."            # the whole submitted file instead of a notebook (malformed submissions)

Sources may name the course under attack with placeholders a white-box attacker would know:
``{{course_dir}}``, ``{{source_notebook}}``, ``{{probe_file}}``, ``{{gradebook}}``,
``{{other_submission}}``, ``{{dslearn_dir}}``, ``{{canary}}`` (a file that must never appear) and
``{{port}}`` (a listener on 127.0.0.1 that would hand out the solution). ``build_attack`` fills them in.

May import: the standard library, yaml, dslearn.course, dslearn.grading.samples.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dslearn.course.cells import nbgrader_metadata
from dslearn.grading.samples import SampleError

ATTACKS_DIR = Path("grading") / "submissions" / "adversarial"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
FIELDS = {"description", "attack", "lab", "expected_score", "expected_cells", "expected_status", "cells", "insert",
          "delete", "duplicate", "notebook"}


@dataclass(frozen=True)
class Attack:
    """One adversarial submission and what it must score."""

    name: str
    description: str
    attack: str
    lab: str
    expected_score: float
    expected_cells: dict = field(default_factory=dict)
    expected_status: str = "graded"
    cells: dict = field(default_factory=dict)
    insert: tuple = ()
    delete: tuple = ()
    duplicate: tuple = ()
    notebook: str | None = None


def load_attack(path: Path | str) -> Attack:
    """Read one attack file; ``SampleError`` names the file and field of a mistake."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SampleError(f"{path}: expected a mapping")
    for key in data:
        if key not in FIELDS:
            raise SampleError(f"{path}: {key}: unknown field; expected one of {', '.join(sorted(FIELDS))}")
    for key in ("description", "attack", "lab", "expected_score"):
        if key not in data:
            raise SampleError(f"{path}: {key}: missing")
    if not any(key in data for key in ("cells", "insert", "delete", "duplicate", "notebook")):
        raise SampleError(f"{path}: nothing to change: give cells, insert, delete, duplicate or notebook")
    inserts = data.get("insert") or []
    if not all(isinstance(i, dict) and set(i) == {"after", "source"} for i in inserts):
        raise SampleError(f"{path}: insert: expected a list of {{after: grade id, source: text}}")
    return Attack(path.stem, str(data["description"]).strip(), str(data["attack"]), str(data["lab"]),
                  float(data["expected_score"]), dict(data.get("expected_cells") or {}),
                  str(data.get("expected_status", "graded")), dict(data.get("cells") or {}),
                  tuple((i["after"], i["source"]) for i in inserts), tuple(data.get("delete") or ()),
                  tuple(data.get("duplicate") or ()), data.get("notebook"))


def load_attacks(folder: Path | str) -> list[Attack]:
    """Every attack in a folder, by name.

    >>> from dslearn.course.syllabus import find_course_root
    >>> len(load_attacks(find_course_root() / ATTACKS_DIR)) >= 20
    True
    """
    return [load_attack(path) for path in sorted(Path(folder).glob("*.yml"))]


def fill(text: str, context: dict[str, str]) -> str:
    """Replace ``{{name}}`` placeholders; an unknown name is an error.

    >>> fill("open('{{gradebook}}')", {"gradebook": "/g.db"})
    "open('/g.db')"
    """
    def value(match: re.Match) -> str:
        if match.group(1) not in context:
            raise SampleError(f"unknown placeholder {{{{{match.group(1)}}}}}; known: {', '.join(sorted(context))}")
        return str(context[match.group(1)])

    return PLACEHOLDER.sub(value, text)


def build_attack(released: dict, attack: Attack, context: dict[str, str]) -> bytes:
    """The submitted file: the released notebook changed as the attack says, placeholders filled in."""
    if attack.notebook is not None:
        return fill(attack.notebook, context).encode("utf-8")
    notebook = copy.deepcopy(released)
    cells = notebook["cells"]
    grade_id = lambda cell: nbgrader_metadata(cell).get("grade_id")
    position = lambda wanted: next(i for i, cell in enumerate(cells) if grade_id(cell) == wanted)
    for wanted, source in attack.cells.items():
        cells[position(wanted)]["source"] = fill(source, context)
    for wanted in attack.duplicate:
        cells.insert(position(wanted) + 1, copy.deepcopy(cells[position(wanted)]))
    for wanted, source in attack.insert:
        cells.insert(position(wanted) + 1, {"cell_type": "code", "execution_count": None, "metadata": {},
                                            "outputs": [], "source": fill(source, context)})
    notebook["cells"] = [cell for cell in cells if grade_id(cell) not in attack.delete]
    return json.dumps(notebook, indent=1).encode("utf-8")
