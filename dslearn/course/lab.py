"""``dslearn lab``: open JupyterLab on the course's start page, course/index.ipynb.

JupyterLab runs from this Python (``python -m jupyterlab``) with the course root as its root folder, a
token made here so the URL can be printed before the server starts, and no port fallback (a busy port
is an error, not a silently different URL). Run as root (as in many containers), it adds
``--allow-root``, which JupyterLab otherwise refuses to start without.

May import: the standard library, dslearn.course.

>>> command = lab_command(Path("/srv/course"), port=8899, token="abc", ip="127.0.0.1", browser=False, as_root=True)
>>> command[1:3], "--allow-root" in command, "--no-browser" in command
(['-m', 'jupyterlab'], True, True)
>>> lab_url("127.0.0.1", 8899, "abc")
'http://127.0.0.1:8899/lab/tree/course/index.ipynb?token=abc'
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from dslearn.course.index import INDEX_FILE
from dslearn.course.syllabus import find_course_root


def add_parser(subparsers) -> None:
    """Register ``lab`` on the top-level parser's subparsers."""
    lab = subparsers.add_parser("lab", help="open JupyterLab on course/index.ipynb",
                                description="Start JupyterLab 4 on the course's start page and print its URL.")
    lab.add_argument("--course-dir", type=Path, default=None, help="the course root (default: found from here)")
    lab.add_argument("--port", type=int, default=8888, help="the port to serve on (default: 8888)")
    lab.add_argument("--ip", default="localhost", help="the address to listen on (0.0.0.0 inside a container)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.set_defaults(func=lab_main)


def lab_url(ip: str, port: int, token: str) -> str:
    """The URL of the index notebook on a running server."""
    host = "localhost" if ip in ("0.0.0.0", "") else ip
    return f"http://{host}:{port}/lab/tree/{INDEX_FILE.as_posix()}?token={token}"


def lab_command(root: Path, port: int, token: str, ip: str = "localhost", browser: bool = True,
                as_root: bool = False) -> list[str]:
    """The command line that starts JupyterLab on ``root`` and opens the index notebook."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={ip}",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    if not browser:
        command.append("--no-browser")
    if as_root:
        command.append("--allow-root")
    command.append(str(root / INDEX_FILE))
    return command


def lab_main(args: argparse.Namespace) -> int:
    """Start JupyterLab and wait for it; its exit status is ours."""
    root = find_course_root() if args.course_dir is None else args.course_dir.resolve()
    if not (root / INDEX_FILE).is_file():
        print(f"dslearn lab: {root / INDEX_FILE} not found; run `dslearn course index`", file=sys.stderr)
        return 2
    token = secrets.token_hex(24)
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0
    command = lab_command(root, args.port, token, args.ip, browser=not args.no_browser, as_root=as_root)
    print(f"JupyterLab: {lab_url(args.ip, args.port, token)}", flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130
