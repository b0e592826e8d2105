"""Probes: a lab's autograded cells checked by trusted code, on inputs drawn when the submission is graded.

A lab with probes has a file ``grading/probes/<lab-id>.py`` next to its sample submissions. The grader
runs it, never the sandbox. It defines:

- ``probes(rng)``: for each graded cell (nbgrader grade id), a list of ``Probe``. ``rng`` is a NumPy
  generator seeded per submission from a secret the sandbox cannot read, so the inputs are new for
  every submission and unknown in advance;
- ``DISABLED`` (optional): dotted names of the library references the lab asks students to rewrite;
  while the lab is graded they raise, in every module that holds them, and their source files are
  replaced for the sandbox, so that reloading or reading the library brings them back nowhere;
- ``BLOCKED_MODULES`` (optional): top-level modules the sandbox may not import (``torch``).

A ``Probe`` is a description (the only thing feedback shows), the calls to make in the sandbox (the
function's name in the notebook and its arguments: ``tensor(array)``, ``array(array)`` or plain
values) and a check, run here on the plain data that came back (``Answer``). Ready-made probes cover
the usual checks: ``returns`` (value and shape against a reference computed here), ``raises``,
``gradients`` (against reference gradients), ``gradcheck`` (the student's gradients against central
differences of the student's own function, computed here from the values it returned) and
``records_gradient``. A cell scores its points when every probe passes.

May import: the standard library, numpy, dslearn.grading.wire.

>>> import numpy as np
>>> probe = returns("a 2-d input", call("f", tensor(np.ones((2, 2)))), 1.0)
>>> answer = Answer.from_wire({"ok": True, "result": {"kind": "tensor", "value": np.array(1.0),
...                                                   "requires_grad": False, "dtype": "float64"}})
>>> check(probe, [answer]), check(probe, [Answer.from_wire({"ok": False, "error": "ValueError"})])
(None, 'raised ValueError')
"""

from __future__ import annotations

import hashlib
import hmac
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PROBES_DIR = Path("grading") / "probes"
KINDS = ("tensor", "array", "number", "str", "none", "sequence", "object")


