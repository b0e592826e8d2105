"""Grade one submission: restore its cells, run them and the probes' calls in a sandbox, score the answers here.

``grade(assignment, submission)`` never raises and always returns a ``GradeResult``: a score per graded
cell and a status, ``graded`` or why the run did not finish (``timeout``, ``memory``, ``output``,
``crash``, ``malformed``, ``error``), with the reason. Cells are scored from whatever answers arrived
before the run ended, so a notebook that is stopped during the last probe keeps the points it earned.

Scoring is decided here, in the grader's process. A cell with probes (``dslearn.grading.probes``)
passes when every probe's check passes on the plain data the sandbox returned. A test cell without
probes is scored as nbgrader scores it, by whether it raised in the kernel: the student's code runs in
that kernel and can tamper with it, so such cells are flagged ``tamperable``.

May import: the standard library, numpy, dslearn.course, dslearn.grading.

>>> Submission("00-welcome", "alice", b"{}").digest[:12]
'44136fa355b3'
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dslearn.course.cells import has_hidden_tests, nbgrader_metadata, source_text
from dslearn.grading.probes import Answer, LabProbes, check, load_probes, seed_for
from dslearn.grading.references import compiled_caches, module_folders, overlays
from dslearn.grading.sandbox import DEFAULT_LIMITS, ERROR, FINISHED, Limits, SandboxRun, run_sandboxed, scratch_root
from dslearn.grading.submission import MalformedNotebook, graded_cells, prepare, read_notebook, remove_hidden_regions
from dslearn.grading.wire import encode

RUNNER = Path(__file__).with_name("runner.py")
SECRET_FILE = ".grading-secret"
GRADED, MALFORMED = "graded", "malformed"
COURSE_SECRETS = ("labs", "grading", ".git", "source", "submitted", "autograded", "feedback", "feedback-sandboxed",
                  "exchange", "gradebook.db", "gradebook.db-journal", "gradebook.db-wal", "gradebook.db-shm",
                  SECRET_FILE, "sandbox-gradebook.db", "sandbox-gradebook.db-wal", "sandbox-gradebook.db-shm")


def course_secret(course_dir: Path | str) -> bytes:
    """The course's grading secret (``<course>/.grading-secret``, created on first use, readable by root only)."""
    path = Path(course_dir) / SECRET_FILE
    if not path.is_file():
        temporary = path.with_suffix(f".{os.getpid()}")
        temporary.write_bytes(secrets.token_bytes(32))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path) if not path.exists() else temporary.unlink()
    return path.read_bytes()


def secret_paths(*course_dirs: Path | str) -> list[str]:
    """What the sandbox must not read in each course directory: sources, hidden tests, submissions, gradebooks.

    >>> "/course/labs" in secret_paths("/course")
    True
    """
    return sorted({str(Path(folder).resolve() / name) for folder in course_dirs for name in COURSE_SECRETS})


@dataclass(frozen=True)
class Assignment:
    """One lab as the grader needs it: its source notebook, probes, limits, seed secret and the paths to hide."""

    lab_id: str
    source: dict
    probes: LabProbes | None
    limits: Limits = DEFAULT_LIMITS
    secret: bytes = b""
    hide: tuple[str, ...] = ()

    @property
    def points(self) -> dict[str, float]:
        """Each graded cell's points."""
        return graded_cells(self.source)

    @classmethod
    def load(cls, course_root: Path | str, lab_id: str, limits: Limits | None = None,
             hide: tuple[str, ...] = ()) -> Assignment:
        """The lab ``labs/<lab_id>/<lab_id>.ipynb`` of a course directory, with its probes when it has some."""
        from dslearn.course.syllabus import find_course_root
        from dslearn.grading.submission import read_notebook as parse

        root = Path(course_root).resolve()
        source = parse((root / "labs" / lab_id / f"{lab_id}.ipynb").read_bytes())
        probes = load_probes(root, lab_id)
        if probes is None and (root / "grading").resolve() != (find_course_root() / "grading").resolve():
            probes = load_probes(find_course_root(), lab_id)
        return cls(lab_id, source, probes, limits or Limits(), course_secret(root),
                   tuple(secret_paths(root, find_course_root())) + tuple(hide))


@dataclass(frozen=True)
class Submission:
    """A student's notebook for one lab, as submitted (bytes: it may not even be JSON)."""

    lab_id: str
    student: str
    notebook: bytes

    @property
    def digest(self) -> str:
        """SHA-256 of the notebook: a submission's identity in the gradebook."""
        return hashlib.sha256(self.notebook).hexdigest()


