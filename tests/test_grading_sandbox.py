"""The sandbox: no network, hidden course files, confined writes, its own uid, and every limit enforced.

Each test runs a few lines of Python in a real sandbox (``run_sandboxed``) and checks, from outside,
what they could and could not do. The sandboxed code reports on file descriptor 3, as the runner does.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from dslearn.grading import sandbox
from dslearn.grading.isolation import check_isolation
from dslearn.grading.sandbox import CRASH, FINISHED, MEMORY, OUTPUT, TIMEOUT, UID_BASE, Limits, run_sandboxed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox (own uid per submission) needs root")

QUICK = Limits(cell_seconds=5, call_seconds=5, wall_seconds=20, cpu_seconds=20, memory_mb=512,
               address_space_mb=2048, processes=16, output_mb=1, file_size_mb=1, tmpfs_mb=8)
REPORT = """
import json, os
out = os.fdopen(3, "w")
def report(**values):
    out.write(json.dumps(values) + "\\n")
    out.flush()
"""


def sandboxed(code: str, limits: Limits = QUICK, **kwargs):
    """Run ``code`` in a sandbox; it has ``report(**values)`` and ends with the runner's ``done`` line."""
    program = REPORT + textwrap.dedent(code) + "\nreport(event='done')\n"
    return run_sandboxed([sys.executable, "-I", "-c", program], {"job.json": b"{}"}, limits, **kwargs)


def reported(run) -> dict:
    values = {}
    for event in run.events:
        values.update(event)
    return values


@pytest.fixture
def outside_tmp():
    """A world-readable folder outside /tmp (inside the sandbox /tmp is private, which would hide it anyway)."""
    folder = Path("/var/lib/dslearn-grading-tests") / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, mode=0o755)
    yield folder
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()


def test_a_connection_to_a_listener_on_localhost_fails():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    run = sandboxed(f"""
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=3)
            report(connected=True)
        except OSError as error:
            report(connected=False, error=error.strerror)
        """)
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
    assert run.status == FINISHED and reported(run)["connected"] is False
    assert run.isolation["network"] is True and not any("NETWORK" in w for w in run.warnings)


def test_hidden_folders_and_files_cannot_be_read_even_when_their_mode_allows_it(outside_tmp):
    (outside_tmp / "labs").mkdir()
    (outside_tmp / "labs" / "solution.ipynb").write_text("the solution")
    (outside_tmp / "gradebook.db").write_text("every grade")
    for path in (outside_tmp / "labs" / "solution.ipynb", outside_tmp / "gradebook.db"):
        path.chmod(0o644)
    run = sandboxed(f"""
        found = {{}}
        for path in ["{outside_tmp}/labs/solution.ipynb", "{outside_tmp}/gradebook.db"]:
            try:
                found[path] = open(path).read()
            except OSError as error:
                found[path] = error.strerror
        report(found=found, listing=sorted(os.listdir("{outside_tmp}")))
        """, hide=[str(outside_tmp / "labs"), str(outside_tmp / "gradebook.db")])
    found = reported(run)["found"]
    assert "the solution" not in found.values() and "every grade" not in found.values()
    assert found[f"{outside_tmp}/gradebook.db"] == ""  # /dev/null in its place


def test_a_checkout_under_tmp_stays_readable_with_its_hidden_parts_hidden(monkeypatch):
    checkout = Path(tempfile.mkdtemp(prefix="dslearn-checkout-", dir="/tmp"))
    try:
        (checkout / "library.py").write_text("the library")
        (checkout / "labs").mkdir()
        (checkout / "labs" / "solution.ipynb").write_text("the solution")
        for path in (checkout, checkout / "labs"):
            path.chmod(0o755)
        for path in (checkout / "library.py", checkout / "labs" / "solution.ipynb"):
            path.chmod(0o644)
        with_checkout = [*sandbox.interpreter_paths(), str(checkout)]
        monkeypatch.setattr(sandbox, "interpreter_paths", lambda: with_checkout)
        run = sandboxed(f"""
            found = {{}}
            for path in ["{checkout}/library.py", "{checkout}/labs/solution.ipynb", "{checkout}/planted.py"]:
                try:
                    found[path] = open(path, "w" if path.endswith("planted.py") else "r").read()
                except OSError as error:
                    found[path] = error.strerror
            report(found=found)
            """, hide=[str(checkout / "labs")])
        found = reported(run)["found"]
        assert found[f"{checkout}/library.py"] == "the library"
        assert found[f"{checkout}/labs/solution.ipynb"] != "the solution"
        assert found[f"{checkout}/planted.py"] in ("Read-only file system", "Permission denied")
        assert not (checkout / "planted.py").exists()
    finally:
        shutil.rmtree(checkout)


def test_writes_stay_in_the_sandbox(outside_tmp):
    escaped = Path("/var/tmp") / f"dslearn-escape-{uuid.uuid4().hex}"
    run = sandboxed(f"""
        results = {{}}
        for path in ["{escaped}", "{outside_tmp}/planted.py", "scratch.txt"]:
            try:
                with open(path, "w") as file:
                    file.write("planted")
                results[path] = "written"
            except OSError as error:
                results[path] = error.strerror
        report(results=results, cwd=os.getcwd())
        """)
    results = reported(run)["results"]
    assert results["scratch.txt"] == "written" and reported(run)["cwd"] == "/tmp/submission"
    assert results[f"{outside_tmp}/planted.py"] == "Permission denied"
    assert not escaped.exists() and not (outside_tmp / "planted.py").exists()


