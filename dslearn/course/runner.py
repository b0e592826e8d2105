"""Run labs headlessly with papermill: one fresh kernel per lab, a time and memory budget, test outcomes.

Each lab's source notebook runs in its own folder with the parameter ``FAST`` set and the environment
variable ``DSLEARN_HEADLESS=1`` (labs skip widgets and interactive figures when it is set, as they do
under nbgrader's ``NBGRADER_EXECUTION``). A monitor thread samples the resident memory of the kernel's
process tree (every child process of this one started for the lab) with psutil, keeps the peak, and
kills the tree when the lab runs past its time limit or over its memory limit. Afterwards the executed
notebook's test cells (``dslearn.course.cells.is_test_cell``) are counted as passed, failed or not run.

May import: the standard library, papermill, psutil, tqdm, dslearn.course.

>>> run = LabRun("00-welcome", "Welcome", PASSED, 4.2, 310.0, 4, 0, 0)
>>> run.ok, run.tests
(True, '4 passed, 0 failed, 0 not run')
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from dslearn.course.cells import FAILED, NOT_RUN, cell_outcome, is_test_cell
from dslearn.course.cells import PASSED as CELL_PASSED
from dslearn.course.syllabus import Lab

HEADLESS_ENV = "DSLEARN_HEADLESS"
PASSED, FAILED_RUN, TIMEOUT, OVER_MEMORY, MISSING = "passed", "failed", "timeout", "over memory", "missing"
MIB = 1024 * 1024


@dataclass(frozen=True)
class LabRun:
    """The outcome of running one lab."""

    lab_id: str
    title: str
    status: str  # passed, failed, timeout, over memory, missing
    seconds: float
    peak_memory_mb: float
    tests_passed: int
    tests_failed: int
    tests_not_run: int
    error: str = ""
    notebook: Path | None = None  # the executed notebook

    @property
    def ok(self) -> bool:
        """Whether the lab ran to the end within its budget with every test cell passing."""
        return self.status == PASSED

    @property
    def tests(self) -> str:
        """The test-cell counts as one phrase."""
        return f"{self.tests_passed} passed, {self.tests_failed} failed, {self.tests_not_run} not run"


class KernelTreeMonitor(threading.Thread):
    """Samples the memory of this process's new child processes and kills them past a time or memory limit.

    Children present when the monitor is created are not counted (they belong to someone else).
    ``peak_bytes`` is the largest sum of resident set sizes seen; ``reason`` is ``timeout`` or
    ``over memory`` when the monitor killed the tree, else ``""``.
    """

    def __init__(self, seconds: float, memory_limit_bytes: float, interval: float = 0.05):
        super().__init__(daemon=True)
        self.seconds = seconds
        self.memory_limit_bytes = memory_limit_bytes
        self.interval = interval
        self.peak_bytes = 0
        self.reason = ""
        self._me = psutil.Process()
        self._ignored = {child.pid for child in self._me.children(recursive=True)}
        self._stop_event = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self._stop_event.is_set():
            tree = [child for child in self._me.children(recursive=True) if child.pid not in self._ignored]
            self.peak_bytes = max(self.peak_bytes, _resident_bytes(tree))
            if time.monotonic() - start > self.seconds:
                self._kill(tree, TIMEOUT)
            elif self.peak_bytes > self.memory_limit_bytes:
                self._kill(tree, OVER_MEMORY)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """End the sampling thread and wait for it."""
        self._stop_event.set()
        self.join()

    def _kill(self, tree: list[psutil.Process], reason: str) -> None:
        self.reason = self.reason or reason
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()


def _resident_bytes(processes: Sequence[psutil.Process]) -> int:
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set environment variables (inherited by kernels started inside the block), then restore them.

    >>> with environment(DSLEARN_EXAMPLE="1"):
    ...     os.environ["DSLEARN_EXAMPLE"]
    '1'
    >>> "DSLEARN_EXAMPLE" in os.environ
    False
    """
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def count_test_cells(notebook: dict) -> tuple[int, int, int]:
    """(passed, failed, not run) over the test cells of an executed notebook.

    >>> cell = {"cell_type": "code", "metadata": {"tags": ["tests"]}, "execution_count": None, "outputs": []}
    >>> count_test_cells({"cells": [cell]})
    (0, 0, 1)
    """
    outcomes = [cell_outcome(cell) for cell in notebook.get("cells", []) if is_test_cell(cell)]
    return outcomes.count(CELL_PASSED), outcomes.count(FAILED), outcomes.count(NOT_RUN)


def run_lab(lab: Lab, root: Path, output_dir: Path, fast: bool = True, timeout: float = 120.0,
            memory_limit_mb: float = 2048.0) -> LabRun:
    """Execute ``root/labs/<id>/<id>.ipynb`` with papermill into ``output_dir/<id>.ipynb`` and judge it."""
    import nbformat
    import papermill

    source = Path(root) / lab.notebook
    if not source.is_file():
        return LabRun(lab.id, lab.title, MISSING, 0.0, 0.0, 0, 0, 0, f"{lab.notebook} not found")
    output = Path(output_dir) / f"{lab.id}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)  # never judge a previous run's notebook
    monitor = KernelTreeMonitor(timeout, memory_limit_mb * MIB)
    error = ""
    start = time.perf_counter()
    with environment(**{HEADLESS_ENV: "1"}):
        monitor.start()
        try:
            papermill.execute_notebook(str(source), str(output), parameters={"FAST": fast}, cwd=str(source.parent),
                                       progress_bar=False, log_output=False,
                                       execution_timeout=int(timeout) + 5)  # the monitor stops it first
        except papermill.PapermillExecutionError as failure:
            error = f"cell {failure.cell_index}: {failure.ename}: {_first_line(failure.evalue)}"
        except Exception as failure:  # a dead kernel, a timeout, a missing kernel: the lab failed, keep going
            error = f"{type(failure).__name__}: {_first_line(str(failure))}"
        finally:
            monitor.stop()
    seconds = time.perf_counter() - start
    passed, failed, not_run = count_test_cells(nbformat.read(output, as_version=4)) if output.is_file() else (0, 0, 0)
    over_budget = monitor.reason or (TIMEOUT if seconds > timeout else "")
    status = over_budget or (FAILED_RUN if error or failed or not_run else PASSED)
    if over_budget:
        error = f"{over_budget}: stopped after {seconds:.0f} s (limit {timeout:g} s, {memory_limit_mb:g} MiB)"
    return LabRun(lab.id, lab.title, status, seconds, monitor.peak_bytes / MIB, passed, failed, not_run, error,
                  output if output.is_file() else None)


def run_labs(labs: Sequence[Lab], root: Path, output_dir: Path, fast: bool = True, timeout: float = 120.0,
             memory_limit_mb: float = 2048.0, progress: bool = True) -> list[LabRun]:
    """Run labs one after the other with a tqdm progress bar (on stderr); returns their outcomes."""
    from tqdm import tqdm

    runs = []
    with tqdm(labs, desc="labs", unit="lab", file=sys.stderr, disable=not progress) as bar:
        for lab in bar:
            bar.set_postfix_str(lab.id)
            runs.append(run_lab(lab, root, output_dir, fast=fast, timeout=timeout, memory_limit_mb=memory_limit_mb))
            bar.set_postfix_str(f"{lab.id}: {runs[-1].status}")
    return runs


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
