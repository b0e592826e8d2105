"""``dslearn course ...``: validate the labs, run them headlessly, build the index, show progress.

Every command takes ``--course-dir`` (the folder holding course/ and labs/); without it the course is
found from the working directory upwards, then from the checkout dslearn was installed from.

May import: the standard library, dslearn.course.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="dslearn")
>>> add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["course", "run", "--fast", "--lab", "00-welcome", "--timeout", "60"])
>>> args.fast, args.lab, args.timeout, args.func.__name__
(True, ['00-welcome'], 60.0, 'run_command')
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import platform
import sys
from pathlib import Path

from dslearn.course.syllabus import SyllabusError, find_course_root, load_syllabus


def add_parser(subparsers) -> None:
    """Register ``course`` and its commands on the top-level parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course-dir", type=Path, default=None,
                        help="the course root holding course/ and labs/ (default: found from the working directory)")
    course = subparsers.add_parser("course", help="the learning path: validate, run and index the labs",
                                   description="Validate the labs, run them headlessly, build the index, "
                                               "show progress (see course/README.md).")
    commands = course.add_subparsers(dest="course_command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[common], help="execute labs headlessly with papermill and write a report")
    run.add_argument("--fast", action="store_true", help="set the labs' FAST parameter (small inputs, as in CI)")
    run.add_argument("--lab", action="append", metavar="ID",
                     help="run this lab (repeatable; default: every available lab)")
    run.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="seconds allowed per lab (default: the syllabus budget)")
    run.add_argument("--memory-limit", type=float, default=None, metavar="MB",
                     help="peak memory allowed per lab in MiB (default: the syllabus budget)")
    run.add_argument("--report", type=Path, default=None, metavar="DIR",
                     help="where to write report.md, report.html and the executed notebooks (default: reports/course/)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=run_command)

    validate = commands.add_parser("validate", parents=[common],
                                   help="check the syllabus, the lab folders, every lab's metadata and the index")
    validate.set_defaults(func=validate_command)

    index = commands.add_parser("index", parents=[common], help="write course/index.ipynb from the syllabus")
    index.add_argument("--check", action="store_true", help="only check that the committed index is current")
    index.set_defaults(func=index_command)

    progress = commands.add_parser("progress", parents=[common],
                                   help="show which labs a student's saved notebooks have completed")
    progress.add_argument("--labs-dir", type=Path, default=None, help="the student's labs folder (default: labs/)")
    progress.set_defaults(func=progress_command)


def _reports_errors(command):
    """Turn a broken syllabus or a missing course into a message and exit status 2 instead of a traceback."""

    @functools.wraps(command)
    def checked(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (SyllabusError, FileNotFoundError) as error:
            print(f"dslearn course {args.course_command}: {error}", file=sys.stderr)
            return 2

    return checked


def _root(args: argparse.Namespace) -> Path:
    return find_course_root() if args.course_dir is None else args.course_dir.resolve()


@_reports_errors
def run_command(args: argparse.Namespace) -> int:
    """Run labs, print the report table, write the report files; 1 when any lab did not pass."""
    from dslearn.course.report import markdown_report, write_report
    from dslearn.course.runner import run_labs

    root = _root(args)
    syllabus = load_syllabus(root)
    try:
        labs = [syllabus.lab(lab_id) for lab_id in args.lab] if args.lab else syllabus.available_labs()
    except KeyError as error:
        print(f"dslearn course run: {error.args[0]}", file=sys.stderr)
        return 2
    coming = [lab.id for lab in labs if not lab.available]
    if coming:
        print(f"dslearn course run: not available yet (status coming): {', '.join(coming)}", file=sys.stderr)
        return 2
    timeout = args.timeout or syllabus.budget.seconds
    memory = args.memory_limit or syllabus.budget.memory_mb
    report_dir = args.report.resolve() if args.report else root / "reports" / "course"
    runs = run_labs(labs, root, report_dir / "notebooks", fast=args.fast, timeout=timeout, memory_limit_mb=memory,
                    progress=not args.no_progress)
    facts = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "mode": "fast" if args.fast else "full",
             "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
             "budget per lab": f"{timeout:g} s, {memory:g} MiB"}
    markdown_path, html_path = write_report(runs, facts, report_dir)
    print(markdown_report(runs, facts))
    print(f"report: {markdown_path}\n        {html_path}")
    return 0 if all(run.ok for run in runs) else 1


@_reports_errors
def validate_command(args: argparse.Namespace) -> int:
    """Print every problem found (file, cell, message); 1 when there is any."""
    from dslearn.course.index import INDEX_FILE, index_is_current
    from dslearn.course.validate import Problem, validate_course

    root = _root(args)
    problems = validate_course(root)
    try:
        if not index_is_current(load_syllabus(root), root):
            problems.append(Problem(INDEX_FILE.as_posix(), "", "stale or missing: run `dslearn course index`"))
    except SyllabusError:
        pass  # already reported by validate_course
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"course OK: {len(load_syllabus(root).available_labs())} available lab(s) checked")
    return 0


@_reports_errors
def index_command(args: argparse.Namespace) -> int:
    """Write the index, or with --check report whether it is current."""
    from dslearn.course.index import INDEX_FILE, index_is_current, write_index

    root = _root(args)
    syllabus = load_syllabus(root)
    if args.check:
        if index_is_current(syllabus, root):
            print(f"{INDEX_FILE} is current")
            return 0
        print(f"{INDEX_FILE} is stale: run `dslearn course index`", file=sys.stderr)
        return 1
    print(f"wrote {write_index(syllabus, root)}")
    return 0


@_reports_errors
def progress_command(args: argparse.Namespace) -> int:
    """Print the progress table of a labs folder."""
    from dslearn.course.progress import course_progress, progress_markdown

    root = _root(args)
    print(progress_markdown(course_progress(load_syllabus(root), args.labs_dir or root / "labs")))
    return 0
