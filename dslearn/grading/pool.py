"""Grade a whole class in parallel, on this machine or on a Dask cluster, resumable at any point.

``autograde_class`` is the coordinator. It registers each student's current submission in the
gradebook, skips every submission that already has a result (so a run that was killed resumes where it
stopped, without grading anything twice), hands the rest to a pool of workers and records each result
as it arrives, in its own transaction: the coordinator is the gradebook's only writer. Each worker runs
``grader.grade`` for one submission at a time; the grading itself happens in that submission's own
sandbox, so a submission that crashes, hangs or floods memory only ends its own run.

Engines:

- ``local``: a pool of threads in this process (each thread waits on one sandbox; ``workers`` sandboxes
  run at once).
- ``dask``: Dask distributed. ``scheduler`` is the address of a running scheduler
  (``tcp://host:8786``), whose workers may be on many machines; without it, a ``LocalCluster`` of
  ``workers`` single-threaded worker processes listening on 127.0.0.1 only. The lab's source notebook,
  probe file and seed secret travel inside the task, and each submission travels as bytes, so workers
  need dslearn installed but no shared folder. A worker that dies has its task retried elsewhere; a
  submission whose task keeps failing is recorded with status ``error``.

May import: the standard library, dslearn.grading (and distributed, for the dask engine).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from dslearn.grading.gradebook import Gradebook
from dslearn.grading.grader import ERROR, Assignment, GradeResult, Submission, grade

ENGINES = ("local", "dask")


@dataclass
class ClassRun:
    """What one grading run did: results recorded now, submissions skipped as graded before, the time it took."""

    recorded: list[GradeResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def per_minute(self) -> float:
        """Submissions graded per minute of wall-clock time."""
        return 60.0 * len(self.recorded) / self.seconds if self.seconds else 0.0


def collect_submissions(course_dir: Path | str, lab_id: str, student: str = "*") -> list[Submission]:
    """The submissions in ``submitted/<student>/<lab>/<lab>.ipynb`` (nbgrader's layout), one per student.

    A student folder without the notebook gives an empty submission, recorded as malformed when graded.

    >>> collect_submissions("/nonexistent-course", "00-welcome")
    []
    """
    folders = sorted(p for p in (Path(course_dir) / "submitted").glob(f"{student}/{lab_id}") if p.is_dir())
    submissions = []
    for folder in folders:
        notebook = folder / f"{lab_id}.ipynb"
        submissions.append(Submission(lab_id, folder.parent.name, notebook.read_bytes() if notebook.is_file() else b""))
    return submissions


def _failed_task(assignment: Assignment, submission: Submission, error: BaseException) -> GradeResult:
    reason = f"the grading task failed: {type(error).__name__}: {error}"[:500]
    return GradeResult(assignment.lab_id, submission.student, submission.digest, ERROR, reason, 0.0,
                       sum(assignment.points.values()))


def _local(assignment: Assignment, todo: list[Submission], workers: int):
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grader") as pool:
        futures = {pool.submit(grade, assignment, submission): submission for submission in todo}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as error:  # noqa: BLE001  (grade never raises; this is a last resort)
                yield _failed_task(assignment, futures[future], error)


def dask_cluster(workers: int):
    """A ``LocalCluster`` of single-threaded worker processes on 127.0.0.1 (no dashboard)."""
    import logging

    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, silence_logs=logging.ERROR)


def _dask(assignment: Assignment, todo: list[Submission], workers: int, scheduler: str | None):
    from distributed import Client
    from distributed import as_completed as completed

    cluster = None if scheduler else dask_cluster(workers)
    with Client(scheduler or cluster) as client:
        shared = client.scatter(assignment, broadcast=True)
        futures = {client.submit(grade, shared, submission, pure=False, key=f"grade-{submission.student}-"
                                 f"{submission.digest[:16]}"): submission for submission in todo}
        for future in completed(futures):
            try:
                yield future.result()
            except Exception as error:  # noqa: BLE001  (e.g. KilledWorker: the task's workers kept dying)
                yield _failed_task(assignment, futures[future], error)
    if cluster is not None:
        cluster.close()


def autograde_class(assignment: Assignment, submissions: list[Submission], gradebook: Gradebook,
                    workers: int = 2, engine: str = "local", scheduler: str | None = None, regrade: bool = False,
                    on_result: Callable[[GradeResult], None] | None = None) -> ClassRun:
    """Grade every submission that has no result yet (all of them with ``regrade``); record each as it arrives."""
    if engine not in ENGINES:
        raise ValueError(f"autograde_class: engine {engine!r} is not one of {', '.join(ENGINES)}")
    start = time.monotonic()
    assignment = dataclasses.replace(assignment, hide=(*assignment.hide, *gradebook.files()))
    gradebook.register(assignment.lab_id, {s.student: s.digest for s in submissions})
    done = set() if regrade else gradebook.graded(assignment.lab_id)
    todo = [s for s in submissions if (s.student, s.digest) not in done]
    run = ClassRun(skipped=sorted(s.student for s in submissions if (s.student, s.digest) in done))
    if todo:
        results = (_local(assignment, todo, workers) if engine == "local"
                   else _dask(assignment, todo, workers, scheduler))
        for result in results:
            gradebook.record(result, replace=regrade)
            run.recorded.append(result)
            if on_result is not None:
                on_result(result)
    run.seconds = time.monotonic() - start
    return run
