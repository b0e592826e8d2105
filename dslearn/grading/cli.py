"""``dslearn grade ...``: the instructor workflow over nbgrader, from any directory.

    dslearn grade release 00-welcome [--to DIR] [--exchange DIR [--force]]
    dslearn grade collect 00-welcome [--from DIR] [--exchange DIR]
    dslearn grade autograde 00-welcome [--from DIR] [--student ID] [--force]
    dslearn grade feedback 00-welcome [--student ID]
    dslearn grade export [--to grades.csv] [--lab 00-welcome ...]
    dslearn grade scores 00-welcome
    dslearn grade check 00-welcome         # grade the sample submissions against their expected scores
    dslearn grade sandboxed 00-welcome [--workers N] [--engine local|dask [--scheduler ADDRESS]] [--regrade]
    dslearn grade sandboxed-scores 00-welcome [--csv FILE]
    dslearn grade sandboxed-feedback 00-welcome [--student ID] [--to DIR]
    dslearn grade isolation                # what the sandbox isolates on this machine

``--course-dir`` is nbgrader's course directory (it holds labs/ and receives release/, submitted/,
autograded/, feedback/ and gradebook.db); by default the course root found from the working directory.
``--config`` defaults to grading/nbgrader_config.py. The ``sandboxed`` commands grade in sandboxes, with
probes where the lab has them, into ``sandbox-gradebook.db`` (``--gradebook``). See grading/README.md.

May import: the standard library, dslearn.course, dslearn.grading.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="dslearn")
>>> add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["grade", "autograde", "00-welcome", "--force", "--course-dir", "/tmp/c"])
>>> args.lab, args.force, args.course_dir.as_posix(), args.func.__name__
('00-welcome', True, '/tmp/c', 'autograde_command')
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path

from dslearn.course.syllabus import find_course_root


def add_parser(subparsers) -> None:
    """Register ``grade`` and its commands on the top-level parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course-dir", type=Path, default=None,
                        help="nbgrader's course directory, holding labs/ (default: the course root found from here)")
    common.add_argument("--config", type=Path, default=None, help="nbgrader configuration file "
                        "(default: grading/nbgrader_config.py)")
    common.add_argument("--exchange", type=Path, default=None, help="nbgrader's exchange folder, for release/collect")
    grade = subparsers.add_parser("grade", help="instructor workflow over nbgrader: release, collect, autograde, ...",
                                  description="The instructor workflow over nbgrader, from any directory "
                                              "(see grading/README.md).")
    commands = grade.add_subparsers(dest="grade_command", required=True, metavar="COMMAND")

    release = commands.add_parser("release", parents=[common], help="generate the student version and hand it out")
    release.add_argument("lab")
    release.add_argument("--to", type=Path, default=None, metavar="DIR", help="also copy it into DIR/<lab>/")
    release.add_argument("--force", action="store_true", help="replace the lab if it is already in the exchange")
    release.set_defaults(func=release_command)

    collect = commands.add_parser("collect", parents=[common], help="bring submissions into submitted/")
    collect.add_argument("lab")
    collect.add_argument("--from", dest="from_folder", type=Path, default=None, metavar="DIR",
                         help="a folder with one <student>/ folder or <student>.ipynb per student "
                              "(default: the exchange)")
    collect.set_defaults(func=collect_command)

    autograde = commands.add_parser("autograde", parents=[common], help="grade submissions with the hidden tests")
    autograde.add_argument("lab")
    autograde.add_argument("--from", dest="from_folder", type=Path, default=None, metavar="DIR",
                           help="collect this folder of submissions first (as `collect --from`)")
    autograde.add_argument("--student", default="*", help="grade only this student")
    autograde.add_argument("--force", action="store_true", help="re-grade submissions that were graded before")
    autograde.set_defaults(func=autograde_command)

    feedback = commands.add_parser("feedback", parents=[common], help="HTML feedback per student, hidden tests removed")
    feedback.add_argument("lab")
    feedback.add_argument("--student", default=None, help="only this student")
    feedback.set_defaults(func=feedback_command)

    export = commands.add_parser("export", parents=[common], help="write grades as CSV")
    export.add_argument("--to", type=Path, default=Path("grades.csv"), metavar="FILE", help="default: grades.csv")
    export.add_argument("--lab", action="append", help="only this lab (repeatable)")
    export.set_defaults(func=export_command)

    scores = commands.add_parser("scores", parents=[common], help="print each student's score per graded cell")
    scores.add_argument("lab")
    scores.set_defaults(func=scores_command)

    check = commands.add_parser("check", parents=[common],
                                help="grade the untouched release, the solution and grading/submissions/<lab>/*.yml")
    check.add_argument("lab")
    check.add_argument("--workspace", type=Path, default=None,
                       help="scratch course directory (default: a temporary one)")
    check.set_defaults(func=check_command)
    _add_sandboxed_parsers(commands, common)


