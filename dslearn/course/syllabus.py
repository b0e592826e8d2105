"""The learning path as data: load ``course/syllabus.yml`` into a small model and check it.

The syllabus is the one source of truth for levels, units, labs, prerequisites and hours. Every mistake
in it is reported with the file and the field, e.g.
``course/syllabus.yml: levels[0].units[1].labs[0].hours: expected a positive number, got 'two'``.

May import: the standard library, yaml.

>>> syllabus = parse_syllabus({
...     "schema": 1, "title": "Demo", "budget": {"seconds": 120, "memory_mb": 2048},
...     "levels": [{"id": "beginner", "title": "Beginner", "goal": "Start.", "units": [
...         {"id": "basics", "title": "Basics", "labs": [
...             {"id": "00-welcome", "title": "Welcome", "status": "available", "hours": 2,
...              "prerequisites": [], "objectives": ["Say hello."]}]}]}]})
>>> [lab.id for lab in syllabus.labs()], syllabus.hours("beginner")
(['00-welcome'], 2.0)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

SCHEMA_VERSION = 1
LEVEL_ORDER = ("beginner", "intermediate", "advanced", "expert")
STATUSES = ("available", "coming")
LAB_ID = re.compile(r"^\d\d-[a-z0-9]+(-[a-z0-9]+)*$")
SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SYLLABUS_FILE = Path("course") / "syllabus.yml"


class SyllabusError(ValueError):
    """A problem in the syllabus file; the message names the file and the field."""


@dataclass(frozen=True)
class Budget:
    """What one lab may use when it is autograded: wall-clock seconds and memory in MiB."""

    seconds: float
    memory_mb: float


@dataclass(frozen=True)
class Lab:
    """One lab: its id is its folder, its notebook's name and its nbgrader assignment id."""

    id: str
    title: str
    status: str
    hours: float
    prerequisites: tuple[str, ...]
    objectives: tuple[str, ...]
    level: str
    unit: str

    @property
    def available(self) -> bool:
        """Whether the notebook exists and is part of the graded course (status ``available``)."""
        return self.status == "available"

    @property
    def notebook(self) -> Path:
        """The lab's source notebook relative to the course root: ``labs/<id>/<id>.ipynb``."""
        return Path("labs") / self.id / f"{self.id}.ipynb"


@dataclass(frozen=True)
class Unit:
    """A group of labs inside a level."""

    id: str
    title: str
    labs: tuple[Lab, ...]


@dataclass(frozen=True)
class Level:
    """beginner, intermediate, advanced or expert."""

    id: str
    title: str
    goal: str
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class Syllabus:
    """The whole path, in order."""

    title: str
    summary: str
    budget: Budget
    levels: tuple[Level, ...]
    root: Path | None = None  # the course root (the folder holding course/ and labs/), when loaded from disk

    def labs(self) -> Iterator[Lab]:
        """Every lab, in path order."""
        for level in self.levels:
            for unit in level.units:
                yield from unit.labs

    def available_labs(self) -> list[Lab]:
        """The labs whose status is ``available``, in path order."""
        return [lab for lab in self.labs() if lab.available]

    def lab(self, lab_id: str) -> Lab:
        """The lab with this id; the error lists the ids that exist."""
        for lab in self.labs():
            if lab.id == lab_id:
                return lab
        raise KeyError(f"no lab {lab_id!r} in the syllabus; labs: {', '.join(lab.id for lab in self.labs())}")

    def hours(self, level_id: str) -> float:
        """Estimated hours of one level."""
        return float(sum(lab.hours for lab in self.labs() if lab.level == level_id))


def find_course_root(start: Path | str | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding course/syllabus.yml.

    Falls back to the checkout this package was installed from (an editable install), so the CLI works
    from any directory.

    >>> (find_course_root() / SYLLABUS_FILE).is_file()
    True
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SYLLABUS_FILE).is_file():
            return folder
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / SYLLABUS_FILE).is_file():
        return checkout
    raise FileNotFoundError(f"no {SYLLABUS_FILE} in {here} or above it; pass --course-dir")


def load_syllabus(root: Path | str | None = None) -> Syllabus:
    """Read and check ``<root>/course/syllabus.yml`` (root defaults to ``find_course_root()``).

    >>> syllabus = load_syllabus()
    >>> [level.id for level in syllabus.levels]
    ['beginner', 'intermediate', 'advanced', 'expert']
    """
    root = find_course_root() if root is None else Path(root)
    path = root / SYLLABUS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SyllabusError(f"{path}: not valid YAML: {error}") from None
    syllabus = parse_syllabus(data, source=str(path))
    return Syllabus(syllabus.title, syllabus.summary, syllabus.budget, syllabus.levels, root=root)


