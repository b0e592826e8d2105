"""Sample submissions with expected scores, and the end-to-end check every lab passes before students see it.

A sample is a small YAML file, ``grading/submissions/<lab-id>/<name>.yml``, that says what a student
wrote in which cells of the *released* notebook and what it must score::

    description: Sums the squared errors instead of averaging them.
    expected_score: 2            # total points nbgrader must give it (below full marks)
    expected_cells:              # optional: points per graded cell
      mse-visible: 0
    requires: []                 # optional: dotted names that must exist, else the sample is skipped
    cells:                       # grade id -> the cell's new source
      mse-answer: |
        def mean_squared_error(pred, target):
            return ((pred - target) ** 2).sum()

``check_lab`` copies a lab into a scratch course directory, generates the student version, checks that
no solution or hidden-test line survived, submits the untouched release, the source notebook (the
instructor's solution) and every sample, autogrades them all and reports what disagrees with the
expectations: the untouched release must score 0 on every cell, the solution full marks, each sample
exactly its expected score.

May import: the standard library, yaml, dslearn.course, dslearn.grading.

>>> missing_requirements(["dslearn.tensor.Tensor", "dslearn.no_such_thing"])
['dslearn.no_such_thing']
"""

from __future__ import annotations

import copy
import importlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dslearn.course.cells import (
    BEGIN_HIDDEN_TESTS,
    BEGIN_SOLUTION,
    END_HIDDEN_TESTS,
    END_SOLUTION,
    nbgrader_metadata,
    source_text,
)
from dslearn.grading.workflow import CONFIG_FILE, GradingCourse, SubmissionScore

SAMPLES_DIR = Path("grading") / "submissions"
UNTOUCHED, SOLUTION = "untouched-release", "source-solution"
MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS)