@dataclass(frozen=True)
class CellResult:
    """One graded cell's score and what feedback may say about it."""

    grade_id: str
    score: float
    max_score: float
    tamperable: bool = False  # scored in the kernel, by nbgrader's rule, not by probes
    feedback: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradeResult:
    """The recorded outcome of grading one submission."""

    lab_id: str
    student: str
    digest: str
    status: str  # graded, timeout, memory, output, crash, malformed or error
    reason: str
    score: float
    max_score: float
    cells: dict = field(default_factory=dict)  # grade id -> CellResult
    notes: tuple[str, ...] = ()
    seconds: float = 0.0
    isolation: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    log: str = ""  # for the instructor, never in feedback: the cells that raised, the start of the raw output

    def to_dict(self) -> dict:
        """Plain data (for the gradebook)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GradeResult:
        cells = {key: CellResult(**dict(value, feedback=tuple(value["feedback"])))
                 for key, value in data["cells"].items()}
        return cls(**dict(data, cells=cells, notes=tuple(data["notes"]), warnings=tuple(data["warnings"])))


def _failed(assignment: Assignment, submission: Submission, status: str, reason: str, start: float) -> GradeResult:
    cells = {g: CellResult(g, 0.0, p, feedback=(f"not graded: {reason}",)) for g, p in assignment.points.items()}
    return GradeResult(assignment.lab_id, submission.student, submission.digest, status, reason, 0.0,
                       sum(assignment.points.values()), cells, seconds=time.monotonic() - start)


@functools.lru_cache(maxsize=16)
def reference_overlays(disabled: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The stubbed module copies to bind over the disabled references (written once per process)."""
    return tuple(overlays(disabled, scratch_root() / "overlays"))


@dataclass(frozen=True)
class Plan:
    """What the sandbox is asked to do for one submission, and how to read its answers."""

    files: dict  # job.json (cells, limits, what to disable and block) and calls.json (the probes' calls)
    cells: list  # the PreparedCells, in the order they run
    probes: dict  # grade id -> the Probes that score it
    call_ids: dict  # (grade id, probe number) -> the ids of its calls
    notes: tuple[str, ...]
    hide: list  # paths the sandbox must not see
    binds: list  # (stubbed copy, original) files it must see instead of the originals


def plan(assignment: Assignment, submission: Submission) -> Plan:
    """Restore the submission's cells and draw the probes' inputs; raises ``MalformedNotebook``."""
    notebook = read_notebook(submission.notebook)
    probes = assignment.probes
    cell_probes = {}
    if probes is not None:
        seed = seed_for(assignment.secret, assignment.lab_id, submission.student, submission.digest)
        cell_probes = {g: ps for g, ps in probes.cells(seed).items() if g in assignment.points}
    prepared = prepare(assignment.source, notebook, set(cell_probes))
    calls, call_ids = [], {}
    for grade_id, probe_list in cell_probes.items():
        for number, probe in enumerate(probe_list):
            call_ids[grade_id, number] = []
            for probe_call in probe.calls:
                call_ids[grade_id, number].append(f"c{len(calls)}")
                calls.append(probe_call.wire(f"c{len(calls)}"))
    binds = reference_overlays(tuple(probes.disabled)) if probes and probes.disabled else ()
    cached = compiled_caches([original for _, original in binds])  # now: a cache written since must be hidden too
    hide = [*assignment.hide, *cached, *module_folders(probes.blocked_modules if probes else ())]
    limits = assignment.limits
    job = {"cells": [{"source": c.source, "grade_id": c.grade_id} for c in prepared.cells],
           "cell_timeout": limits.cell_seconds, "call_timeout": limits.call_seconds,
           "disabled": list(probes.disabled) if probes else [], "overlaid_files": [original for _, original in binds],
           "blocked_modules": list(probes.blocked_modules) if probes else []}
    files = {"job.json": json.dumps(job).encode(), "calls.json": encode(calls).encode()}
    return Plan(files, prepared.cells, cell_probes, call_ids, tuple(prepared.notes), hide, list(binds))