def _add_sandboxed_parsers(commands, common: argparse.ArgumentParser) -> None:
    gradebook = argparse.ArgumentParser(add_help=False)
    gradebook.add_argument("--gradebook", type=Path, default=None,
                           help="the sandboxed grader's gradebook (default: <course-dir>/sandbox-gradebook.db)")
    sandboxed = commands.add_parser("sandboxed", parents=[common, gradebook],
                                    help="grade submissions in sandboxes, in parallel, resumably")
    sandboxed.add_argument("lab")
    sandboxed.add_argument("--from", dest="from_folder", type=Path, default=None, metavar="DIR",
                           help="collect this folder of submissions first (as `collect --from`)")
    sandboxed.add_argument("--student", default="*", help="grade only this student")
    sandboxed.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="sandboxes at once")
    sandboxed.add_argument("--engine", choices=["local", "dask"], default="local",
                           help="local: threads in this process; dask: a Dask cluster")
    sandboxed.add_argument("--scheduler", default=None, metavar="ADDRESS",
                           help="a running Dask scheduler (default: a local cluster on 127.0.0.1)")
    sandboxed.add_argument("--regrade", action="store_true", help="grade again what has a result already")
    sandboxed.add_argument("--time-scale", type=float, default=1.0, metavar="F",
                           help="multiply every time limit by F (a slow machine: 2)")
    sandboxed.set_defaults(func=sandboxed_command)

    scores = commands.add_parser("sandboxed-scores", parents=[common, gradebook],
                                 help="print (or write as CSV) the sandboxed grades of a lab")
    scores.add_argument("lab")
    scores.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write them to FILE")
    scores.set_defaults(func=sandboxed_scores_command)

    feedback = commands.add_parser("sandboxed-feedback", parents=[common, gradebook],
                                   help="one Markdown feedback page per student, from the sandboxed grades")
    feedback.add_argument("lab")
    feedback.add_argument("--student", default=None, help="only this student")
    feedback.add_argument("--to", type=Path, default=None, metavar="DIR",
                          help="default: <course-dir>/feedback-sandboxed/<student>/<lab>.md")
    feedback.set_defaults(func=sandboxed_feedback_command)

    isolation = commands.add_parser("isolation", help="check what the sandbox isolates on this machine")
    isolation.set_defaults(func=isolation_command, grade_command="isolation")


def _reports_errors(command):
    """Turn nbgrader failures and bad inputs into a message and exit status 2."""

    @functools.wraps(command)
    def checked(args: argparse.Namespace) -> int:
        from dslearn.grading.samples import SampleError
        from dslearn.grading.workflow import GradingError

        try:
            return command(args)
        except (GradingError, SampleError, FileNotFoundError) as error:
            print(f"dslearn grade {args.grade_command}: {error}", file=sys.stderr)
            return 2

    return checked


def _course(args: argparse.Namespace):
    from dslearn.grading.workflow import GradingCourse

    root = args.course_dir.resolve() if args.course_dir else find_course_root()
    return GradingCourse(root, config_file=args.config, exchange=args.exchange)


def _score_table(scores: dict) -> str:
    grade_ids = sorted({grade_id for score in scores.values() for grade_id in score.cells})
    lines = ["student\tscore\t" + "\t".join(grade_ids)]
    for student, score in sorted(scores.items()):
        cells = "\t".join(f"{score.cells[g].score:g}" if g in score.cells else "-" for g in grade_ids)
        lines.append(f"{student}\t{score.score:g}/{score.max_score:g}\t{cells}")
    return "\n".join(lines)


@_reports_errors
def release_command(args: argparse.Namespace) -> int:
    """Generate and release one lab."""
    for place in _course(args).release(args.lab, to=args.to, force=args.force):
        print(f"released {args.lab}: {place}")
    return 0


@_reports_errors
def collect_command(args: argparse.Namespace) -> int:
    """Collect one lab's submissions."""
    students = _course(args).collect(args.lab, from_folder=args.from_folder)
    print(f"collected {len(students)} submission(s) of {args.lab}: {', '.join(students)}")
    return 0


@_reports_errors
def autograde_command(args: argparse.Namespace) -> int:
    """Autograde one lab (optionally collecting a folder first) and print the scores."""
    course = _course(args)
    if args.from_folder is not None:
        course.collect(args.lab, from_folder=args.from_folder)
    result = course.autograde(args.lab, student=args.student, force=args.force)
    print(f"autograded {len(result.graded)} submission(s) of {args.lab}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} graded before ({', '.join(result.skipped)}): "
              "pass --force to re-grade them")
    print(_score_table(course.scores(args.lab)))
    return 0


@_reports_errors
def feedback_command(args: argparse.Namespace) -> int:
    """Generate feedback pages."""
    pages = _course(args).feedback(args.lab, student=args.student)
    print("\n".join(str(page) for page in pages) or "no autograded submissions: nothing to give feedback on")
    return 0