def parse_syllabus(data: object, source: str = "<syllabus>") -> Syllabus:
    """Build a ``Syllabus`` from parsed YAML, checking every field; errors name ``source`` and the field."""
    reader = _Reader(source)
    top = reader.mapping(data, "", required=("schema", "title", "budget", "levels"), optional=("summary",))
    if top["schema"] != SCHEMA_VERSION:
        reader.fail("schema", f"expected {SCHEMA_VERSION}, got {top['schema']!r}")
    budget_data = reader.mapping(top["budget"], "budget", required=("seconds", "memory_mb"))
    budget = Budget(reader.positive(budget_data["seconds"], "budget.seconds"),
                    reader.positive(budget_data["memory_mb"], "budget.memory_mb"))
    levels = []
    seen_labs: dict[str, str] = {}
    for i, level_data in enumerate(reader.sequence(top["levels"], "levels", non_empty=True)):
        levels.append(_parse_level(reader, level_data, f"levels[{i}]", seen_labs))
    level_ids = [level.id for level in levels]
    expected = [level for level in LEVEL_ORDER if level in level_ids]
    if level_ids != expected:
        reader.fail("levels", f"levels must be distinct and in the order {', '.join(LEVEL_ORDER)}; got {level_ids}")
    return Syllabus(reader.text(top["title"], "title"), reader.text(top.get("summary", ""), "summary", empty=True),
                    budget, tuple(levels))


def _parse_level(reader: _Reader, data: object, field: str, seen_labs: dict[str, str]) -> Level:
    level = reader.mapping(data, field, required=("id", "title", "goal", "units"))
    level_id = reader.text(level["id"], f"{field}.id")
    if level_id not in LEVEL_ORDER:
        reader.fail(f"{field}.id", f"expected one of {', '.join(LEVEL_ORDER)}, got {level_id!r}")
    units = []
    unit_ids: set[str] = set()
    for i, unit_data in enumerate(reader.sequence(level["units"], f"{field}.units", non_empty=True)):
        unit_field = f"{field}.units[{i}]"
        unit = reader.mapping(unit_data, unit_field, required=("id", "title", "labs"))
        unit_id = reader.slug(unit["id"], f"{unit_field}.id")
        if unit_id in unit_ids:
            reader.fail(f"{unit_field}.id", f"unit {unit_id!r} appears twice in level {level_id!r}")
        unit_ids.add(unit_id)
        labs = tuple(_parse_lab(reader, lab_data, f"{unit_field}.labs[{j}]", level_id, unit_id, seen_labs)
                     for j, lab_data in enumerate(reader.sequence(unit["labs"], f"{unit_field}.labs", non_empty=True)))
        units.append(Unit(unit_id, reader.text(unit["title"], f"{unit_field}.title"), labs))
    return Level(level_id, reader.text(level["title"], f"{field}.title"), reader.text(level["goal"], f"{field}.goal"),
                 tuple(units))


def _parse_lab(reader: _Reader, data: object, field: str, level: str, unit: str, seen_labs: dict[str, str]) -> Lab:
    lab = reader.mapping(data, field, required=("id", "title", "status", "hours", "prerequisites", "objectives"))
    lab_id = reader.text(lab["id"], f"{field}.id")
    if not LAB_ID.match(lab_id):
        reader.fail(f"{field}.id", f"expected two digits, a dash and a lower-case slug (00-welcome), got {lab_id!r}")
    if lab_id in seen_labs:
        reader.fail(f"{field}.id", f"lab {lab_id!r} is already defined at {seen_labs[lab_id]}")
    status = reader.text(lab["status"], f"{field}.status")
    if status not in STATUSES:
        reader.fail(f"{field}.status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
    prerequisites = [reader.text(p, f"{field}.prerequisites[{k}]")
                     for k, p in enumerate(reader.sequence(lab["prerequisites"], f"{field}.prerequisites"))]
    for k, prerequisite in enumerate(prerequisites):
        if prerequisite not in seen_labs:
            reader.fail(f"{field}.prerequisites[{k}]",
                        f"{prerequisite!r} is not a lab that comes earlier in the path")
    objectives = [reader.text(o, f"{field}.objectives[{k}]")
                  for k, o in enumerate(reader.sequence(lab["objectives"], f"{field}.objectives", non_empty=True))]
    seen_labs[lab_id] = field
    title = reader.text(lab["title"], f"{field}.title")
    hours = reader.positive(lab["hours"], f"{field}.hours")
    return Lab(lab_id, title, status, hours, tuple(prerequisites), tuple(objectives), level, unit)


class _Reader:
    """Type checks for parsed YAML that raise ``SyllabusError`` naming the source file and the field."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, message: str):
        where = f"{self.source}: {field}" if field else self.source
        raise SyllabusError(f"{where}: {message}")

    def mapping(self, value: object, field: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(field, f"expected a mapping, got {type(value).__name__}")
        prefix = f"{field}." if field else ""
        for key in required:
            if key not in value:
                self.fail(f"{prefix}{key}", "missing")
        for key in value:
            if key not in required and key not in optional:
                self.fail(f"{prefix}{key}", f"unknown field; expected one of {', '.join(required + optional)}")
        return value

    def sequence(self, value: object, field: str, non_empty: bool = False) -> list:
        if not isinstance(value, list):
            self.fail(field, f"expected a list, got {type(value).__name__}")
        if non_empty and not value:
            self.fail(field, "expected at least one entry")
        return value

    def text(self, value: object, field: str, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            self.fail(field, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def slug(self, value: object, field: str) -> str:
        text = self.text(value, field)
        if not SLUG.match(text):
            self.fail(field, f"expected a lower-case slug such as 'first-steps', got {text!r}")
        return text

    def positive(self, value: object, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            self.fail(field, f"expected a positive number, got {value!r}")
        return float(value)
