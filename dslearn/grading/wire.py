"""Plain data between the grader and a sandboxed notebook: JSON lines with NumPy arrays, never pickles.

What crosses the sandbox boundary is JSON: ``None``, booleans, numbers, strings, lists and string-keyed
objects. A NumPy array travels as ``{"$array": [dtype, shape, base64 bytes]}`` with a numeric dtype
(bool, signed and unsigned integers, floats, complex). ``encode`` runs in the sandbox and refuses
anything else (object arrays, arbitrary objects). ``decode`` runs in the trusted grader on text the
student's process may have forged: it checks sizes, nesting, dtypes and that the bytes match the
shape, and raises ``WireError`` on anything else. It never executes code and never unpickles.

May import: the standard library, numpy.

>>> import numpy as np
>>> text = encode({"value": np.arange(3.0), "ok": True})
>>> data = decode(text)
>>> data["value"].tolist(), data["ok"]
([0.0, 1.0, 2.0], True)
>>> decode('{"$array": ["|O", [1], "AA=="]}')
Traceback (most recent call last):
...
dslearn.grading.wire.WireError: array dtype '|O' is not a plain numeric dtype
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np

ARRAY_KEY = "$array"
NUMERIC_KINDS = "biufc"  # bool, int, unsigned, float, complex
MAX_DEPTH = 32
MAX_LINE_BYTES = 64 * 1024 * 1024
MAX_ARRAY_BYTES = 64 * 1024 * 1024


class WireError(ValueError):
    """Text that is not well-formed plain data (possibly forged by the student's process)."""


def _encode_value(value, depth: int):
    if depth > MAX_DEPTH:
        raise WireError("nesting too deep")
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, np.generic):
        return _encode_value(value.item(), depth + 1) if value.dtype.kind in NUMERIC_KINDS else _refuse(value)
    if type(value) is np.ndarray:
        if value.dtype.kind not in NUMERIC_KINDS:
            raise WireError(f"array dtype {value.dtype.str!r} is not a plain numeric dtype")
        data = value if value.flags.c_contiguous else value.copy(order="C")  # keeps 0-d arrays 0-d
        return {ARRAY_KEY: [data.dtype.str, list(data.shape), base64.b64encode(data.tobytes()).decode("ascii")]}
    if type(value) in (list, tuple):
        return [_encode_value(item, depth + 1) for item in value]
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: _encode_value(item, depth + 1) for key, item in value.items()}
    return _refuse(value)


def _refuse(value):
    raise WireError(f"cannot send a {type(value).__name__}: only plain data and numeric arrays cross the wire")


def encode(value) -> str:
    """One line of JSON for plain data with numeric NumPy arrays (exact types only: no subclasses).

    >>> encode([1, 2.5, "x", None])
    '[1, 2.5, "x", null]'
    """
    return json.dumps(_encode_value(value, 0), allow_nan=False)


def _decode_array(spec) -> np.ndarray:
    if not (isinstance(spec, list) and len(spec) == 3 and isinstance(spec[0], str) and isinstance(spec[1], list)
            and isinstance(spec[2], str)):
        raise WireError("an array is [dtype, shape, base64]")
    try:
        dtype = np.dtype(spec[0])
    except TypeError as error:
        raise WireError(f"array dtype {spec[0]!r} is not understood") from error
    if dtype.kind not in NUMERIC_KINDS or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"array dtype {spec[0]!r} is not a plain numeric dtype")
    shape = spec[1]
    if len(shape) > MAX_DEPTH or not all(type(n) is int and n >= 0 for n in shape):
        raise WireError(f"array shape {shape!r} is not a list of sizes")
    count = math.prod(shape)
    if count * dtype.itemsize > MAX_ARRAY_BYTES:
        raise WireError(f"array of shape {tuple(shape)} is too large")
    try:
        raw = base64.b64decode(spec[2].encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as error:
        raise WireError("array bytes are not base64") from error
    if len(raw) != count * dtype.itemsize:
        raise WireError(f"array bytes ({len(raw)}) do not match shape {tuple(shape)} and dtype {dtype.str}")
    array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    array.flags.writeable = False
    return array


def _decode_value(value, depth: int):
    if depth > MAX_DEPTH:
        raise WireError("nesting too deep")
    if isinstance(value, list):
        return [_decode_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if set(value) == {ARRAY_KEY}:
            return _decode_array(value[ARRAY_KEY])
        if set(value) == {"$float"} and value["$float"] in ("nan", "inf", "-inf"):
            return float(value["$float"])
        return {key: _decode_value(item, depth + 1) for key, item in value.items()}
    return value


def _no_constants(name: str):
    raise WireError(f"{name} is not plain JSON here")


def decode(text: str | bytes):
    """Plain data from one line of untrusted JSON; ``WireError`` unless it is well formed.

    >>> decode('{"$float": "nan"}')
    nan
    """
    if len(text) > MAX_LINE_BYTES:
        raise WireError(f"line of {len(text)} bytes is over the limit ({MAX_LINE_BYTES})")
    try:
        parsed = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as error:
        raise WireError(f"not JSON: {str(error)[:200]}") from error
    try:
        return _decode_value(parsed, 0)
    except RecursionError as error:
        raise WireError("nesting too deep") from error
