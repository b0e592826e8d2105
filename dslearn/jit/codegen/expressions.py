"""Scalar expressions for elementwise ops: how one element of each op is written in kernel source.

``expression(fn, args, attrs, in_dtypes, out_dtype, dialect)`` returns the source text of one
element of op ``fn`` applied to the variables named in ``args``, e.g. ``(t3 * t4)``. Every
argument is a plain variable name, so an argument may appear twice in a formula at no cost.
Arithmetic arguments are converted to the output dtype first (a float32 times a bool mask is
a float32), and constants are written in the output dtype (``np.float32(0.5)``): mixing a
float64 constant into float32 arithmetic would make Numba compute in float64.

The formulas follow NumPy's semantics where they differ from C's: NaN propagates through
max/min, ``%`` takes the sign of the divisor, rounding is half to even. The dialect (CPU or
CUDA Numba) names constants, casts and the helper functions of ``dslearn.kernels.cpu.fused_math``.

May import: numpy, dslearn.ops.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Mul, Relu
>>> cpu = NumbaCpuDialect()
>>> expression(Mul, ["a", "b"], {}, [np.float32, np.bool_], np.float32, cpu)
'(a * np.float32(b))'
>>> expression(Relu, ["a"], {}, [np.float32], np.float32, cpu)
'(a if not a < np.float32(0.0) else np.float32(0.0))'
"""

from __future__ import annotations

import math

import numpy as np

from dslearn.ops import elementwise as E

_NUMBA_NAMES = {"float32": "float32", "float64": "float64", "bool": "boolean", "int8": "int8", "int16": "int16",
                "int32": "int32", "int64": "int64", "uint8": "uint8"}


class NumbaCpuDialect:
    """How generated source spells constants, casts and helpers for ``numba.njit`` on the CPU."""

    helper_module = "dslearn.kernels.cpu.fused_math"

    def __init__(self) -> None:
        self.used: set[str] = set()  # the helper functions the generated source calls

    def const(self, value, dtype) -> str:
        dtype = np.dtype(dtype)
        if dtype == np.bool_:
            return repr(bool(value))
        if dtype.kind in "iu":
            return f"np.{dtype.name}({int(value)})"
        value = float(value)
        if math.isnan(value):
            text = "np.nan"
        elif math.isinf(value):
            text = "np.inf" if value > 0 else "-np.inf"
        else:
            text = repr(value)
        return f"np.{dtype.name}({text})"

    def cast(self, name: str, source, target) -> str:
        source, target = np.dtype(source), np.dtype(target)
        if source == target:
            return name
        if target == np.bool_:
            return f"({name} != 0)"
        return f"np.{target.name}({name})"

    def helper(self, formula: str, dtype) -> str:
        """``erf_f32``: the helper function for a formula in a float dtype."""
        name = f"{formula}_f{np.dtype(dtype).itemsize * 8}"
        self.used.add(name)
        return name

    def numba_type(self, dtype) -> str:
        return _NUMBA_NAMES[np.dtype(dtype).name]


def _float_only(formula: str):
    def write(a, attrs, k, d, dtype):
        return f"{d.helper(formula, dtype)}({a[0]})"
    return write


def _clamp(a, attrs, k, d, dtype):
    text = a[0]
    if attrs["min"] is not None:
        low = k(attrs["min"])
        text = f"({low} if {text} < {low} else {text})"
    if attrs["max"] is not None:
        high = k(attrs["max"])
        text = f"({high} if {text} > {high} else {text})"
    return text


def _pow_scalar(a, attrs, k, d, dtype):
    exponent = attrs["exponent"]
    if exponent == 2:
        return f"({a[0]} * {a[0]})"
    if exponent == 0.5 and np.dtype(dtype).kind == "f":
        return f"math.sqrt({a[0]})"
    return f"({a[0]} ** {k(exponent)})"


def _gelu(grad: bool):
    def write(a, attrs, k, d, dtype):
        name = ("gelu_tanh" if attrs["approximate"] == "tanh" else "gelu") + ("_grad" if grad else "")
        return f"{d.helper(name, dtype)}({a[0]})"
    return write


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


