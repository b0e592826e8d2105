"""The sandboxed grader's gradebook: SQLite in WAL mode, one row per graded submission, safe to resume.

A result is keyed by (lab, student, submission digest) and written with ``INSERT ... ON CONFLICT``
inside its own ``BEGIN IMMEDIATE`` transaction, with ``synchronous=FULL``: once ``record`` returns, the
grade survives a crash of the grader or the machine, and recording the same result twice (a resumed
run, two graders on the same folder) leaves one row. The coordinator of a grading run is the only
writer in normal use; the transactions keep the file consistent even when several processes write.
``submissions`` holds each student's current submission, so ``current`` returns one result per student:
the grade of what they submitted last.

nbgrader's own gradebook (``gradebook.db``) is left to nbgrader's commands; this one is a separate file,
``sandbox-gradebook.db`` in the course directory by default.

May import: the standard library, dslearn.grading.grader.

>>> import tempfile, os
>>> book = Gradebook(os.path.join(tempfile.mkdtemp(), "book.db"))
>>> book.graded("00-welcome")
set()
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import sqlite3
from pathlib import Path

from dslearn.grading.grader import GradeResult

GRADEBOOK_FILE = "sandbox-gradebook.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    lab_id TEXT NOT NULL, student TEXT NOT NULL, digest TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, score REAL NOT NULL, max_score REAL NOT NULL,
    result TEXT NOT NULL, graded_at TEXT NOT NULL,
    PRIMARY KEY (lab_id, student, digest)
);
CREATE TABLE IF NOT EXISTS submissions (
    lab_id TEXT NOT NULL, student TEXT NOT NULL, digest TEXT NOT NULL, submitted_at TEXT NOT NULL,
    PRIMARY KEY (lab_id, student)
);
"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


class Gradebook:
    """One SQLite gradebook file; each method is one transaction."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        os.chmod(self.path, 0o600)  # grades are private; SQLite gives its -wal and -shm files the same mode
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.executescript(SCHEMA)

    def files(self) -> list[str]:
        """The database file and the files SQLite keeps beside it (to hide from sandboxes)."""
        return [str(self.path.resolve()) + suffix for suffix in ("", "-wal", "-shm", "-journal")]

    def close(self) -> None:
        """Close the file."""
        self.connection.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write(self, sql: str, rows: list[tuple]) -> int:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            changed = sum(cursor.execute(sql, row).rowcount for row in rows)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        return changed

    def register(self, lab_id: str, submissions: dict[str, str]) -> None:
        """Record each student's current submission (student -> digest)."""
        self._write("INSERT INTO submissions VALUES (?, ?, ?, ?) ON CONFLICT (lab_id, student) DO UPDATE SET "
                    "digest = excluded.digest, submitted_at = excluded.submitted_at WHERE digest != excluded.digest",
                    [(lab_id, student, digest, _now()) for student, digest in submissions.items()])

    def record(self, result: GradeResult, replace: bool = False) -> bool:
        """Store a result; returns False when this submission already had one (kept, unless ``replace``)."""
        conflict = ("DO UPDATE SET status = excluded.status, reason = excluded.reason, score = excluded.score, "
                    "max_score = excluded.max_score, result = excluded.result, graded_at = excluded.graded_at"
                    if replace else "DO NOTHING")
        row = (result.lab_id, result.student, result.digest, result.status, result.reason, result.score,
               result.max_score, json.dumps(result.to_dict()), _now())
        return self._write(f"INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                           f"ON CONFLICT (lab_id, student, digest) {conflict}", [row]) > 0

    def graded(self, lab_id: str) -> set[tuple[str, str]]:
        """The (student, digest) pairs of a lab that have a result."""
        rows = self.connection.execute("SELECT student, digest FROM results WHERE lab_id = ?", (lab_id,))
        return set(rows.fetchall())

    def results(self, lab_id: str) -> list[GradeResult]:
        """Every result of a lab, every submission of every student."""
        rows = self.connection.execute("SELECT result FROM results WHERE lab_id = ? ORDER BY student, graded_at",
                                       (lab_id,))
        return [GradeResult.from_dict(json.loads(text)) for (text,) in rows.fetchall()]

    def graded_at(self, lab_id: str) -> dict[tuple[str, str], str]:
        """When each (student, digest) of a lab was recorded."""
        rows = self.connection.execute("SELECT student, digest, graded_at FROM results WHERE lab_id = ?", (lab_id,))
        return {(student, digest): when for student, digest, when in rows.fetchall()}

    def current(self, lab_id: str) -> dict[str, GradeResult]:
        """One result per student: the grade of their current submission (students not graded yet are absent)."""
        rows = self.connection.execute(
            "SELECT r.student, r.result FROM results r JOIN submissions s ON r.lab_id = s.lab_id AND "
            "r.student = s.student AND r.digest = s.digest WHERE r.lab_id = ? ORDER BY r.student", (lab_id,))
        return {student: GradeResult.from_dict(json.loads(text)) for student, text in rows.fetchall()}

    def export(self, path: Path | str, lab_id: str) -> Path:
        """CSV of the current results of a lab: student, status, score, max score, reason, one column per cell."""
        current = self.current(lab_id)
        cells = sorted({grade_id for result in current.values() for grade_id in result.cells})
        target = Path(path)
        with target.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["student", "status", "score", "max_score", "reason", *cells])
            for student, result in current.items():
                writer.writerow([student, result.status, result.score, result.max_score, result.reason,
                                 *[result.cells[g].score if g in result.cells else "" for g in cells]])
        return target
