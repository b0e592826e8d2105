"""Numba CPU code for fused groups in the column layout: full-shaped arrays arrive transposed, (C, R).

The row layout (``fused_cpu``) runs one row at a time, its statistics in scalars. Here the full
arrays are stored transposed (see ``passes.layout``), so the innermost loop runs over the R
rows, which are contiguous: every loop vectorises across rows, and each row statistic (a mean,
a variance) becomes a small array of R values instead of a scalar. Phases are the same as in
the row layout: one sweep over the columns per depth of row reductions, then a final sweep that
computes and stores the results, transposed as well::

    for c in range(C):          # phase 1: the mean of each row
        for r in range(R):
            acc0[r] += in0[c, r]

Performance contract: as ``fused_cpu`` (each input element read once per phase, each output
written once, the loops vectorised); the row arrays (R values each) are the only allocation, made
once per call. Serial: the layout pass only picks kernels too small to pay for threads.

May import: numpy, dslearn.ops, dslearn.jit.ir, dslearn.jit.passes.fusion, dslearn.jit.codegen.

>>> import numpy as np
>>> from dslearn.ops.elementwise import Sub
>>> from dslearn.ops.reduction import Mean
>>> from dslearn.jit.ir import Graph
>>> body = Graph()
>>> x = body.add_input((2, 3), np.float32)
>>> m = body.add_node("mean", [x], [((2, 1), np.float32)], {"dims": (1,), "keepdim": True}, fn=Mean).output
>>> body.outputs = [body.add_node("sub", [x, m], [((2, 3), np.float32)], fn=Sub).output]
>>> kernel = generate_column_kernel(body, (2, 3))
>>> kernel.input_layouts, kernel.output_layouts
(['cr'], ['cr'])
>>> for line in kernel.function.splitlines()[2:]:
...     print(line)
    t0 = np.empty(2, np.float32)
    acc0 = np.zeros(2, np.float64)
    for c in range(3):
        for r in range(2):
            x0 = in0[c, r]
            acc0[r] += x0
    for r in range(2):
        t0[r] = np.float32((acc0[r] / 3))
    for c in range(3):
        for r in range(2):
            x0 = in0[c, r]
            t1 = (x0 - t0[r])
            out0[c, r] = t1
"""

from __future__ import annotations

from dslearn.jit.codegen.fused_cpu import ROW, TOP, KernelSource, _block, _Emitter, storage_pattern
from dslearn.jit.ir import Graph, Value
from dslearn.jit.passes.fusion import broadcast_pattern
from dslearn.ops import reduction as R

_REDUCTIONS = (R.Sum, R.Mean, R.Amax, R.Amin)


class _ColumnEmitter(_Emitter):
    """Row values are arrays indexed by ``r``; full inputs are read as ``in[c, r]``."""

    def __init__(self, body: Graph, full: tuple[int, ...]) -> None:
        super().__init__(body, full)
        self.row_arrays: list[Value] = []
        for i, v in enumerate(body.inputs):
            rows, columns = broadcast_pattern(v.shape, full)
            if rows and columns:
                self.load[v] = f"in{i}[c, r]"
            elif self.scope[v] == ROW:
                self.name[v] = f"in{i}[r]"  # read in place: no statement
                del self.load[v]
        for node in body.nodes:
            if self.scope[node.output] == ROW:
                self.name[node.output] += "[r]"
                self.row_arrays.append(node.output)

    def accumulator(self, node, acc: str) -> tuple[str, str]:
        x = self.name[node.inputs[0]]
        dtype = node.inputs[0].dtype
        if node.fn in (R.Sum, R.Mean):
            wide = "np.float64" if dtype.kind == "f" else "np.int64"
            return f"{acc} = np.zeros({self.rows}, {wide})", f"{acc}[r] += {x}"
        high = node.fn is R.Amax
        start = self.dialect.const(float("-inf") if high else float("inf"), dtype)
        nan = f" or {x} != {x}" if dtype.kind == "f" else ""
        return (f"{acc} = np.full({self.rows}, {start})",
                f"if {x} {'>' if high else '<'} {acc}[r]{nan}:\n    {acc}[r] = {x}")