class SampleError(ValueError):
    """A sample file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class SampleSubmission:
    """One sample: which cells it rewrites and what it must score."""

    name: str
    path: Path
    description: str
    expected_score: float
    cells: dict[str, str]
    expected_cells: dict[str, float] = field(default_factory=dict)
    requires: tuple[str, ...] = ()


def load_sample(path: Path | str) -> SampleSubmission:
    """Read and check one sample file."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    allowed = {"description", "expected_score", "expected_cells", "requires", "cells"}

    def fail(field_name: str, message: str):
        raise SampleError(f"{path}: {field_name}: {message}")

    if not isinstance(data, dict):
        fail("", "expected a mapping")
    for key in data:
        if key not in allowed:
            fail(key, f"unknown field; expected one of {', '.join(sorted(allowed))}")
    for key in ("description", "expected_score", "cells"):
        if key not in data:
            fail(key, "missing")
    score = data["expected_score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or score < 0:
        fail("expected_score", f"expected a number >= 0, got {score!r}")
    cells = data["cells"]
    if not isinstance(cells, dict) or not cells or not all(isinstance(v, str) for v in cells.values()):
        fail("cells", "expected a mapping of grade id to cell source")
    expected_cells = data.get("expected_cells") or {}
    if not isinstance(expected_cells, dict) or not all(isinstance(v, (int, float)) for v in expected_cells.values()):
        fail("expected_cells", "expected a mapping of grade id to points")
    requires = data.get("requires") or []
    if not isinstance(requires, list) or not all(isinstance(name, str) for name in requires):
        fail("requires", "expected a list of dotted names")
    return SampleSubmission(path.stem, path, str(data["description"]).strip(), float(score),
                            {str(k): v.rstrip("\n") for k, v in cells.items()},
                            {str(k): float(v) for k, v in expected_cells.items()}, tuple(requires))


def load_samples(folder: Path | str) -> list[SampleSubmission]:
    """Every ``*.yml`` sample in a folder, by name; the reserved names are refused."""
    samples = [load_sample(path) for path in sorted(Path(folder).glob("*.yml"))]
    for sample in samples:
        if sample.name in (UNTOUCHED, SOLUTION):
            raise SampleError(f"{sample.path}: the name {sample.name!r} is reserved; rename the file")
    return samples


def missing_requirements(names: list[str] | tuple[str, ...]) -> list[str]:
    """The dotted names (``package.module.attribute``) that cannot be imported or found."""
    missing = []
    for name in names:
        parts = name.split(".")
        for split in range(len(parts), 0, -1):
            try:
                value = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for attribute in parts[split:]:
                    value = getattr(value, attribute)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    return missing


def apply_sample(released: dict, sample: SampleSubmission) -> dict:
    """A copy of the released notebook with the sample's cells rewritten (cells are found by grade id)."""
    notebook = copy.deepcopy(released)
    by_id = {nbgrader_metadata(cell).get("grade_id"): cell for cell in notebook["cells"]}
    for grade_id, source in sample.cells.items():
        if grade_id not in by_id:
            raise SampleError(f"{sample.path}: cells.{grade_id}: no cell with this grade id in the released notebook")
        by_id[grade_id]["source"] = source
    return notebook


def release_leaks(source: dict, released: dict) -> list[str]:
    """Lines of solutions or hidden tests that the released notebook still holds, and leftover markers."""
    leaks = []
    released_cells = {nbgrader_metadata(cell).get("grade_id"): source_text(cell) for cell in released["cells"]}
    for cell in source["cells"]:
        grade_id = nbgrader_metadata(cell).get("grade_id")
        inside, outside, region = set(), set(), False
        for line in source_text(cell).splitlines():
            if BEGIN_SOLUTION in line or BEGIN_HIDDEN_TESTS in line:
                region = True
            elif END_SOLUTION in line or END_HIDDEN_TESTS in line:
                region = False
            elif line.strip():
                (inside if region else outside).add(line.strip())
        if not inside or grade_id is None:
            continue
        kept = {line.strip() for line in released_cells.get(grade_id, "").splitlines()}
        leaks += [f"{grade_id}: the release still contains {line!r}" for line in sorted((inside - outside) & kept)]
    for cell in released["cells"]:
        leaks += [f"{nbgrader_metadata(cell).get('grade_id', '?')}: the release still contains {marker!r}"
                  for marker in MARKERS if marker in source_text(cell)]
    return leaks


@dataclass
class LabCheck:
    """What ``check_lab`` found: leaks, scores per submission, samples and those skipped (with why)."""

    lab_id: str
    leaks: list[str]
    scores: dict[str, SubmissionScore]
    samples: list[SampleSubmission]
    skipped: dict[str, str]
    seconds: float
    course: GradingCourse

    @property
    def max_score(self) -> float:
        """Full marks for the lab."""
        return self.scores[SOLUTION].max_score if SOLUTION in self.scores else 0.0

    def problems(self) -> list[str]:
        """Everything that disagrees with the expectations (empty when the lab is fit to release)."""
        problems = list(self.leaks)
        untouched = self.scores.get(UNTOUCHED)
        if untouched is None:
            problems.append(f"{UNTOUCHED}: not graded")
        else:
            problems += [f"{UNTOUCHED}: cell {c.grade_id} scores {c.score:g}, expected 0"
                         for c in untouched.cells.values() if c.score != 0]
        solution = self.scores.get(SOLUTION)
        if solution is None or solution.score != solution.max_score:
            problems.append(f"{SOLUTION}: scores {solution.score if solution else 'nothing'}, expected full marks "
                            f"({self.max_score:g})")
        for sample in self.samples:
            if sample.name in self.skipped:
                continue
            got = self.scores.get(sample.name)
            if got is None:
                problems.append(f"{sample.name}: not graded")
                continue
            if sample.expected_score >= self.max_score:
                problems.append(f"{sample.name}: expected_score {sample.expected_score:g} is not below full marks "
                                f"({self.max_score:g}); a sample submission is a wrong answer")
            if got.score != sample.expected_score:
                problems.append(f"{sample.name}: scores {got.score:g}, expected {sample.expected_score:g} "
                                f"({sample.path.name})")
            for grade_id, expected in sample.expected_cells.items():
                cell = got.cells.get(grade_id)
                if cell is None or cell.score != expected:
                    problems.append(f"{sample.name}: cell {grade_id} scores {cell.score if cell else 'nothing'}, "
                                    f"expected {expected:g}")
        return problems


def _submit(course: GradingCourse, lab_id: str, student: str, notebook: dict) -> None:
    target = course.folder("submitted", lab_id, student)
    shutil.copytree(course.folder("release", lab_id), target, dirs_exist_ok=True)
    (target / f"{lab_id}.ipynb").write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")


def check_lab(lab_id: str, course_root: Path | str, workspace: Path | str) -> LabCheck:
    """Release, submit and autograde a lab's untouched release, its solution and its samples in ``workspace``."""
    start = time.perf_counter()
    course_root, workspace = Path(course_root), Path(workspace)
    source_dir = course_root / "labs" / lab_id
    shutil.copytree(source_dir, workspace / "labs" / lab_id, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    course = GradingCourse(workspace, config_file=course_root / CONFIG_FILE)
    release_dir = course.generate(lab_id)
    source = json.loads((source_dir / f"{lab_id}.ipynb").read_text(encoding="utf-8"))
    released = json.loads((release_dir / f"{lab_id}.ipynb").read_text(encoding="utf-8"))
    _submit(course, lab_id, UNTOUCHED, released)
    _submit(course, lab_id, SOLUTION, source)
    samples = load_samples(course_root / SAMPLES_DIR / lab_id)
    skipped = {}
    for sample in samples:
        missing = missing_requirements(sample.requires)
        if missing:
            skipped[sample.name] = f"needs {', '.join(missing)}"
        else:
            _submit(course, lab_id, sample.name, apply_sample(released, sample))
    course.autograde(lab_id, force=True)
    return LabCheck(lab_id, release_leaks(source, released), course.scores(lab_id), samples, skipped,
                    time.perf_counter() - start, course)


def synthetic_class(lab_id: str, course_root: Path | str, workspace: Path | str, size: int) -> dict[str, str]:
    """A class of ``size`` submissions in ``workspace/submitted/``, for load tests and benchmarks.

    The lab is copied into ``workspace`` and released; student ``student-0000`` hands in the source
    notebook (the solution), the next ones each sample in turn, then round again. Copies differ only in
    their JSON indentation, so that each is a submission of its own. Returns each student's model: the
    sample's name, or ``source-solution``.
    """
    course_root, workspace = Path(course_root), Path(workspace)
    shutil.copytree(course_root / "labs" / lab_id, workspace / "labs" / lab_id, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    course = GradingCourse(workspace, config_file=course_root / CONFIG_FILE)
    released = json.loads((course.generate(lab_id) / f"{lab_id}.ipynb").read_text(encoding="utf-8"))
    source = json.loads((workspace / "labs" / lab_id / f"{lab_id}.ipynb").read_text(encoding="utf-8"))
    models = [(SOLUTION, source)] + [(s.name, apply_sample(released, s))
                                     for s in load_samples(course_root / SAMPLES_DIR / lab_id)
                                     if not missing_requirements(s.requires)]
    students = {}
    for number in range(size):
        name, notebook = models[number % len(models)]
        student = f"student-{number:04d}"
        _submit(course, lab_id, student, notebook)
        text = json.dumps(notebook, indent=1 + number // len(models)) + "\n"
        (course.folder("submitted", lab_id, student) / f"{lab_id}.ipynb").write_text(text, encoding="utf-8")
        students[student] = name
    return students
