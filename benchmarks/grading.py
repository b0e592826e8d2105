"""Sandboxed autograding throughput: serial, a local pool, a Dask cluster on 127.0.0.1; the sandbox's overhead.

A synthetic class of lab 00 (``dslearn.grading.samples.synthetic_class``: the solution and the sample
wrong answers in turn, each copy its own submission) is graded three times into fresh gradebooks:

- serial: one local worker;
- parallel: a local pool of ``--workers`` workers (threads, each waiting on one sandbox);
- dask: a Dask ``LocalCluster`` of ``--workers`` single-threaded worker processes on 127.0.0.1, timed
  with and without starting the cluster.

Then the sandbox's overhead: the same job (the solution's cells and every probe call) run ``--repeats``
times by the runner in a plain subprocess, and as the grader runs it (launcher, namespaces, mounts,
limits, own uid, then the runner). The overhead is the difference of the medians.

Needs root (the sandbox's own uid per submission) and, for the dask row, ``pip install -e ".[grading]"``.

Usage: python benchmarks/grading.py [--size 300] [--workers 2] [--repeats 15] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dslearn.course.syllabus import find_course_root
from dslearn.grading.gradebook import Gradebook
from dslearn.grading.grader import RUNNER, Assignment, Plan, Submission, plan
from dslearn.grading.pool import autograde_class, collect_submissions, dask_cluster
from dslearn.grading.samples import synthetic_class
from dslearn.grading.sandbox import SANDBOX_ENV, Limits, run_sandboxed

LAB = "00-welcome"


def throughput(assignment: Assignment, submissions: list[Submission], folder: Path, workers: int,
               engine: str, scheduler: str | None = None) -> tuple[float, int]:
    """Submissions per minute and how many were not graded in full (status other than graded)."""
    with Gradebook(folder / f"{engine}-{workers}-{time.monotonic_ns()}.db") as book:
        run = autograde_class(assignment, submissions, book, workers=workers, engine=engine, scheduler=scheduler)
    return run.per_minute, sum(r.status != "graded" for r in run.recorded)


def dask_throughput(assignment: Assignment, submissions: list[Submission], folder: Path,
                    workers: int) -> tuple[float, float]:
    """Submissions per minute on a LocalCluster: counting its start-up, and once it is running."""
    start = time.monotonic()
    cluster = dask_cluster(workers)
    running, _ = throughput(assignment, submissions, folder, workers, "dask", scheduler=cluster.scheduler_address)
    with_start = 60 * len(submissions) / (time.monotonic() - start)
    cluster.close()
    return with_start, running


def bare_run(files: dict[str, bytes]) -> float:
    """Seconds for the runner to do the job in a plain subprocess (same environment): no namespaces, limits, uid."""
    with tempfile.TemporaryDirectory() as folder:
        for name, data in files.items():
            (Path(folder) / name).write_bytes(data)
        read, write = os.pipe()
        start = time.perf_counter()
        command = ["/bin/sh", "-c", f'exec "$0" "$@" 3>&{write}', sys.executable, "-I", str(RUNNER)]
        env = {key: value.replace("{workdir}", folder) for key, value in SANDBOX_ENV.items()}
        process = subprocess.Popen(command, cwd=folder, pass_fds=(write,), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=dict(env, HOME=folder))
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            lines = pipe.read().splitlines()
        process.wait()
        seconds = time.perf_counter() - start
    if not lines or b'"done"' not in lines[-1]:
        raise RuntimeError("the bare runner did not finish the job")
    return seconds


def sandboxed_run(steps: Plan, limits: Limits) -> float:
    """Seconds for the same job in the grader's sandbox."""
    start = time.perf_counter()
    run = run_sandboxed([sys.executable, "-I", str(RUNNER)], steps.files, limits, steps.hide, steps.binds)
    seconds = time.perf_counter() - start
    if run.status != "finished":
        raise RuntimeError(f"the sandboxed run did not finish: {run.reason}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300, help="submissions in the synthetic class")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15, help="runs of the overhead measurement")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for docs/BENCHMARKS.md")
    args = parser.parse_args()
    root = find_course_root()
    with tempfile.TemporaryDirectory(prefix="dslearn-bench-grading-") as workspace:
        folder = Path(workspace)
        synthetic_class(LAB, root, folder, args.size)
        assignment = Assignment.load(folder, LAB)
        submissions = collect_submissions(folder, LAB)
        load = os.getloadavg()[0]
        rows = []
        serial, failed = throughput(assignment, submissions, folder, 1, "local")
        rows.append(("serial (1 sandbox at a time)", serial, failed))
        parallel, failed = throughput(assignment, submissions, folder, args.workers, "local")
        rows.append((f"local pool, {args.workers} workers", parallel, failed))
        try:
            with_start, running = dask_throughput(assignment, submissions, folder, args.workers)
            rows.append((f"Dask LocalCluster on 127.0.0.1, {args.workers} workers (running)", running, 0))
            rows.append((f"Dask LocalCluster on 127.0.0.1, {args.workers} workers (incl. start-up)", with_start, 0))
        except ImportError:
            rows.append(("Dask: not installed (pip install -e '.[grading]')", 0.0, 0))
        steps = plan(assignment, submissions[0])
        bare = [bare_run(steps.files) for _ in range(args.repeats)]
        boxed = [sandboxed_run(steps, assignment.limits) for _ in range(args.repeats)]
    bare_median, boxed_median = statistics.median(bare), statistics.median(boxed)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.markdown:
        print(f"Sandboxed autograding of lab {LAB}: a synthetic class of {args.size} submissions ({machine}; "
              f"load average {load:.1f} at the start).\n")
        print("| engine | submissions per minute | not graded in full |\n|---|---:|---:|")
        for name, rate, failed in rows:
            print(f"| {name} | {rate:.1f} | {failed} |")
        print(f"\nSandbox overhead per submission (median of {args.repeats}, the solution's job: its cells and "
              f"{steps.files['calls.json'].count(b'function')} probe calls):\n")
        print("| run | median s | min s |\n|---|---:|---:|")
        print(f"| runner in a plain subprocess | {bare_median:.3f} | {min(bare):.3f} |")
        print(f"| runner in the sandbox | {boxed_median:.3f} | {min(boxed):.3f} |")
        print(f"| overhead | {boxed_median - bare_median:+.3f} ({100 * (boxed_median / bare_median - 1):+.0f}%) | "
              f"{min(boxed) - min(bare):+.3f} |")
    else:
        print(json.dumps({"machine": machine, "load": load, "rows": rows, "bare": bare, "sandboxed": boxed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