def generate_column_kernel(body: Graph, full: tuple[int, ...]) -> KernelSource:
    """The Numba source of one column-layout kernel computing ``body`` (no column or total reductions)."""
    e = _ColumnEmitter(body, full)
    rows, columns = e.rows, e.columns
    outputs = list(body.outputs)
    out_patterns = [storage_pattern(v, full) for v in outputs]
    layouts_in = ["cr" if all(broadcast_pattern(v.shape, full)) else "flat" for v in body.inputs]
    layouts_out = ["cr" if all(p) else "flat" for p in out_patterns]
    reductions = [n for n in body.nodes if n.fn in _REDUCTIONS]
    acc = {n: f"acc{i}" for i, n in enumerate(reductions)}

    def row_loop(statements: list[str]) -> list[str]:
        return [f"for r in range({rows}):", *_block(statements, 4)] if statements else []

    def sweep(statements: list[str]) -> list[str]:
        return [f"for c in range({columns}):", f"    for r in range({rows}):", *_block(statements, 8)]

    lines = [e.compute(v) for v in [*body.constants, *body.inputs] if e.scope[v] == TOP and v in e.load]
    lines += [e.compute(n.output) for n in body.nodes if e.scope[n.output] == TOP]
    lines += [f"{e.name[v][:-3]} = np.empty({rows}, np.{v.dtype.name})" for v in e.row_arrays]
    depth_of_rows = max((e.depth[n.output] for n in reductions), default=0)
    for depth in range(depth_of_rows + 1):
        statements = []
        if depth:
            phase = [n for n in reductions if e.depth[n.output] == depth]
            lines += [e.accumulator(n, acc[n])[0] for n in phase]
            loop = [e.compute(v) for v in e.elements_for([n.inputs[0] for n in phase])]
            lines += sweep(loop + [e.accumulator(n, acc[n])[1] for n in phase])
            statements += [f"{e.name[n.output]} = {e.finish(n, acc[n] + '[r]', columns)}" for n in phase]
        statements += [e.compute(n.output) for n in body.nodes
                       if e.scope[n.output] == ROW and e.depth[n.output] == depth and n not in reductions]
        lines += row_loop(statements)
    index = {(True, True): "c, r", (False, True): "c", (True, False): "r", (False, False): "0"}
    stores = [(k, v) for k, v in enumerate(outputs)]
    lines += [f"out{k}[0] = {e.name[v]}" for k, v in stores if out_patterns[k] == (False, False) and e.scope[v] == TOP]
    lines += row_loop([f"out{k}[{index[out_patterns[k]]}] = {e.name[v]}" for k, v in stores
                       if not out_patterns[k][1] and not (out_patterns[k] == (False, False) and e.scope[v] == TOP)])
    in_loop = [(k, v) for k, v in stores if out_patterns[k][1]]
    if in_loop:
        final = [e.compute(v) for v in e.elements_for([v for _, v in in_loop])]
        lines += sweep(final + [f"out{k}[{index[out_patterns[k]]}] = {e.name[v]}" for k, v in in_loop])

    arrays = [(f"in{i}", v.dtype, layouts_in[i]) for i, v in enumerate(body.inputs)]
    arrays += [(f"out{k}", v.dtype, layouts_out[k]) for k, v in enumerate(outputs)]
    types = [f"{e.dialect.numba_type(dtype)}[{':, ::1' if layout == 'cr' else '::1'}]" for _, dtype, layout in arrays]
    decorator = f'@njit("void({", ".join(types)})", cache=True, error_model="numpy", fastmath=FASTMATH)'
    signature = f"def kernel({', '.join(name for name, _, _ in arrays)}):"
    function = "\n".join([decorator, signature, *_block(lines, 4)])
    return KernelSource(function, sorted(e.dialect.used), layouts_in, layouts_out, rows, columns, False,
                        [n.op for n in body.nodes] + ["(columns)"])