def test_it_runs_as_a_uid_of_its_own_and_sees_only_its_own_processes():
    run = sandboxed("report(uid=os.getuid(), gid=os.getgid(), pids=[p for p in os.listdir('/proc') if p.isdigit()])")
    values = reported(run)
    assert values["uid"] >= UID_BASE and values["gid"] == values["uid"]
    assert values["uid"] == run.isolation["uid"] and len(values["pids"]) <= 3


def test_two_sandboxes_get_different_uids():
    first, second = (reported(sandboxed("report(uid=os.getuid())"))["uid"] for _ in range(2))
    assert first != second


def test_the_wall_clock_limit_kills_a_sleeper_that_ignores_signals():
    run = sandboxed("""
        import signal, time
        for number in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)
        report(sleeping=True)
        time.sleep(600)
        """, Limits(wall_seconds=2, cpu_seconds=20))
    assert run.status == TIMEOUT and "time limit of 2 s" in run.reason
    assert reported(run)["sleeping"] is True


def test_the_cpu_limit_stops_a_busy_loop_that_ignores_sigxcpu():
    run = sandboxed("""
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True:
            pass
        """, Limits(wall_seconds=30, cpu_seconds=1))
    assert run.status == TIMEOUT and "CPU time" in run.reason


def test_the_memory_limit_counts_the_whole_process_tree():
    run = sandboxed("""
        import time
        for _ in range(6):
            if os.fork() == 0:
                block = b"x" * (150 * 2**20)
                time.sleep(600)
        time.sleep(600)
        """, Limits(wall_seconds=30, memory_mb=400, address_space_mb=1024))
    assert run.status == MEMORY and "400 MiB" in run.reason


def test_forked_copies_sharing_memory_are_not_counted_once_per_copy():
    run = sandboxed("""
        import time
        block = b"x" * (100 * 2**20)
        children = [pid for pid in (os.fork() for _ in range(5)) if pid]
        if len(children) < 5:
            time.sleep(2)
            os._exit(0)
        for pid in children:
            os.waitpid(pid, 0)
        report(children=len(children))
        """, Limits(wall_seconds=30, memory_mb=400, processes=64))
    assert run.status == FINISHED, run.reason


def test_a_huge_allocation_is_a_memory_error_not_a_crash():
    run = sandboxed("""
        try:
            hog = bytearray(64 * 2**30)
        except MemoryError:
            report(memory_error=True)
        """)
    assert run.status == FINISHED and reported(run)["memory_error"] is True


def test_the_process_limit_stops_a_fork_bomb():
    run = sandboxed("""
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    import time
                    time.sleep(600)
                children += 1
        except OSError as error:
            report(children=children, error=error.strerror)
        """)
    values = reported(run)
    assert run.status == FINISHED and values["children"] < QUICK.processes
    assert values["error"] == "Resource temporarily unavailable"


def test_the_output_limit_stops_a_flood_on_the_raw_descriptors():
    run = sandboxed("""
        while True:
            os.write(1, b"spam" * 16384)
        """)
    assert run.status == OUTPUT and run.output_head.startswith("spam")


def test_the_file_size_limit_and_the_small_tmp_stop_disk_filling():
    run = sandboxed("""
        errors = {}
        for path in ["big.bin", "/tmp/big.bin", "/dev/shm/big.bin"]:
            try:
                with open(path, "wb") as file:
                    while True:
                        file.write(b"0" * 2**16)
            except OSError as error:
                errors[path] = error.strerror
        report(errors=errors)
        """)
    assert reported(run)["errors"]["big.bin"] == "File too large"
    assert run.status == FINISHED


def test_an_exit_before_the_end_is_a_crash_with_its_status():
    run = run_sandboxed([sys.executable, "-I", "-c", "import os; os._exit(3)"], {}, QUICK)
    assert run.status == CRASH and "exited with status 3" in run.reason


def test_lines_that_are_not_plain_data_are_counted_and_dropped():
    run = sandboxed("""
        os.write(3, b"not json at all\\n")
        os.write(3, b'{"$array": ["|O", [1], "gASVAAAA"]}\\n')
        """)
    assert run.status == FINISHED and run.malformed_lines == 2


def _processes_of(uid: int) -> list[int]:
    return [p.info["pid"] for p in psutil.process_iter(["pid", "uids"]) if p.info["uids"].real == uid]


def test_the_sandbox_dies_with_the_grader_that_started_it():
    grader = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        from dslearn.grading.sandbox import Limits, run_sandboxed
        code = "import time\\ntime.sleep(600)"
        run_sandboxed([sys.executable, "-I", "-c", code], {}, Limits(wall_seconds=600))
        """)])
    deadline, uid = time.monotonic() + 60, None
    while uid is None and time.monotonic() < deadline:
        launchers = [c for c in psutil.Process(grader.pid).children() if "launcher.py" in " ".join(c.cmdline())]
        if launchers and _processes_of(UID_BASE + launchers[0].pid):
            uid = UID_BASE + launchers[0].pid
        time.sleep(0.1)
    assert uid is not None, "the sandbox did not start"
    grader.send_signal(signal.SIGKILL)
    grader.wait()
    deadline = time.monotonic() + 30
    while _processes_of(uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_of(uid) == []


def test_isolation_check_reports_everything_held_on_this_machine():
    report = check_isolation()
    assert report.complete, report.lines()
    assert report.mechanisms["network"] and report.mechanisms["mounts"] and report.mechanisms["pids"]
