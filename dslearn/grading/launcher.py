"""Start one sandboxed process tree and watch it: namespaces, hidden paths, resource limits, its own uid.

Run as a script (``python -I -S launcher.py SPEC.json``), never imported by student code: it is the
trusted process between the grader and the student's. ``dslearn.grading.sandbox`` writes the spec and
reads the one line of JSON this prints when the sandbox is over. What it does, in order:

1. ``unshare`` new mount, network, PID and IPC namespaces (as root; otherwise inside a new user
   namespace, where the kernel allows one). A new network namespace has only a loopback that is down:
   no connection goes anywhere, 127.0.0.1 included.
2. Forks the sandbox's init (PID 1 of the new PID namespace; when it exits the kernel kills every process
   left in the namespace). The init makes the mounts private, mounts a fresh ``/proc``, re-opens
   read-only the folders the sandbox needs below a folder closed to others (a Python installed under
   ``/root``: the rest of ``/root`` stays out of sight), binds read-only overlays, hides the paths the
   spec names (an empty tmpfs over a folder, ``/dev/null`` over a file), gives ``/tmp``, ``/var/tmp``
   and ``/dev/shm`` a small private tmpfs (where the Python or the course's checkout lives below one of
   them, that folder is bound back read-only, with what was hidden in it still hidden) and copies the
   scratch folder's files to ``/tmp/submission``.
3. Forks the student's process: resource limits (CPU time, address space, processes, file size, open
   files, no core dumps), a new session, ``no_new_privs``, then (as root) a uid of its own,
   ``uid_base + the launcher's PID``, unique among running sandboxes, owning nothing but its work
   folder; then ``execve``.
4. Watches: the wall-clock limit, the resident memory of the whole tree, the bytes written to stdout and
   stderr (drained, the start kept), and its own stdin: when the grader that started it goes away, the
   sandbox is killed. Then it prints the outcome: exit status or signal, what it was killed for, CPU
   and wall time, peak memory, and which isolation mechanisms were in force, with a warning for each
   that was not.

May import: the standard library only (it runs before privileges are dropped and must start quickly).
"""

import ctypes
import json
import os
import resource
import select
import signal
import sys
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 38, 36
SANDBOX_DIR = "/tmp/submission"
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
OUTPUT_HEAD = 8192
POLL_SECONDS = 0.1

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def unshare(flags: int) -> None:
    _check(libc.unshare(flags), "unshare")


def mount(source, target: str, fstype, flags: int, data=None) -> None:
    encode = lambda text: None if text is None else text.encode()
    _check(libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {target}")


def enter_namespaces(root: bool) -> dict:
    """Unshare what the kernel allows; returns which namespaces this process (and its children) got."""
    wanted = {"mounts": CLONE_NEWNS, "network": CLONE_NEWNET, "pids": CLONE_NEWPID, "ipc": CLONE_NEWIPC}
    got = {name: False for name in wanted}
    if not root:  # an unprivileged user may still own a user namespace, and the others inside it
        uid, gid = os.getuid(), os.getgid()
        try:
            unshare(CLONE_NEWUSER)
            for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                               ("/proc/self/gid_map", f"{gid} {gid} 1")):
                with open(path, "w") as file:
                    file.write(text)
        except OSError:
            return got
    for name, flag in wanted.items():
        try:
            unshare(flag)
            got[name] = True
        except OSError:
            pass
    return got


def hide(path: str) -> None:
    """Make a path unreadable to the sandbox: an empty root-only tmpfs over a folder, /dev/null over a file."""
    if os.path.isdir(path):
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0700")
    elif os.path.exists(path):
        mount("/dev/null", path, None, MS_BIND)


