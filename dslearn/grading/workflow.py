"""Instructor workflows as thin wrappers over nbgrader's Python API: release, collect, autograde, feedback, export.

nbgrader finds its course by the working directory and expects source notebooks in ``source/``. A
``GradingCourse`` names both explicitly: ``CourseDirectory.root`` is the course directory given (default:
the course root holding labs/), the configuration comes from ``grading/nbgrader_config.py`` (which sets
``source_directory = "labs"``), so every method works from any directory. Re-grading an already
autograded submission needs ``force=True``, as ``nbgrader autograde --force``.

May import: the standard library, nbgrader, traitlets, dslearn.course.syllabus.

>>> course = GradingCourse(find_course_root())
>>> course.config.CourseDirectory.source_directory
'labs'
"""

from __future__ import annotations

import copy
import datetime
import os
import shutil
import sysconfig
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from traitlets.config import PyFileConfigLoader

from dslearn.course.syllabus import find_course_root

CONFIG_FILE = Path("grading") / "nbgrader_config.py"


class GradingError(RuntimeError):
    """An nbgrader step failed; the message holds nbgrader's error and log."""


@dataclass(frozen=True)
class CellScore:
    """The score of one graded cell (its nbgrader grade id)."""

    grade_id: str
    score: float
    max_score: float


@dataclass(frozen=True)
class Autograded:
    """Whom ``GradingCourse.autograde`` graded, whom it skipped (graded before: use force) and nbgrader's log."""

    graded: list[str]
    skipped: list[str]
    log: str


@dataclass(frozen=True)
class SubmissionScore:
    """A student's autograded score on one lab, in total and per graded cell."""

    student: str
    score: float
    max_score: float
    cells: dict[str, CellScore] = field(default_factory=dict)