class ProbeFileError(ValueError):
    """A probe file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Argument:
    """One argument of a call, as it travels to the sandbox: a tensor, an array or a plain value."""

    kind: str
    value: object
    dtype: str | None = None
    requires_grad: bool = False

    def wire(self) -> dict:
        if self.kind == "tensor":
            return {"tensor": self.value, "dtype": self.dtype, "requires_grad": self.requires_grad}
        return {self.kind: self.value}


def tensor(values, dtype: str | None = "float64", requires_grad: bool = False) -> Argument:
    """A tensor argument: the sandbox builds ``dslearn.tensor(values, dtype=..., requires_grad=...)``.

    >>> tensor([1.0, 2.0], requires_grad=True).wire()["requires_grad"]
    True
    """
    return Argument("tensor", np.asarray(values), dtype, requires_grad)


def array(values) -> Argument:
    """A NumPy array argument.

    >>> array([1, 2]).wire()
    {'array': array([1, 2])}
    """
    return Argument("array", np.asarray(values))


@dataclass(frozen=True)
class Call:
    """Call ``function`` (a name, or a dotted attribute path, in the notebook) with these arguments."""

    function: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    backward: bool = False  # then call backward() on the result (on its sum when not 0-d), return the gradients

    def wire(self, call_id: str) -> dict:
        wrap = lambda arg: arg.wire() if isinstance(arg, Argument) else {"value": arg}
        return {"id": call_id, "function": self.function, "args": [wrap(arg) for arg in self.args],
                "kwargs": {key: wrap(arg) for key, arg in self.kwargs.items()}, "backward": self.backward}


def call(function: str, *args, backward: bool = False, **kwargs) -> Call:
    """``call("mean_squared_error", tensor(p), tensor(t))``: one call of the student's function.

    >>> call("f", 1, backward=True, scale=2).wire("c0")
    {'id': 'c0', 'function': 'f', 'args': [{'value': 1}], 'kwargs': {'scale': {'value': 2}}, 'backward': True}
    """
    return Call(function, tuple(args), dict(kwargs), backward)


@dataclass(frozen=True)
class Answer:
    """What one call returned, as plain data checked for shape and type (nothing here is a student object)."""

    ok: bool
    error: str | None = None  # the exception's class name, or Malformed / CallTimeout / Skipped / Missing
    error_types: tuple = ()  # names of the exception's classes, most derived first
    message: str = ""
    kind: str | None = None  # tensor, array, number, str, none, sequence or object
    value: object = None  # an ndarray for tensor and array, a number, a string, or a list of Answers
    requires_grad: bool = False
    grads: tuple = ()  # one ndarray or None per argument, when the call asked for backward()
    backward_error: str | None = None

    @classmethod
    def from_wire(cls, data) -> Answer:
        """Validate untrusted plain data; anything unexpected becomes a failed, ``Malformed`` answer."""
        try:
            return cls._parse(data)
        except (KeyError, TypeError, ValueError):
            return cls(False, "Malformed")

    @classmethod
    def _parse(cls, data) -> Answer:
        if not isinstance(data, dict) or type(data.get("ok")) is not bool:
            raise ValueError("not an answer")
        if not data["ok"]:
            types_ = data.get("mro", [])
            return cls(False, str(data.get("error")), tuple(map(str, types_)) if isinstance(types_, list) else (),
                       str(data.get("message", ""))[:500])
        result = cls._result(data["result"], 0)
        grads = data.get("grads", [])
        if not isinstance(grads, list) or not all(g is None or isinstance(g, np.ndarray) for g in grads):
            raise ValueError("gradients are arrays")
        backward_error = data.get("backward_error")
        return cls(True, kind=result.kind, value=result.value, requires_grad=result.requires_grad,
                   grads=tuple(grads), backward_error=None if backward_error is None else str(backward_error)[:500])

    @classmethod
    def _result(cls, data: dict, depth: int) -> Answer:
        kind = data["kind"]
        if kind not in KINDS or depth > 4:
            raise ValueError(f"unknown kind {kind!r}")
        value = data.get("value")
        if kind in ("tensor", "array") and not isinstance(value, np.ndarray):
            raise ValueError("a tensor's value is an array")
        if kind == "number" and type(value) not in (bool, int, float):
            raise ValueError("a number")
        if kind == "sequence":
            value = [cls._result(item, depth + 1) for item in data["items"]]
        return cls(True, kind=kind, value=value if kind != "object" else str(data.get("type")),
                   requires_grad=data.get("requires_grad") is True)


@dataclass(frozen=True)
class Probe:
    """A check on one or more calls: ``check(answers)`` returns None when it passes, else why it failed."""

    description: str
    calls: tuple[Call, ...]
    check: Callable[[list[Answer]], str | None]


def check(probe: Probe, answers: Sequence[Answer]) -> str | None:
    """Run a probe's check on its answers; None when it passes. A check that fails to run fails the probe."""
    try:
        return probe.check(list(answers))
    except Exception as error:  # noqa: BLE001  (a forged answer must never crash the grader)
        return f"the answer could not be checked ({type(error).__name__})"


def failure(answer: Answer) -> str | None:
    """Why a call gave no usable result, or None when it returned.

    >>> failure(Answer(False, "CallTimeout")), failure(Answer(False, "KeyError"))
    ('did not finish in time', 'raised KeyError')
    """
    if answer.ok:
        return None
    return {"CallTimeout": "did not finish in time", "Skipped": "not run (earlier calls timed out)",
            "Missing": "no answer (the notebook stopped before this call)",
            "Malformed": "the answer was not plain data"}.get(answer.error, f"raised {answer.error}")


