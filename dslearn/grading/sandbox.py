"""Run a command in a sandbox and collect what it reports: limits, outcome, the isolation that was in force.

``run_sandboxed`` makes a scratch folder, writes the given files into it (the sandbox works on copies of
them in ``/tmp/submission``, on a private, size-limited /tmp: the only place it may write), starts
``launcher.py`` (the privileged process that builds the namespaces, mounts, limits and uid; see its
docstring) and reads, on a pipe, the JSON lines the sandboxed process writes to its file descriptor 3.
It never reads a file the sandbox wrote and never unpickles anything: a forged line is counted as
malformed and dropped.

The outcome's ``status`` says how the sandbox ended: ``finished`` (exit status 0), ``timeout`` (wall
clock or CPU time), ``memory`` (resident memory of the whole tree over the limit), ``output`` (too much
written to stdout/stderr), ``crash`` (any other exit or signal) or ``error`` (the sandbox could not be
set up). ``Limits`` holds every limit; the defaults fit a lab's budget (2 minutes, 2 GB).

May import: the standard library, dslearn.grading.wire.

>>> Limits().scaled(0.5).wall_seconds
90.0
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from dslearn.grading.wire import WireError, decode

LAUNCHER = Path(__file__).with_name("launcher.py")
MIB = 1024 * 1024
UID_BASE = 1_000_000_000  # sandbox uids are UID_BASE + the launcher's PID: unique while it runs, owned by no one
FINISHED, TIMEOUT, MEMORY, OUTPUT, CRASH, ERROR = "finished", "timeout", "memory", "output", "crash", "error"
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "USER": "student",
    "NBGRADER_EXECUTION": "autograde",  # labs skip widgets and interactive figures
    "DSLEARN_HEADLESS": "1",
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",  # one core per sandbox: parallel grading runs one sandbox per worker
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "NUMBA_CACHE_DIR": "{workdir}/.cache/numba",
    "IPYTHONDIR": "{workdir}/.ipython",
    "MPLCONFIGDIR": "{workdir}/.cache/matplotlib",
}
PASSED_THROUGH = ("DSLEARN_DATA",)  # the dataset cache (read-only data the labs load), when the grader has one


@dataclass(frozen=True)
class Limits:
    """Every limit of one sandboxed run. Times in seconds, sizes in MiB."""

    cell_seconds: float = 60.0  # one cell (an alarm inside the process: the cells after it still run)
    call_seconds: float = 10.0  # one call of the student's function by the grader
    wall_seconds: float = 180.0  # the whole notebook and every call: then the process tree is killed
    cpu_seconds: float = 180.0  # CPU time of each process
    memory_mb: int = 2048  # resident memory of the whole process tree
    address_space_mb: int = 8192  # virtual memory of each process (a huge allocation fails with MemoryError)
    processes: int = 32  # processes and threads of the sandbox's uid
    output_mb: float = 8.0  # bytes written to stdout and stderr outside the cells' capture
    file_size_mb: float = 64.0  # the largest file it may write
    open_files: int = 512
    tmpfs_mb: int = 128  # each private /tmp (holding the work dir), /var/tmp, /dev/shm
    results_mb: int = 128  # what it may report on its results pipe

    def scaled(self, factor: float) -> Limits:
        """The same limits with every time multiplied by ``factor`` (for quick tests, or a slow machine)."""
        return dataclasses.replace(self, cell_seconds=self.cell_seconds * factor,
                                   call_seconds=self.call_seconds * factor, wall_seconds=self.wall_seconds * factor,
                                   cpu_seconds=self.cpu_seconds * factor)

    def launcher_limits(self) -> dict:
        """The limits as ``launcher.py`` reads them."""
        return {"wall_seconds": self.wall_seconds, "cpu_seconds": self.cpu_seconds,
                "memory_bytes": int(self.memory_mb * MIB), "address_space_bytes": int(self.address_space_mb * MIB),
                "processes": self.processes, "output_bytes": int(self.output_mb * MIB),
                "file_size_bytes": int(self.file_size_mb * MIB), "open_files": self.open_files,
                "tmpfs_bytes": int(self.tmpfs_mb * MIB)}


DEFAULT_LIMITS = Limits()


@dataclass
class SandboxRun:
    """What one sandboxed run reported and how it ended."""

    status: str
    reason: str
    events: list = field(default_factory=list)  # the decoded JSON lines from descriptor 3, in order
    malformed_lines: int = 0
    exit_code: int | None = None
    signal: int | None = None
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_memory_mb: float = 0.0
    output_head: str = ""
    isolation: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def scratch_root() -> Path:
    """The folder holding every sandbox's scratch folder: root-owned, listable by no one else.

    >>> oct(scratch_root().stat().st_mode & 0o777)
    '0o711'
    """
    root = Path(tempfile.gettempdir()) / f"dslearn-grading-{os.geteuid()}"
    root.mkdir(mode=0o711, exist_ok=True)
    os.chmod(root, 0o711)
    return root


def interpreter_paths() -> list[str]:
    """The folders the sandboxed Python must read: its installation, the virtual environment, sys.path, dslearn.

    >>> os.path.realpath(sys.base_prefix) in interpreter_paths() or any(
    ...     os.path.realpath(sys.base_prefix).startswith(p + os.sep) for p in interpreter_paths())
    True
    """
    import dslearn.kernels  # an editable install finds them through a path finder, not through sys.path

    packages = (os.path.dirname(dslearn.__file__), os.path.dirname(dslearn.kernels.__file__))
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, *sys.path, *packages)
             if p and os.path.isdir(p)}
    return sorted(p for p in paths if not any(p.startswith(other + os.sep) for other in paths))


def _read_lines(fd: int, limit: int, lines: list, dropped: list) -> None:
    """Collect the lines written to the results pipe, up to ``limit`` bytes; count what is dropped."""
    size, pending = 0, b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(1 << 20):
            if size > limit:
                dropped[0] += chunk.count(b"\n")
                continue
            size += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            lines += complete
    if pending:
        lines.append(pending)


def _status(outcome: dict, finished: bool) -> tuple[str, str]:
    killed = outcome.get("killed_for")
    if outcome.get("setup_error"):
        return ERROR, f"the sandbox could not be set up: {outcome['setup_error']}"
    if killed == "wall time":
        return TIMEOUT, f"ran past the time limit of {outcome['limit_wall']:g} s and was stopped"
    if killed == "memory":
        return MEMORY, f"used more than {outcome['limit_memory'] // MIB} MiB of memory and was stopped"
    if killed == "output":
        return OUTPUT, f"wrote more than {outcome['limit_output'] // MIB} MiB to stdout/stderr and was stopped"
    if killed:
        return ERROR, f"stopped: {killed}"
    if outcome.get("signal") in (signal.SIGXCPU, signal.SIGKILL) and outcome["cpu_seconds"] >= outcome["limit_cpu"]:
        return TIMEOUT, f"used more than {outcome['limit_cpu']:g} s of CPU time and was stopped"
    if outcome.get("exit_code") == 0 and finished:
        return FINISHED, ""
    how = (f"was killed by signal {outcome['signal']}" if outcome.get("signal")
           else f"exited with status {outcome.get('exit_code')}")
    return CRASH, f"the notebook's process {how} before it finished"


def run_sandboxed(argv: list[str], files: dict[str, bytes], limits: Limits = DEFAULT_LIMITS, hide: list[str] = (),
                  read_only_binds: list[tuple[str, str]] = (), env: dict | None = None) -> SandboxRun:
    """Run ``argv`` in a fresh sandbox whose scratch folder holds ``files``; returns how it went.

    ``hide`` lists paths the sandbox must not read; ``read_only_binds`` (source, target) pairs replace
    files for the sandbox (the overlays of disabled library references). The sandboxed process reports
    on file descriptor 3; a run counts as finished when it exits with status 0 after an ``{"event":
    "done"}`` line.
    """
    root = scratch_root()
    scratch = Path(tempfile.mkdtemp(prefix="s-", dir=root))
    spec_path = scratch.with_suffix(".json")
    try:
        for name, data in files.items():
            (scratch / name).write_bytes(data)
        inherited = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
        spec = {"argv": list(argv), "env": {**SANDBOX_ENV, **inherited, **(env or {})}, "scratch": str(scratch),
                "uid_base": UID_BASE, "limits": limits.launcher_limits(), "reveal": interpreter_paths(),
                "hide": [str(root), *map(str, hide)],
                "read_only_binds": [[str(s), str(t)] for s, t in read_only_binds]}
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        os.chmod(spec_path, 0o600)
        results_read, results_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        lines, dropped = [], [0]
        reader = threading.Thread(target=_read_lines, daemon=True,
                                  args=(results_read, int(limits.results_mb * MIB), lines, dropped))
        try:
            launcher = subprocess.Popen([sys.executable, "-I", "-S", str(LAUNCHER), str(spec_path), str(results_write)],
                                        stdin=lifeline_read, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        pass_fds=(results_write,))
        finally:
            os.close(results_write)
            os.close(lifeline_read)
        reader.start()
        try:
            out, err = launcher.communicate(timeout=limits.wall_seconds + 60)
        except subprocess.TimeoutExpired:
            launcher.kill()
            out, err = launcher.communicate()
        finally:
            os.close(lifeline_write)
        reader.join(timeout=30)
        try:
            outcome = json.loads(out.decode().strip().splitlines()[-1])
        except (IndexError, ValueError):
            return SandboxRun(ERROR, f"the sandbox launcher failed: {err.decode(errors='replace')[-2000:]}")
        events, malformed = [], dropped[0]
        for line in lines:
            try:
                event = decode(line)
            except WireError:
                malformed += 1
                continue
            if isinstance(event, dict):
                events.append(event)
            else:
                malformed += 1
        finished = any(event.get("event") == "done" for event in events)
        outcome.update(limit_wall=limits.wall_seconds, limit_cpu=limits.cpu_seconds,
                       limit_memory=int(limits.memory_mb * MIB), limit_output=int(limits.output_mb * MIB))
        status, reason = _status(outcome, finished)
        return SandboxRun(status, reason, events, malformed, outcome.get("exit_code"), outcome.get("signal"),
                          outcome.get("cpu_seconds", 0.0), outcome.get("wall_seconds", 0.0),
                          outcome.get("peak_memory_bytes", 0) / MIB, outcome.get("output_head", ""),
                          outcome.get("isolation", {}), outcome.get("warnings", []))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        spec_path.unlink(missing_ok=True)
