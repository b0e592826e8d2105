"""Check, by trying, what the sandbox isolates on this machine: network, files, writes, processes, uid.

``check_isolation`` opens a listener on 127.0.0.1 and a secret file (readable by anyone, by its mode),
then runs a small probe in a sandbox that hides the secret: the probe tries to connect, to read the
secret, to write outside its scratch folder, and reports its uid and the processes it can see. The
report says what held and warns loudly about what did not (``dslearn grade isolation`` prints it).

May import: the standard library, dslearn.grading.sandbox.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dslearn.grading.sandbox import Limits, run_sandboxed

PROBE = """
import json, os, socket
report = {"uid": os.getuid(), "processes": len([p for p in os.listdir("/proc") if p.isdigit()])}
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=3).close()
    report["network"] = "connected"
except OSError as error:
    report["network"] = str(error)
try:
    report["secret"] = open(SECRET).read()
except OSError as error:
    report["secret_error"] = str(error)
try:
    with open(OUTSIDE, "w") as file:
        file.write("escaped")
    report["wrote_outside"] = True
except OSError as error:
    report["wrote_outside"] = False
out = os.fdopen(3, "w")
out.write(json.dumps(report) + "\\n")
out.write(json.dumps({"event": "done"}) + "\\n")
"""


CHECK_LIMITS = Limits(wall_seconds=30, cpu_seconds=30)


@dataclass
class IsolationReport:
    """What the sandbox isolated, as observed from inside it."""

    network: bool  # a connection to a listener on 127.0.0.1 failed
    hidden_files: bool  # a hidden, world-readable file could not be read
    writes_confined: bool  # a write to a world-writable folder of the machine did not land there
    own_uid: bool  # the student's code ran under a uid of its own, not root
    private_processes: bool  # it saw only its own processes
    mechanisms: dict = field(default_factory=dict)  # what the launcher set up (namespaces, uid)
    warnings: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every property held."""
        return all((self.network, self.hidden_files, self.writes_confined, self.own_uid, self.private_processes))

    def lines(self) -> list[str]:
        """One line per property, then the warnings."""
        rows = [("no network (connect to 127.0.0.1 fails)", self.network),
                ("course files hidden", self.hidden_files), ("writes confined to scratch", self.writes_confined),
                ("own unprivileged uid", self.own_uid), ("private process list", self.private_processes)]
        return [f"{'yes' if ok else 'NO '}  {what}" for what, ok in rows] + [f"WARNING: {w}" for w in self.warnings]


def check_isolation(limits: Limits = CHECK_LIMITS) -> IsolationReport:
    """Run the probe in a sandbox and report what held."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    folder = Path(tempfile.mkdtemp(prefix="dslearn-isolation-"))
    outside = Path("/var/tmp" if os.access("/var/tmp", os.W_OK) else tempfile.gettempdir()) / folder.name
    try:
        os.chmod(folder, 0o755)
        secret = folder / "secret.txt"
        secret.write_text("the hidden tests")
        os.chmod(secret, 0o644)
        code = (PROBE.replace("PORT", str(listener.getsockname()[1])).replace("SECRET", repr(str(secret)))
                .replace("OUTSIDE", repr(str(outside))))
        run = run_sandboxed([sys.executable, "-I", "-c", code], {}, limits, hide=[str(folder)])
        report = next((e for e in run.events if "uid" in e), {})
        try:
            listener.accept()[0].close()
            accepted = True
        except OSError:
            accepted = False
        escaped = outside.exists()
        warnings = list(run.warnings) or ([] if report else [f"the probe did not report: {run.reason}"])
        return IsolationReport(
            network=report.get("network", "connected") != "connected" and not accepted,
            hidden_files="secret" not in report and bool(report), writes_confined=bool(report) and not escaped,
            own_uid=report.get("uid", 0) not in (0, os.getuid()), private_processes=0 < report.get("processes", 0) < 10,
            mechanisms=run.isolation, warnings=warnings)
    finally:
        listener.close()
        outside.unlink(missing_ok=True)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()