def _a(kind: str | None) -> str:
    kind = kind or "nothing"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _numeric(answer: Answer, kind: str) -> tuple[np.ndarray | None, str | None]:
    if answer.kind != kind and not (kind == "number" and answer.kind in ("tensor", "array")):
        return None, f"returned {_a(answer.kind)}, expected {_a(kind)}"
    values = np.asarray(answer.value)
    if values.dtype.kind not in "biuf":
        return None, f"returned values of dtype {values.dtype}, expected real numbers"
    return values.astype(np.float64), None


def returns(description: str, call_: Call, expected, *, rtol: float = 1e-7, atol: float = 0.0,
            kind: str = "tensor") -> Probe:
    """The call returns ``kind`` (tensor, array or number) with ``expected``'s shape and values (``np.allclose``)."""
    expected = np.asarray(expected, dtype=np.float64)

    def check_value(answers: list[Answer]) -> str | None:
        answer = answers[0]
        values, problem = (None, failure(answer)) if not answer.ok else _numeric(answer, kind)
        if problem:
            return problem
        if values.shape != expected.shape:
            return f"returned shape {values.shape}, expected shape {expected.shape}"
        return None if np.allclose(values, expected, rtol=rtol, atol=atol) else "wrong value"

    return Probe(description, (call_,), check_value)


def raises(description: str, call_: Call, error: str = "ValueError") -> Probe:
    """The call raises ``error`` (or a subclass of it).

    >>> check(raises("bad shapes", call("f"), "ValueError"), [Answer(False, "ValueError")]) is None
    True
    """

    def check_raised(answers: list[Answer]) -> str | None:
        answer = answers[0]
        if answer.ok:
            return f"returned {_a(answer.kind)}, expected {error}"
        if error == answer.error or error in answer.error_types:
            return None
        return failure(answer) if answer.error in ("CallTimeout", "Skipped", "Missing", "Malformed") else \
            f"raised {answer.error}, expected {error}"

    return Probe(description, (call_,), check_raised)


def gradients(description: str, call_: Call, expected: Sequence, *, rtol: float = 1e-5, atol: float = 1e-8) -> Probe:
    """After ``backward()``, each argument's gradient matches ``expected`` (one array or None per argument).

    >>> gradients("d/dx", call("f", tensor([1.0], requires_grad=True)), [[2.0]]).calls[0].backward
    True
    """
    call_ = Call(call_.function, call_.args, call_.kwargs, backward=True)

    def check_gradients(answers: list[Answer]) -> str | None:
        answer = answers[0]
        if not answer.ok:
            return failure(answer)
        if answer.backward_error:
            return "backward() failed on the result"
        for index, want in enumerate(expected):
            if want is None:
                continue
            got = answer.grads[index] if index < len(answer.grads) else None
            if got is None:
                return f"no gradient reached argument {index + 1}"
            if got.shape != np.shape(want) or not np.allclose(got.astype(np.float64), want, rtol=rtol, atol=atol):
                return f"wrong gradient with respect to argument {index + 1}"
        return None

    return Probe(description, (call_,), check_gradients)


def records_gradient(description: str, call_: Call) -> Probe:
    """The call returns a tensor that records gradients (``requires_grad``).

    >>> check(records_gradient("graph", call("f")), [Answer(True, kind="array")])
    'returned an array, expected a tensor'
    """

    def check_records(answers: list[Answer]) -> str | None:
        answer = answers[0]
        if not answer.ok:
            return failure(answer)
        if answer.kind != "tensor":
            return f"returned {_a(answer.kind)}, expected a tensor"
        return None if answer.requires_grad else "the result does not record gradients"

    return Probe(description, (call_,), check_records)


