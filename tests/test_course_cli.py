"""The `dslearn` dispatcher (its registration protocol) and `dslearn lab`."""

import argparse
import os
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import pytest

from dslearn import cli
from dslearn.course.lab import lab_command, lab_url
from dslearn.course.syllabus import find_course_root

ROOT = find_course_root()


def leaf_parsers(parser, path=()):
    """(command path, parser) for every parser without sub-commands."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield path, parser
        return
    for name, sub in actions[0].choices.items():
        yield from leaf_parsers(sub, path + (name,))


def test_help_lists_every_registered_command_group(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for group in ("course", "grade", "lab"):
        assert group in out


def test_every_command_sets_a_function_to_run():
    leaves = dict(leaf_parsers(cli.build_parser()))
    assert {("course", "run"), ("course", "validate"), ("grade", "autograde"), ("grade", "export"), ("lab",)} <= set(
        leaves)
    for path, parser in leaves.items():
        assert callable(parser.get_default("func")), " ".join(path)


def test_a_new_command_group_is_one_module_in_the_list(monkeypatch, capsys):
    module = types.ModuleType("dslearn_test_hello")

    def add_parser(subparsers):
        parser = subparsers.add_parser("hello", help="say hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(func=lambda args: print(f"hello {args.name}") or 3)

    module.add_parser = add_parser
    monkeypatch.setitem(sys.modules, "dslearn_test_hello", module)
    monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ("dslearn_test_hello",))
    assert cli.main(["hello", "--name", "dslearn"]) == 3
    assert capsys.readouterr().out == "hello dslearn\n"


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


def test_module_entry_point_prints_the_version():
    result = subprocess.run([sys.executable, "-m", "dslearn.cli", "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("dslearn ")


def test_lab_command_runs_this_python_on_the_index_and_allows_root_only_for_root():
    command = lab_command(ROOT, port=9999, token="t0k", as_root=False)
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert command[-1] == str(ROOT / "course" / "index.ipynb")
    assert f"--ServerApp.root_dir={ROOT}" in command and "--ServerApp.port_retries=0" in command
    assert "--allow-root" not in command and "--no-browser" not in command
    assert "--allow-root" in lab_command(ROOT, 9999, "t0k", as_root=True)
    assert "--no-browser" in lab_command(ROOT, 9999, "t0k", browser=False)
    assert lab_url("0.0.0.0", 9999, "t0k") == "http://localhost:9999/lab/tree/course/index.ipynb?token=t0k"


def test_lab_refuses_a_course_without_index(tmp_path, capsys):
    assert cli.main(["lab", "--course-dir", str(tmp_path)]) == 2
    assert "run `dslearn course index`" in capsys.readouterr().err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_starts_and_serves_the_index_notebook():
    port = _free_port()
    command = lab_command(ROOT, port, "smoke", ip="127.0.0.1", browser=False, as_root=os.geteuid() == 0)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/contents/course/index.ipynb?content=0&token=smoke"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, "JupyterLab exited"
                assert time.monotonic() < deadline, "JupyterLab did not answer in 90 s"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