def grade(assignment: Assignment, submission: Submission) -> GradeResult:
    """Grade one submission in a fresh sandbox; never raises (a grader failure is recorded as status ``error``)."""
    start = time.monotonic()
    try:
        return _grade(assignment, submission, start)
    except MalformedNotebook as error:
        return _failed(assignment, submission, MALFORMED, str(error), start)
    except Exception as error:  # noqa: BLE001  (one submission's failure must not stop the others)
        detail = traceback.format_exception_only(type(error), error)[-1].strip()
        return _failed(assignment, submission, ERROR, f"the grader failed: {detail}", start)


def _grade(assignment: Assignment, submission: Submission, start: float) -> GradeResult:
    steps = plan(assignment, submission)
    run = run_sandboxed([sys.executable, "-I", str(RUNNER)], steps.files, assignment.limits, steps.hide, steps.binds)
    if run.status == ERROR:
        return _failed(assignment, submission, ERROR, run.reason, start)
    cells = _score(assignment, steps.cells, steps.probes, steps.call_ids, run)
    warnings = list(run.warnings)
    tamperable = sorted(g for g, cell in cells.items() if cell.tamperable)
    if tamperable:
        warnings.append(f"scored in the student's kernel (no probes; tamperable): {', '.join(tamperable)}")
    if run.malformed_lines:
        warnings.append(f"{run.malformed_lines} line(s) from the sandbox were not plain data and were ignored")
    status = GRADED if run.status == FINISHED else run.status
    return GradeResult(assignment.lab_id, submission.student, submission.digest, status, run.reason,
                       sum(c.score for c in cells.values()), sum(assignment.points.values()), cells,
                       steps.notes, time.monotonic() - start, run.isolation, tuple(warnings), _log(steps, run))


def _log(steps: Plan, run: SandboxRun) -> str:
    """What went wrong in the run, for the instructor: each cell that raised, then the raw output's start."""
    lines = []
    for event in run.events:
        if event.get("event") == "cell" and event.get("status") == "error" and type(event.get("index")) is int:
            index = event["index"]
            grade_id = steps.cells[index].grade_id if 0 <= index < len(steps.cells) else None
            lines.append(f"cell {index}{f' ({grade_id})' if grade_id else ''}: {event.get('error')}: "
                         f"{str(event.get('message'))[:300]}")
    if run.output_head.strip():
        lines += ["output:", run.output_head[:4000]]
    return "\n".join(lines)


def _score(assignment: Assignment, prepared_cells: list, cell_probes: dict, call_ids: dict,
           run: SandboxRun) -> dict[str, CellResult]:
    answers, cell_events = {}, {}
    for event in run.events:
        if event.get("event") == "call" and isinstance(event.get("id"), str):
            answers.setdefault(event["id"], Answer.from_wire(event.get("answer")))
        elif event.get("event") == "cell" and type(event.get("index")) is int:
            cell_events.setdefault(event["index"], event)
    sources = {nbgrader_metadata(c).get("grade_id"): c for c in assignment.source["cells"]}
    results = {}
    for grade_id, points in assignment.points.items():
        hidden = has_hidden_tests(sources[grade_id])
        if grade_id in cell_probes:
            lines, passed = [], True
            for number, probe in enumerate(cell_probes[grade_id]):
                got = [answers.get(i, Answer(False, "Missing")) for i in call_ids[grade_id, number]]
                problem = check(probe, got)
                passed &= problem is None
                message = next((a.message for a in got if not a.ok and a.message), "")
                detail = f": {problem}" + (f" ({message[:200]})" if message and not hidden and problem else "")
                lines.append(("passed: " if problem is None else "failed: ") + probe.description
                             + (detail if problem else ""))
            results[grade_id] = CellResult(grade_id, points if passed else 0.0, points, False, tuple(lines))
        else:
            index = next((i for i, c in enumerate(prepared_cells) if c.grade_id == grade_id), None)
            event = cell_events.get(index, {})
            ok = event.get("status") == "ok"
            line = "passed" if ok else (f"failed: {event.get('error')}: {event.get('message') or ''}".rstrip(": ")
                                        if event else "failed: the cell did not run")
            if hidden and _quotes_hidden_tests(line, sources[grade_id]):
                line = f"failed: {event.get('error')} (the message quotes a hidden test and is not shown)"
            results[grade_id] = CellResult(grade_id, points if ok else 0.0, points, True, (line,))
    return results


def _quotes_hidden_tests(message: str, cell: dict) -> bool:
    visible = set(remove_hidden_regions(source_text(cell)).splitlines())
    hidden = [line.strip() for line in source_text(cell).splitlines() if line not in visible and len(line.strip()) > 8]
    return any(line in message for line in hidden)
