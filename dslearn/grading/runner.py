"""Inside the sandbox: run a submission's cells in IPython, then call its functions on the grader's inputs.

Run as a script in the sandbox's work folder (``python -I runner.py``; ``dslearn.grading.sandbox``
starts it through the launcher). It reads ``job.json`` (plain JSON written by the grader), then:

1. hides the modules the lab blocks (``import torch`` fails). Library references the lab disables are
   stubbed in their source files by the grader's overlays; where those are not in force (no mount
   namespace) it stubs them in memory instead, which means importing them before the notebook runs;
2. runs every cell, top to bottom, in one IPython shell, like a fresh kernel: nothing else imported
   first, magics and input transformers work. Each cell has a time limit (an alarm that raises
   ``CellTimeout`` inside it); what it prints is dropped; an error does not stop the cells after it;
3. reads ``calls.json`` and makes every call (``{"function": "mean_squared_error", "args": [...]}``):
   the arguments arrive as plain data and NumPy arrays, tensors are built here, the result (and, when
   asked, the gradients of the tensor arguments after ``backward()``) goes back as plain data.

Everything it reports is written as JSON lines (``dslearn.grading.wire``, loaded from its file so that
the dslearn package is imported by the notebook, not by this script) to file descriptor 3. None of it
is trusted: the student's code runs in this process and may rewrite any of it. The grader decides what
passed by comparing the plain data with its own reference, out of reach of this process.

May import: the standard library and IPython before the cells; numpy and dslearn after them.
"""

import importlib
import importlib.abc
import importlib.util
import io
import json
import os
import signal
import sys
import time

RESULTS_FD = 3
MESSAGE_CHARS = 500
STUB_MARK = "is disabled while this lab is graded"


class CellTimeout(BaseException):
    """A cell or call ran past its time limit (a BaseException, so that ``except Exception`` cannot swallow it)."""