class GradingCourse:
    """An nbgrader course directory plus its configuration.

    ``course_dir`` holds ``labs/`` (the source notebooks) and receives nbgrader's working folders
    (``release/``, ``submitted/``, ``autograded/``, ``feedback/``) and ``gradebook.db``. ``config_file``
    defaults to ``<course_dir>/grading/nbgrader_config.py``, else the course checkout's. ``exchange`` is
    the folder of nbgrader's file-system exchange (used by release and collect when given).
    """

    def __init__(self, course_dir: Path | str, config_file: Path | str | None = None,
                 exchange: Path | str | None = None, course_id: str | None = None):
        self.root = Path(course_dir).resolve()
        if config_file is None:
            local = self.root / CONFIG_FILE
            config_file = local if local.is_file() else find_course_root() / CONFIG_FILE
        self.config_file = Path(config_file).resolve()
        if not self.config_file.is_file():
            raise FileNotFoundError(f"nbgrader configuration {self.config_file} not found")
        self.config = PyFileConfigLoader(self.config_file.name, path=str(self.config_file.parent)).load_config()
        self.config.CourseDirectory.root = str(self.root)
        self.exchange = None if exchange is None else Path(exchange).resolve()
        if self.exchange is not None:
            self.config.Exchange.root = str(self.exchange)
        if course_id is not None:
            self.config.CourseDirectory.course_id = course_id

    # -- folders --------------------------------------------------------------------------------------

    def step_directory(self, step: str) -> Path:
        """The folder of an nbgrader step: ``source`` (labs/), ``release``, ``submitted``, ``autograded``, ``feedback``.

        >>> GradingCourse("/tmp/course").step_directory("source").as_posix()
        '/tmp/course/labs'
        """
        defaults = {"source": "labs"}
        return self.root / self.config.CourseDirectory.get(f"{step}_directory", defaults.get(step, step))

    def folder(self, step: str, lab_id: str, student: str | None = None) -> Path:
        """Where nbgrader keeps a lab at one step: ``source``, ``release``, ``submitted``, ``autograded``, ``feedback``.

        >>> GradingCourse("/tmp/course").folder("submitted", "00-welcome", "alice").as_posix()
        '/tmp/course/submitted/alice/00-welcome'
        """
        if step in ("source", "release"):
            return self.step_directory(step) / lab_id
        if student is None:
            raise ValueError(f"folder: the {step} step is per student; give one")
        return self.step_directory(step) / student / lab_id

    # -- the workflow ---------------------------------------------------------------------------------

    def generate(self, lab_id: str) -> Path:
        """``nbgrader generate_assignment``: write the student version (solutions and hidden tests removed)."""
        self._call("generate_assignment", lab_id, force=True, create=True)
        return self.folder("release", lab_id)

    def release(self, lab_id: str, to: Path | str | None = None, force: bool = False) -> list[Path]:
        """Generate the student version, then copy it to the exchange (when configured) and/or into folder ``to``.

        A lab already in the exchange is replaced only with ``force`` (students may have fetched it).
        Returns every place the lab was released to (the release folder first).
        """
        places = [self.generate(lab_id)]
        if self.exchange is not None:
            self._call("release_assignment", lab_id, _config={"ExchangeReleaseAssignment": {"force": force}})
            places.append(self.exchange / self.config.CourseDirectory.course_id / "outbound" / lab_id)
        if to is not None:
            target = Path(to).resolve() / lab_id
            shutil.copytree(places[0], target, dirs_exist_ok=True)
            places.append(target)
        return places

    def collect(self, lab_id: str, from_folder: Path | str | None = None) -> list[str]:
        """Bring submissions into ``submitted/<student>/<lab>/``; returns the students collected.

        With ``from_folder`` (e.g. a download from a learning-management system) each entry is a student:
        a folder ``<student>/`` holding the lab's files, or a single notebook ``<student>.ipynb``, which is
        renamed to ``<lab>.ipynb``; ``timestamp.txt`` records the collection time unless the folder has one.
        Without it, nbgrader collects from the exchange.
        """
        if from_folder is None:
            if self.exchange is None:
                raise GradingError("collect: give a folder of submissions or an exchange folder")
            self._call("collect", lab_id, update=True)
            return self.students(lab_id)
        source = Path(from_folder)
        if not source.is_dir():
            raise FileNotFoundError(f"collect: {source} is not a folder")
        students = []
        for entry in sorted(source.iterdir()):
            if entry.name.startswith("."):
                continue
            target = self.folder("submitted", lab_id, entry.stem)
            if entry.is_dir():
                shutil.copytree(entry, target, dirs_exist_ok=True)
            elif entry.suffix == ".ipynb":
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry, target / f"{lab_id}.ipynb")
            else:
                continue
            if not (entry / "timestamp.txt").is_file():  # the collection time: a newer submission is re-graded
                stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f %Z")
                (target / "timestamp.txt").write_text(stamp + "\n", encoding="utf-8")
            students.append(entry.stem)
        return students

    def students(self, lab_id: str) -> list[str]:
        """The students with a submission of this lab in ``submitted/``."""
        return sorted(p.parent.name for p in self.step_directory("submitted").glob(f"*/{lab_id}") if p.is_dir())

    def autograde(self, lab_id: str, student: str = "*", force: bool = False) -> Autograded:
        """``nbgrader autograde``: run every submission (or one ``student``'s) with the hidden tests restored.

        Without ``force``, a submission autograded before is skipped unless its ``timestamp.txt`` is newer
        (nbgrader's rule); the result says which students were graded and which skipped.
        """
        students = self.students(lab_id) if student == "*" else [student]
        skipped = [] if force else [s for s in students if not self._needs_grading(lab_id, s)]
        log = self._call("autograde", lab_id, student, force=force, create=True)
        return Autograded([s for s in students if s not in skipped], skipped, log)

    def _needs_grading(self, lab_id: str, student: str) -> bool:
        from nbgrader.utils import parse_utc

        done = self.folder("autograded", lab_id, student)
        if not done.is_dir():
            return True
        stamps = [folder / "timestamp.txt" for folder in (self.folder("submitted", lab_id, student), done)]
        if not all(stamp.is_file() for stamp in stamps):
            return False
        submitted, graded = (parse_utc(stamp.read_text().strip()) for stamp in stamps)
        return submitted > graded

    def feedback(self, lab_id: str, student: str | None = None) -> list[Path]:
        """``nbgrader generate_feedback``: one HTML page per autograded submission, without hidden tests."""
        self._call("generate_feedback", lab_id, student, force=True)
        return sorted(self.step_directory("feedback").glob(f"{student or '*'}/{lab_id}/*.html"))

    def export(self, path: Path | str, lab_ids: list[str] | None = None) -> Path:
        """Write grades as CSV (nbgrader's CSV export: one row per student and lab)."""
        from nbgrader.api import Gradebook
        from nbgrader.plugins import CsvExportPlugin

        target = Path(path).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        plugin = CsvExportPlugin(config=self.config)
        plugin.to = str(target)
        plugin.assignment = list(lab_ids or [])
        with Gradebook(self._db_url(), self.config.CourseDirectory.course_id) as gradebook:
            plugin.export(gradebook)
        return target

    def scores(self, lab_id: str) -> dict[str, SubmissionScore]:
        """Autograded scores of one lab from the gradebook, per student, with every graded cell's score."""
        from nbgrader.api import Gradebook, MissingEntry

        result = {}
        with Gradebook(self._db_url(), self.config.CourseDirectory.course_id) as gradebook:
            try:
                assignment = gradebook.find_assignment(lab_id)
            except MissingEntry:
                return {}
            for submission in assignment.submissions:
                cells = {grade.name: CellScore(grade.name, float(grade.score), float(grade.max_score))
                         for notebook in submission.notebooks for grade in notebook.grades}
                result[submission.student.id] = SubmissionScore(submission.student.id, float(submission.score),
                                                                float(submission.max_score), cells)
        return result

    # -- plumbing -------------------------------------------------------------------------------------

    def _call(self, step: str, *args, _config: dict | None = None, **kwargs) -> str:
        """Run one ``NbGraderAPI`` method (with extra configuration); returns nbgrader's log.

        Raises ``GradingError`` with nbgrader's error and log when the step fails.
        """
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory
        from sqlalchemy.exc import SAWarning

        config = copy.deepcopy(self.config)
        config.NbGraderAPI.log_level = "WARN"
        scripts = sysconfig.get_path("scripts")  # nbgrader runs `alembic` from PATH: find the one beside it
        if scripts not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
        for section, values in (_config or {}).items():
            config[section].update(values)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # nbgrader's own session handling; harmless
            api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
            result = getattr(api, step)(*args, **kwargs)
        log = result.get("log", "")
        if not result.get("success"):
            raise GradingError(f"nbgrader {step} {' '.join(map(str, args))} failed:\n{result.get('error', '')}\n{log}")
        return log

    def _db_url(self) -> str:
        return self.config.CourseDirectory.get("db_url") or f"sqlite:///{self.root / 'gradebook.db'}"