@_reports_errors
def export_command(args: argparse.Namespace) -> int:
    """Export grades as CSV."""
    print(f"grades written to {_course(args).export(args.to, lab_ids=args.lab)}")
    return 0


@_reports_errors
def scores_command(args: argparse.Namespace) -> int:
    """Print the scores of one lab from the gradebook."""
    scores = _course(args).scores(args.lab)
    print(_score_table(scores) if scores else f"no graded submissions of {args.lab}")
    return 0


@_reports_errors
def check_command(args: argparse.Namespace) -> int:
    """Grade the sample submissions of a lab and compare with their expected scores; 1 on any disagreement."""
    from dslearn.grading.samples import check_lab

    root = args.course_dir.resolve() if args.course_dir else find_course_root()
    with tempfile.TemporaryDirectory(prefix=f"dslearn-check-{args.lab}-") as scratch:
        result = check_lab(args.lab, root, args.workspace or scratch)
        print(_score_table(result.scores))
        for name, reason in result.skipped.items():
            print(f"skipped {name}: {reason}")
        problems = result.problems()
    for problem in problems:
        print(problem)
    print(f"{args.lab}: {'OK' if not problems else f'{len(problems)} problem(s)'} ({result.seconds:.0f} s)")
    return 1 if problems else 0


def _gradebook(args: argparse.Namespace):
    from dslearn.grading.gradebook import GRADEBOOK_FILE, Gradebook

    return Gradebook(args.gradebook or _course(args).root / GRADEBOOK_FILE)


def _result_table(results: dict) -> str:
    lines = ["student\tstatus\tscore\treason"]
    lines += [f"{student}\t{r.status}\t{r.score:g}/{r.max_score:g}\t{r.reason}" for student, r in results.items()]
    return "\n".join(lines)


@_reports_errors
def sandboxed_command(args: argparse.Namespace) -> int:
    """Grade a lab's submissions in sandboxes, in parallel; resume where a previous run stopped."""
    from dslearn.grading.grader import Assignment
    from dslearn.grading.pool import autograde_class, collect_submissions
    from dslearn.grading.sandbox import Limits

    course = _course(args)
    if args.from_folder is not None:
        course.collect(args.lab, from_folder=args.from_folder)
    downloads = () if args.from_folder is None else (str(args.from_folder.resolve()),)  # other students' files
    assignment = Assignment.load(course.root, args.lab, limits=Limits().scaled(args.time_scale), hide=downloads)
    if assignment.probes is None:
        print(f"{args.lab} has no probes (grading/probes/{args.lab}.py): its test cells are scored in the "
              "student's kernel, which the student's code can tamper with", file=sys.stderr)
    submissions = collect_submissions(course.root, args.lab, args.student)
    with _gradebook(args) as gradebook:
        run = autograde_class(assignment, submissions, gradebook, workers=args.workers, engine=args.engine,
                              scheduler=args.scheduler, regrade=args.regrade,
                              on_result=lambda r: print(f"{r.student}: {r.status} {r.score:g}/{r.max_score:g}",
                                                        flush=True))
        current = gradebook.current(args.lab)
    print(f"graded {len(run.recorded)} submission(s) of {args.lab} in {run.seconds:.1f} s "
          f"({run.per_minute:.1f} per minute); {len(run.skipped)} had a result already")
    for warning in sorted({w for r in run.recorded for w in r.warnings}):
        print(f"WARNING: {warning}", file=sys.stderr)
    print(_result_table({s: r for s, r in current.items() if args.student in ("*", s)}))
    return 0


@_reports_errors
def sandboxed_scores_command(args: argparse.Namespace) -> int:
    """Print or export the sandboxed grades of a lab."""
    with _gradebook(args) as gradebook:
        if args.csv is not None:
            print(f"grades written to {gradebook.export(args.csv, args.lab)}")
            return 0
        current = gradebook.current(args.lab)
    print(_result_table(current) if current else f"no sandboxed grades of {args.lab}")
    return 0


@_reports_errors
def sandboxed_feedback_command(args: argparse.Namespace) -> int:
    """Write one Markdown feedback page per student."""
    from dslearn.grading.feedback import markdown_feedback

    folder = args.to or _course(args).root / "feedback-sandboxed"
    with _gradebook(args) as gradebook:
        current = gradebook.current(args.lab)
    for student, result in current.items():
        if args.student in (None, student):
            page = folder / student / f"{args.lab}.md"
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(markdown_feedback(result) + "\n", encoding="utf-8")
            print(page)
    return 0


def isolation_command(args: argparse.Namespace) -> int:
    """Report what the sandbox isolates here; exit status 1 when something does not hold."""
    from dslearn.grading.isolation import check_isolation

    report = check_isolation()
    print("\n".join(report.lines()))
    print("mechanisms: " + ", ".join(f"{key}={value}" for key, value in report.mechanisms.items()))
    return 0 if report.complete else 1