class BlockedModules(importlib.abc.MetaPathFinder):
    """Refuses to import the modules a lab blocks (torch, for instance) while it is graded."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ImportError(f"{name} is not available while this lab is graded")
        return None


def disabled_reference(name: str):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"{name} {STUB_MARK}: write it yourself")

    refuse.__name__ = refuse.__qualname__ = name.rpartition(".")[2]
    return refuse


def disable_references(names) -> None:
    """Replace each named object, wherever a loaded module holds it, with a function that raises."""
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        try:
            original = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            continue
        stub = disabled_reference(name)
        for module in list(sys.modules.values()):
            for key, value in list(getattr(module, "__dict__", {}).items()):
                if value is original:
                    setattr(module, key, stub)


def overlays_in_force(paths) -> bool:
    """Whether every file the grader overlays reads as its stubbed copy here."""
    try:
        return all(STUB_MARK in open(path, encoding="utf-8").read() for path in paths)
    except OSError:
        return False


def load_wire():
    """``dslearn/grading/wire.py``, loaded from its file: the package's ``__init__`` (all of dslearn) is not run."""
    spec = importlib.util.spec_from_file_location("_sandbox_wire", os.path.join(os.path.dirname(__file__), "wire.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Discard(io.TextIOBase):
    """The cells' stdout and stderr: printed text is dropped (a cell that prints forever costs only time)."""

    def writable(self):
        return True

    def write(self, text):
        return len(text)


class Runner:
    """Runs one job and reports on file descriptor 3."""

    def __init__(self, job: dict, stream):
        self.job, self.stream, self.pid = job, stream, os.getpid()
        self.encode, self.type, self.str = json.dumps, type, str
        self.signal, self.setitimer, self.monotonic = signal.signal, signal.setitimer, time.monotonic
        self.real_stdout, self.real_stderr = sys.stdout, sys.stderr

    def emit(self, event: dict) -> None:
        if os.getpid() != self.pid:  # a process the student forked: it must not speak for the submission
            os._exit(0)
        try:
            line = self.encode(event)
        except Exception as error:  # noqa: BLE001  (a result that cannot be sent is reported as such)
            line = json.dumps({"event": event.get("event"), "id": event.get("id"), "index": event.get("index"),
                               "answer": {"ok": False, "error": "Unsendable", "message": str(error)[:200]}})
        self.stream.write(line + "\n")
        self.stream.flush()

    def alarm(self, seconds: float) -> None:
        def expire(signum, frame):
            raise CellTimeout(f"ran past its time limit of {seconds:g} s")

        self.signal(signal.SIGALRM, expire)
        self.setitimer(signal.ITIMER_REAL, seconds)

    def run_cells(self, shell) -> None:
        for index, cell in enumerate(self.job["cells"]):
            sys.stdout = sys.stderr = Discard()
            start = self.monotonic()
            error = None
            try:
                self.alarm(self.job["cell_timeout"])
                result = shell.run_cell(cell["source"], store_history=True)
                error = result.error_before_exec or result.error_in_exec
            except CellTimeout as timeout:
                error = timeout
            finally:
                self.setitimer(signal.ITIMER_REAL, 0)
                sys.stdout, sys.stderr = self.real_stdout, self.real_stderr
            self.emit({"event": "cell", "index": index, "grade_id": cell.get("grade_id"),
                       "status": "ok" if error is None else "error", "seconds": self.monotonic() - start,
                       "error": None if error is None else self.type(error).__name__,
                       "message": None if error is None else self.str(error)[:MESSAGE_CHARS]})

    def prepare_calls(self) -> list:
        """After the cells: NumPy, dslearn and the wire format, then the calls with their arrays."""
        import numpy as np

        import dslearn

        wire = load_wire()
        self.encode, self.dslearn, self.tensor_type = wire.encode, dslearn, dslearn.Tensor
        self.np_asarray, self.ndarray, self.generic = np.asarray, np.ndarray, np.generic
        with open("calls.json", encoding="utf-8") as file:
            return wire.decode(file.read())

    def argument(self, spec: dict):
        if "tensor" in spec:
            dtype = spec.get("dtype")
            return self.dslearn.tensor(spec["tensor"].copy(), dtype=getattr(self.dslearn, dtype) if dtype else None,
                                       requires_grad=bool(spec.get("requires_grad")))
        if "array" in spec:
            return spec["array"].copy()
        return spec["value"]

    def plain(self, value, depth: int = 0):
        """What the grader may see of a result: plain data, arrays, and what kind of object it was."""
        if isinstance(value, self.tensor_type):
            array = self.np_asarray(value.detach().numpy())
            return {"kind": "tensor", "value": array.copy(), "requires_grad": bool(value.requires_grad),
                    "dtype": self.str(array.dtype)}
        if isinstance(value, self.ndarray) and value.dtype.kind in "biufc":
            return {"kind": "array", "value": self.np_asarray(value).copy()}
        if isinstance(value, self.generic) and value.dtype.kind in "biuf":
            value = value.item()
        if self.type(value) in (bool, int, float):
            return {"kind": "number", "value": value}
        if value is None:
            return {"kind": "none"}
        if self.type(value) is str:
            return {"kind": "str", "value": value[:10000]}
        if isinstance(value, (list, tuple)) and depth < 4:
            return {"kind": "sequence", "items": [self.plain(item, depth + 1) for item in list(value)[:1000]]}
        return {"kind": "object", "type": self.type(value).__name__}

    def call(self, namespace: dict, spec: dict) -> dict:
        name = spec["function"].split(".")[0]
        if name not in namespace:
            raise NameError(f"name {name!r} is not defined: did its cell run without errors?")
        target = namespace[name]
        for attribute in spec["function"].split(".")[1:]:
            target = getattr(target, attribute)
        args = [self.argument(arg) for arg in spec["args"]]
        result = target(*args, **{key: self.argument(arg) for key, arg in spec.get("kwargs", {}).items()})
        answer = {"ok": True, "result": self.plain(result)}
        if spec.get("backward"):
            try:
                (result if result.ndim == 0 else result.sum()).backward()
                answer["grads"] = [self.np_asarray(arg.grad.numpy()).copy() if
                                   isinstance(arg, self.tensor_type) and arg.grad is not None else None
                                   for arg in args]
            except Exception as error:  # noqa: BLE001
                answer["backward_error"] = f"{self.type(error).__name__}: {self.str(error)[:MESSAGE_CHARS]}"
        return answer

    def run_calls(self, namespace: dict, calls: list) -> None:
        timeouts = 0
        for spec in calls:
            if timeouts >= self.job.get("max_call_timeouts", 3):
                self.emit({"event": "call", "id": spec["id"], "answer": {"ok": False, "error": "Skipped"}})
                continue
            try:
                self.alarm(self.job["call_timeout"])
                answer = self.call(namespace, spec)
            except CellTimeout:
                timeouts += 1
                answer = {"ok": False, "error": "CallTimeout"}
            except BaseException as error:  # noqa: B036  (student code may raise anything, SystemExit included)
                answer = {"ok": False, "error": self.type(error).__name__,
                          "mro": [klass.__name__ for klass in self.type(error).__mro__],
                          "message": self.str(error)[:MESSAGE_CHARS]}
            finally:
                self.setitimer(signal.ITIMER_REAL, 0)
            self.emit({"event": "call", "id": spec["id"], "answer": answer})


def make_shell():
    """An IPython shell as a kernel has it (magics, transformers), without history or tracebacks."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    quiet = lambda *args, **kwargs: None  # nobody reads the tracebacks: skip formatting them (time and memory)
    shell.showtraceback = shell.showsyntaxerror = shell.showindentationerror = quiet
    return shell


def main() -> int:
    stream = os.fdopen(RESULTS_FD, "w", encoding="utf-8")
    with open("job.json", encoding="utf-8") as file:
        job = json.load(file)
    sys.meta_path.insert(0, BlockedModules(job.get("blocked_modules", [])))
    if job.get("disabled") and not overlays_in_force(job.get("overlaid_files", [])):
        disable_references(job["disabled"])
    runner = Runner(job, stream)
    runner.emit({"event": "start"})
    shell = make_shell()
    runner.run_cells(shell)
    runner.emit({"event": "cells done"})
    try:
        calls = runner.prepare_calls()
    except BaseException as error:  # noqa: B036  (the cells may have broken numpy or dslearn for good)
        message = f"{type(error).__name__}: {str(error)[:MESSAGE_CHARS]}"
        calls = []
        runner.emit({"event": "calls failed", "message": message})
    runner.run_calls(shell.user_ns, calls)
    runner.emit({"event": "done"})
    stream.flush()
    os._exit(0)  # skip exit handlers the student may have registered


if __name__ == "__main__":
    sys.exit(main())
