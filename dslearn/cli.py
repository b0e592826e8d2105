"""The ``dslearn`` command: a small argparse dispatcher over subcommand modules.

Adding a command group is adding one module name to ``COMMAND_MODULES``. The protocol: the module has
``add_parser(subparsers)``, which adds its parser with ``subparsers.add_parser(NAME, ...)`` and sets
``func`` on it (``parser.set_defaults(func=...)``, on each sub-parser when it has sub-commands). ``func``
takes the parsed ``argparse.Namespace`` and returns the exit status. Modules should import heavy
libraries inside their functions, so that ``dslearn --help`` stays quick.

May import: the standard library and every dslearn module named in COMMAND_MODULES.

>>> main(["course", "index", "--check"])
course/index.ipynb is current
0
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# The registration point: one module per top-level command group, each exposing add_parser(subparsers).
COMMAND_MODULES = (
    "dslearn.course.cli",  # dslearn course run|validate|index|progress
    "dslearn.course.lab",  # dslearn lab
    "dslearn.grading.cli",  # dslearn grade release|collect|autograde|feedback|export|scores|check
    "dslearn.training.cli",  # dslearn train mnist --model mlp|cnn
)


def build_parser() -> argparse.ArgumentParser:
    """The ``dslearn`` parser with every registered command group."""
    from dslearn import __version__

    parser = argparse.ArgumentParser(prog="dslearn", description="dslearn: the framework's course and tools.")
    parser.add_argument("--version", action="version", version=f"dslearn {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), run the chosen command, return its exit status."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