def gradcheck(description: str, function: str, arrays: Sequence[np.ndarray], *, eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-3) -> Probe:
    """The gradients of ``function`` (of float64 tensors) agree with central differences of its own values.

    One call computes the analytic gradients (of the sum of the output); two calls per input element
    compute the output at nudged inputs. The differences are taken here, by the grader.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    calls = [call(function, *[tensor(a, "float64", True) for a in arrays], backward=True)]
    for index, base in enumerate(arrays):
        for flat in range(base.size):
            for sign in (1, -1):
                nudged = [a.copy() for a in arrays]
                nudged[index].reshape(-1)[flat] += sign * eps
                calls.append(call(function, *[tensor(a, "float64") for a in nudged]))

    def check_differences(answers: list[Answer]) -> str | None:
        first = answers[0]
        if not first.ok:
            return failure(first)
        sums = []
        for answer in answers[1:]:
            values, problem = (None, failure(answer)) if not answer.ok else _numeric(answer, first.kind or "tensor")
            if problem:
                return problem
            sums.append(values.sum())
        position = 0
        for index, base in enumerate(arrays):
            pairs = np.asarray(sums[position:position + 2 * base.size]).reshape(-1, 2)
            position += 2 * base.size
            numeric = ((pairs[:, 0] - pairs[:, 1]) / (2 * eps)).reshape(base.shape)
            got = first.grads[index] if index < len(first.grads) else None
            got = np.zeros_like(numeric) if got is None else np.asarray(got, dtype=np.float64)
            if got.shape != numeric.shape or not np.allclose(got, numeric, atol=atol, rtol=rtol):
                return f"gradient with respect to argument {index + 1} disagrees with finite differences"
        return None

    return Probe(description, tuple(calls), check_differences)


@dataclass(frozen=True)
class LabProbes:
    """A lab's probe file, loaded: what it disables and blocks, and how it builds each cell's probes."""

    lab_id: str
    source: str  # the file's text (shipped to distributed workers, which load it again)
    disabled: tuple[str, ...]
    blocked_modules: tuple[str, ...]
    build: Callable[[np.random.Generator], dict]

    def __reduce__(self):  # pickled as its source text (distributed workers load it again)
        return probes_from_source, (self.lab_id, self.source)

    def cells(self, seed: int) -> dict[str, list[Probe]]:
        """Each graded cell's probes, with inputs drawn from ``seed``."""
        cells = self.build(np.random.default_rng(seed))
        if not isinstance(cells, dict) or not all(isinstance(p, Probe) for ps in cells.values() for p in ps):
            raise ProbeFileError(f"{self.lab_id}: probes(rng) must return {{grade_id: [Probe, ...]}}")
        return cells


def probes_from_source(lab_id: str, source: str, filename: str = "<probes>") -> LabProbes:
    """Load a probe file from its text."""
    module = types.ModuleType(f"dslearn_probes_{lab_id.replace('-', '_')}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)  # the course's own file, run by the grader
    if not callable(getattr(module, "probes", None)):
        raise ProbeFileError(f"{filename}: defines no probes(rng) function")
    names = lambda attribute: tuple(str(name) for name in getattr(module, attribute, ()))
    return LabProbes(lab_id, source, names("DISABLED"), names("BLOCKED_MODULES"), module.probes)


def load_probes(course_root: Path | str, lab_id: str) -> LabProbes | None:
    """The lab's ``grading/probes/<lab-id>.py``, or None when it has none (the lab falls back to nbgrader tests).

    >>> from dslearn.course.syllabus import find_course_root
    >>> load_probes(find_course_root(), "00-welcome").disabled
    ('dslearn.nn.functional.mse_loss', 'dslearn.nn.MSELoss')
    """
    path = Path(course_root) / PROBES_DIR / f"{lab_id}.py"
    if not path.is_file():
        return None
    return probes_from_source(lab_id, path.read_text(encoding="utf-8"), str(path))


def seed_for(secret: bytes, *parts: str) -> int:
    """A 64-bit seed from the course secret and the submission: reproducible by the grader, unknown to students.

    >>> seed_for(b"k", "00-welcome", "alice", "abc") == seed_for(b"k", "00-welcome", "alice", "abc")
    True
    """
    digest = hmac.new(secret, "\x00".join(parts).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "little")