# Each entry: (convert arguments to the output dtype?, writer(args, attrs, const, dialect, dtype)).
_ARITHMETIC = {
    E.Add: lambda a, at, k, d, t: f"({a[0]} + {a[1]})",
    E.Sub: lambda a, at, k, d, t: f"({a[0]} - {a[1]})",
    E.Mul: lambda a, at, k, d, t: f"({a[0]} * {a[1]})",
    E.Div: lambda a, at, k, d, t: f"({a[0]} / {a[1]})",
    E.Pow: lambda a, at, k, d, t: f"({a[0]} ** {a[1]})",
    E.Remainder: lambda a, at, k, d, t: f"({a[0]} % {a[1]})",
    E.FloorDivide: lambda a, at, k, d, t: f"({a[0]} // {a[1]})",
    E.PowScalar: _pow_scalar,
    E.ScalarPow: lambda a, at, k, d, t: f"({k(at['base'])} ** {a[0]})",
    E.Neg: lambda a, at, k, d, t: f"(-{a[0]})",
    E.Abs: lambda a, at, k, d, t: f"abs({a[0]})",
    E.Exp: lambda a, at, k, d, t: f"math.exp({a[0]})",
    E.Log: lambda a, at, k, d, t: f"math.log({a[0]})",
    E.Sqrt: lambda a, at, k, d, t: f"math.sqrt({a[0]})",
    E.Sin: lambda a, at, k, d, t: f"math.sin({a[0]})",
    E.Cos: lambda a, at, k, d, t: f"math.cos({a[0]})",
    E.Tanh: lambda a, at, k, d, t: f"math.tanh({a[0]})",
    E.Sigmoid: _float_only("sigmoid"),
    E.Erf: _float_only("erf"),
    E.Gelu: _gelu(grad=False),
    E.GeluGrad: _gelu(grad=True),
    E.Softplus: lambda a, at, k, d, t: f"{d.helper('softplus', t)}({a[0]}, {k(at['beta'])}, {k(at['threshold'])})",
    E.Relu: lambda a, at, k, d, t: f"({a[0]} if not {a[0]} < {k(0)} else {k(0)})",
    E.LeakyRelu: lambda a, at, k, d, t: f"({a[0]} if {a[0]} > {k(0)} else {a[0]} * {k(at['negative_slope'])})",
    E.Clamp: _clamp,
    E.Maximum: lambda a, at, k, d, t: f"({a[0]} if {a[0]} >= {a[1]} or {a[0]} != {a[0]} else {a[1]})",
    E.Minimum: lambda a, at, k, d, t: f"({a[0]} if {a[0]} <= {a[1]} or {a[0]} != {a[0]} else {a[1]})",
    E.Sign: lambda a, at, k, d, t: f"({k(1)} if {a[0]} > {k(0)} else ({k(-1)} if {a[0]} < {k(0)} else {a[0]}))",
    E.Floor: lambda a, at, k, d, t: f"np.floor({a[0]})" if _is_float(t) else a[0],
    E.Ceil: lambda a, at, k, d, t: f"np.ceil({a[0]})" if _is_float(t) else a[0],
    E.Round: lambda a, at, k, d, t: f"np.rint({a[0]})" if _is_float(t) else a[0],
    E.Cast: lambda a, at, k, d, t: a[0],
}
_COMPARISONS = {E.Eq: "==", E.Ne: "!=", E.Lt: "<", E.Le: "<=", E.Gt: ">", E.Ge: ">="}
_LOGICAL = {
    E.LogicalAnd: lambda a: f"({a[0]} and {a[1]})",
    E.LogicalOr: lambda a: f"({a[0]} or {a[1]})",
    E.LogicalXor: lambda a: f"({a[0]} != {a[1]})",
    E.LogicalNot: lambda a: f"(not {a[0]})",
}


def supports(fn) -> bool:
    """Whether an elementwise op has a kernel formula."""
    return fn in _ARITHMETIC or fn in _COMPARISONS or fn in _LOGICAL or fn in (E.Where, E.IsNan, E.IsFinite)


def expression(fn, args: list[str], attrs: dict, in_dtypes, out_dtype, dialect) -> str:
    """One element of ``fn(*args, **attrs)`` as source text in ``out_dtype``."""
    out_dtype = np.dtype(out_dtype)
    in_dtypes = [np.dtype(t) for t in in_dtypes]
    k = lambda value: dialect.const(value, out_dtype)  # noqa: E731
    if fn in _ARITHMETIC:
        converted = [dialect.cast(a, t, out_dtype) for a, t in zip(args, in_dtypes)]
        return _ARITHMETIC[fn](converted, attrs, k, dialect, out_dtype)
    if fn in _COMPARISONS:
        common = np.result_type(*in_dtypes)
        a, b = (dialect.cast(x, t, common) for x, t in zip(args, in_dtypes))
        return f"({a} {_COMPARISONS[fn]} {b})"
    if fn in _LOGICAL:
        return _LOGICAL[fn]([dialect.cast(a, t, np.bool_) for a, t in zip(args, in_dtypes)])
    if fn is E.Where:
        a, b = (dialect.cast(x, t, out_dtype) for x, t in zip(args[1:], in_dtypes[1:]))
        return f"({a} if {args[0]} else {b})"
    if fn is E.IsNan:
        return f"({args[0]} != {args[0]})" if _is_float(in_dtypes[0]) else "False"
    if fn is E.IsFinite:
        return f"math.isfinite({args[0]})" if _is_float(in_dtypes[0]) else "True"
    raise NotImplementedError(f"jit codegen: no kernel formula for {fn.name}")