def reveal(paths: list[str]) -> None:
    """Make each path reachable (read-only) although an ancestor is closed to others (a Python under /root)."""
    handles, blocked = {}, set()
    for path in paths:
        closed = [ancestor for ancestor in _ancestors(path) if not os.stat(ancestor).st_mode & 0o001]
        if closed and os.path.isdir(path):
            handles[path] = os.open(path, os.O_PATH | os.O_DIRECTORY)
            blocked.add(closed[0])
    for ancestor in sorted(blocked, key=len):
        if not any(ancestor.startswith(other + "/") for other in blocked):
            mount("tmpfs", ancestor, "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
    for path, handle in handles.items():
        os.makedirs(path, mode=0o755, exist_ok=True)
        bind_read_only(f"/proc/self/fd/{handle}", path)
        os.close(handle)


def _ancestors(path: str) -> list[str]:
    parts = os.path.normpath(path).strip("/").split("/")
    return ["/" + "/".join(parts[:end]) for end in range(1, len(parts))]


def bind_read_only(source: str, target: str) -> None:
    mount(source, target, None, MS_BIND)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build_filesystem(spec: dict, namespaces: dict, uid, warnings: list) -> str:
    """In the sandbox's mount namespace: private mounts, /proc, hidden paths, overlays, private /tmp; the work dir.

    The work dir is ``/tmp/submission`` on the private, size-limited /tmp, holding copies of the files
    the grader put in the scratch folder: whatever the student writes stays in memory and vanishes.
    """
    if not namespaces["mounts"]:
        warnings.append("no mount namespace: hidden paths are protected by file permissions only, and the "
                        "student writes into the scratch folder on disk (each file limited in size)")
        return spec["scratch"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if namespaces["pids"]:
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError as error:
            warnings.append(f"could not mount a private /proc ({error}): the sandbox sees the machine's processes")
    scratch = os.open(spec["scratch"], os.O_RDONLY | os.O_DIRECTORY)
    reveal(spec.get("reveal", []))
    for source, target in spec.get("read_only_binds", []):  # before hiding: a source may lie in a hidden folder
        bind_read_only(source, target)
    for path in spec.get("hide", []):
        hide(path)
    private_tmp(spec["limits"]["tmpfs_bytes"], spec.get("reveal", []))
    os.mkdir(SANDBOX_DIR, 0o700)
    for name in os.listdir(scratch):
        source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=scratch)
        target = os.open(os.path.join(SANDBOX_DIR, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        while chunk := os.read(source, 1 << 20):
            os.write(target, chunk)
        os.close(source)
        os.close(target)
    os.close(scratch)
    if uid is not None:
        os.chown(SANDBOX_DIR, uid, uid)
    return SANDBOX_DIR


def private_tmp(size: int, keep: list[str]) -> None:
    """A fresh size-limited tmpfs on /tmp, /var/tmp and /dev/shm.

    The folders of ``keep`` that lie below one of them (a virtual environment or a checkout under /tmp,
    as on many CI machines) are bound back read-only, recursively: what ``hide`` covered in them stays
    covered.
    """
    below = [path for path in keep if any(path.startswith(root + "/") for root in PRIVATE_TMP)]
    handles = {path: os.open(path, os.O_PATH | os.O_DIRECTORY) for path in below if os.path.isdir(path)}
    for path in PRIVATE_TMP:
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    for path, handle in handles.items():
        os.makedirs(path, mode=0o755, exist_ok=True)
        mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC)
        mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(handle)


def set_limits(limits: dict) -> None:
    """Resource limits of the student's process, inherited by everything it starts."""
    cpu = int(limits["cpu_seconds"])
    for name, value in ((resource.RLIMIT_CPU, (cpu, cpu + 2)),
                        (resource.RLIMIT_AS, (limits["address_space_bytes"],) * 2),
                        (resource.RLIMIT_NPROC, (limits["processes"],) * 2),
                        (resource.RLIMIT_FSIZE, (limits["file_size_bytes"],) * 2),
                        (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
                        (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(name, value)


def become_student(spec: dict, uid, workdir: str, output: int, results: int) -> None:
    """In the forked student process: wire the file descriptors, limit, drop privileges, exec. Never returns."""
    try:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.dup2(results, 3)
        os.closerange(4, 65536)
        os.setsid()
        set_limits(spec["limits"])
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        os.chdir(workdir)
        env = {key: value.replace("{workdir}", workdir) for key, value in spec["env"].items()}
        env.update(HOME=workdir, PWD=workdir)
        os.execve(spec["argv"][0], spec["argv"], env)
    except BaseException as error:  # noqa: B036  (nothing may escape a forked child)
        os.write(2, f"sandbox setup failed: {error}\n".encode())
    os._exit(126)


def run_init(spec: dict, namespaces: dict, uid, output: int, results: int, report: int) -> None:
    """The sandbox's PID 1 (or plain intermediate process): set up, start the student's process, reap. Never returns."""
    warnings = []
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # if the launcher dies, so does the sandbox
    try:
        workdir = build_filesystem(spec, namespaces, uid, warnings)
        student = os.fork()
        if student == 0:
            become_student(spec, uid, workdir, output, results)
        os.close(output)
        os.close(results)
        os.write(report, json.dumps({"warnings": warnings}).encode())
        os.close(report)
        while True:  # reap everything reparented to us until the student's process is gone
            pid, status = os.wait()
            if pid == student:
                os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    except BaseException as error:  # noqa: B036
        os.write(report, json.dumps({"warnings": warnings, "fatal": f"{type(error).__name__}: {error}"}).encode())
    os._exit(125)


def sandbox_processes(uid, private_proc: bool) -> list[int]:
    """PIDs of the sandbox's processes, as this launcher's /proc shows them."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        if private_proc:
            found.append(int(entry))
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                owner = next(line for line in status if line.startswith("Uid:")).split()[1]
        except (OSError, StopIteration):
            continue
        if uid is not None and int(owner) == uid:
            found.append(int(entry))
    return found


def resident_bytes(pids: list[int], limit: int) -> int:
    """Memory of the processes: the sum of resident sizes, or, when that passes ``limit``, of proportional
    sizes (PSS), which count a page shared by forked copies once instead of once per copy."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * resource.getpagesize()
        except (OSError, IndexError, ValueError):
            pass
    if total <= limit:
        return total
    proportional = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                proportional += next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
        except (OSError, StopIteration, IndexError, ValueError):
            pass
    return proportional or total


def kill_all(uid, init: int | None, private_proc: bool) -> None:
    """Kill the init (None once it is reaped: its PID may be anyone's by then); in a PID namespace that kills
    every process in it. Without one, also kill by uid.

    With a private /proc the PIDs it lists are numbered in the sandbox's namespace, not this one's:
    they must never be signalled from here.
    """
    leftovers = [] if private_proc or uid is None else sandbox_processes(uid, False)
    for pid in [init, *leftovers] if init is not None else leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def supervise(spec: dict, namespaces: dict, uid, init: int, output: int, report: int, started: float) -> dict:
    """Wait for the sandbox; enforce wall time, memory and output; returns the outcome."""
    limits = spec["limits"]
    private_proc = namespaces["mounts"] and namespaces["pids"]
    outcome = {"killed_for": None, "output_bytes": 0, "peak_memory_bytes": 0}
    head = bytearray()
    poller = select.poll()
    poller.register(output, select.POLLIN)
    poller.register(0, select.POLLIN)
    try:  # readable when the init exits: no waiting for the next poll
        exited = os.pidfd_open(init)
        poller.register(exited, select.POLLIN)
    except (AttributeError, OSError):
        exited = None
    status, usage, setup, next_scan = None, None, b"", 0.0
    while status is None:
        for fd, _ in poller.poll(POLL_SECONDS * 1000):
            if fd == exited:
                continue
            chunk = os.read(fd, 65536)
            if fd == 0 and not chunk:  # the grader is gone: nobody will read the result
                outcome["killed_for"] = outcome["killed_for"] or "grader gone"
                poller.unregister(0)
            elif fd == output:
                if not chunk:
                    poller.unregister(output)
                outcome["output_bytes"] += len(chunk)
                head += chunk[: max(0, OUTPUT_HEAD - len(head))]
                if outcome["output_bytes"] > limits["output_bytes"]:
                    outcome["killed_for"] = outcome["killed_for"] or "output"
        if time.monotonic() >= next_scan:
            next_scan = time.monotonic() + POLL_SECONDS
            memory = resident_bytes(sandbox_processes(uid, private_proc), limits["memory_bytes"])
            outcome["peak_memory_bytes"] = max(outcome["peak_memory_bytes"], memory)
            if memory > limits["memory_bytes"]:
                outcome["killed_for"] = outcome["killed_for"] or "memory"
        if time.monotonic() - started > limits["wall_seconds"]:
            outcome["killed_for"] = outcome["killed_for"] or "wall time"
        if outcome["killed_for"]:
            kill_all(uid, init, private_proc)
        pid, raw_status, raw_usage = os.wait4(init, os.WNOHANG)
        if pid == init:
            status, usage = raw_status, raw_usage
    kill_all(uid, None, private_proc)  # the init is reaped; without a PID namespace its orphans may live on
    while True:
        chunk = os.read(report, 65536)
        if not chunk:
            break
        setup += chunk
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    details = json.loads(setup or b"{}")
    outcome.update(exit_code=code if code < 128 else None, signal=code - 128 if code >= 128 else None,
                   setup_error=details.get("fatal"), warnings=details.get("warnings", []),
                   cpu_seconds=usage.ru_utime + usage.ru_stime, wall_seconds=time.monotonic() - started,
                   output_head=head.decode("utf-8", "replace"))
    return outcome


def isolation_warnings(root: bool, namespaces: dict) -> list[str]:
    warnings = []
    if not namespaces["network"]:
        warnings.append("NO NETWORK ISOLATION: the kernel refused a network namespace; student code can open "
                        "connections (including to the grader's cluster on 127.0.0.1)")
    if not namespaces["pids"]:
        warnings.append("no PID namespace: the sandbox sees the machine's processes, and processes it leaves "
                        "behind are found by uid")
    if not root:
        warnings.append("not root: the student's code runs under your own uid; only paths hidden by mounts are "
                        "protected, and it can write wherever you can")
    return warnings


def main(spec_path: str, results_fd: int) -> int:
    """Run the sandbox described by the spec file; print its outcome as one line of JSON."""
    with open(spec_path) as file:
        spec = json.load(file)
    started = time.monotonic()
    root = os.geteuid() == 0
    namespaces = enter_namespaces(root)
    uid = spec["uid_base"] + os.getpid() if root else None
    if uid is not None and not namespaces["mounts"]:  # the scratch folder itself is the work dir
        os.chown(spec["scratch"], uid, uid)
        os.chmod(spec["scratch"], 0o700)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans come back to us, not to the machine's init
    output_read, output_write = os.pipe()
    report_read, report_write = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(output_read)
        os.close(report_read)
        run_init(spec, namespaces, uid, output_write, results_fd, report_write)
    for fd in (output_write, report_write, results_fd):
        os.close(fd)
    outcome = supervise(spec, namespaces, uid, init, output_read, report_read, started)
    outcome["isolation"] = dict(namespaces, uid=uid, private_proc=namespaces["mounts"] and namespaces["pids"])
    outcome["warnings"] = isolation_warnings(root, namespaces) + outcome["warnings"]
    sys.stdout.write(json.dumps(outcome) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
