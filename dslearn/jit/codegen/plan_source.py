"""The plan: one generated Python function that runs a whole optimised graph on arrays.

Eager mode pays, for every op, argument checks, dtype promotion, a ``Tensor`` and a graph
node. The plan pays none of it: it is straight-line code over NumPy arrays, generated from the
graph, one line per node::

    def forward(x0, p1, p2):
        v3 = x0.reshape((64, 784))
        v4 = p1.transpose((1, 0))
        v5 = np.matmul(v3, v4, out=b0)
        fused_3(v5, p2, b1_rc)
        v6 = b1
        return (v6,)

How each node kind is written:

* fused groups call their generated kernel (backend ``numba``) with inputs reshaped to the
  kernel's (R, C) or flat layout and outputs in planned buffers (``b<k>``) or fresh arrays;
  with backend ``numpy`` they run their body op by op through each op's NumPy forward
  (the reference the kernels are tested against);
* 2-D matrix products call ``np.matmul`` with ``out=`` a planned buffer;
* reshape, permute and expand are NumPy views;
* any other op calls its ``Function.forward`` directly on arrays: the op's own code, without
  the Tensor and autograd around it. An op whose backward is opaque gets a real ``Context``,
  which the matching backward node receives;
* backward and optimizer nodes call small runtime functions (``dslearn.jit.plan``).

May import: numpy, dslearn.autograd, dslearn.ops, dslearn.jit.ir, dslearn.jit.passes,
dslearn.jit.codegen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from dslearn.autograd.function import Context
from dslearn.jit import opset
from dslearn.jit.codegen.fused_columns import generate_column_kernel
from dslearn.jit.codegen.fused_cpu import KernelSource, generate_kernel
from dslearn.jit.codegen.fused_cuda import can_compile as can_compile_cuda
from dslearn.jit.codegen.fused_cuda import generate_cuda_kernel
from dslearn.jit.ir import Graph, Node, Value
from dslearn.jit.passes.buffers import writes_into_buffer
from dslearn.ops.shape import Expand, Permute, Reshape, broadcast_view

_CONTIGUOUS_KINDS = ("constant",)


class Scratch:
    """A throwaway context for forwards whose context no backward reads."""


@dataclass
class PlanSource:
    """The generated function's text, the names it uses, and the kernels it calls."""

    name: str
    text: str
    namespace: dict
    kernels: dict[str, tuple[KernelSource, Node]] = field(default_factory=dict)


def public_attrs(node: Node) -> dict:
    return {k: v for k, v in node.attrs.items() if not k.startswith("_")}


def run_body(body: Graph, *arrays):
    """Run a fused node's body op by op with NumPy (the reference backend)."""
    env = dict(zip(body.inputs, arrays))
    env.update((v, v.data) for v in body.constants)
    with np.errstate(all="ignore"):
        for node in body.nodes:
            result = node.fn.forward(Scratch(), *[env[v] for v in node.inputs], **public_attrs(node))
            env[node.output] = np.asarray(result) if isinstance(result, np.generic) else result
    return tuple(env[v] for v in body.outputs)


class _Writer:
    def __init__(self, graph: Graph, backend: str, name: str) -> None:
        self.graph, self.backend = graph, backend
        self.namespace: dict = {"np": np, "Context": Context, "broadcast_view": broadcast_view, "SCRATCH": Scratch()}
        self.kernels: dict[str, tuple[KernelSource, Node]] = {}
        self.lines: list[str] = []
        self.contiguous = {v for v in graph.constants}
        for value in graph.constants:
            self.namespace[value.name] = value.data
        for slot, (shape, dtype) in enumerate(graph.buffers):
            self.namespace[f"b{slot}"] = np.empty(shape, dtype)
        self.name = name

    def bind(self, name: str, obj) -> str:
        self.namespace[name] = obj
        return name

    def layout(self, value: Value, layout: str, rows: int, columns: int) -> str:
        """The array expression that passes ``value`` to a kernel: (R, C), transposed (C, R), or flat."""
        if layout == "cr":
            return f"np.ascontiguousarray({value.name}.T)"  # free when the value is a transposed view
        shape = f"({rows}, {columns})" if layout == "rc" else "-1"
        if value in self.contiguous:
            return f"{value.name}.reshape({shape})"
        return f"np.ascontiguousarray({value.name}).reshape({shape})"

    def emit(self, node: Node, index: int) -> None:
        outs = [v.name for v in node.outputs if v.kind != "context"]
        args = [v.name for v in node.inputs]
        if node.kind == "fused":
            self.emit_fused(node, index)
        elif node.kind == "backward":
            from dslearn.jit.plan import run_opaque_backward

            helper = self.bind(f"{node.fn.name}_backward_{index}", functools.partial(
                run_opaque_backward, node.fn, node.attrs["needs"], node.attrs["returns"], node.attrs["_forward_attrs"]))
            context, *inputs, output, grad = args
            target = ", ".join(outs) + ("," if len(outs) == 1 else "")
            self.lines.append(f"{target} = {helper}({context}, ({', '.join(inputs)},), {output}, {grad})")
        elif node.kind == "optimizer":
            helper = self.bind(f"optimizer_step_{index}", node.attrs["_step"])
            self.lines.append(f"{helper}({', '.join(args)})")
        elif writes_into_buffer(node):
            slot = node.attrs.get("_buffers", [None])[0]
            target = "" if slot is None else f", out=b{slot}"
            self.lines.append(f"{outs[0]} = np.matmul({args[0]}, {args[1]}{target})")
            self.contiguous.add(node.output)
        elif node.fn is Reshape:
            self.lines.append(f"{outs[0]} = {args[0]}.reshape({node.attrs['shape']!r})")
        elif node.fn is Permute:
            self.lines.append(f"{outs[0]} = {args[0]}.transpose({tuple(node.attrs['dims'])!r})")
        elif node.fn is Expand:
            self.lines.append(f"{outs[0]} = broadcast_view({args[0]}, {node.output.shape!r})")
        else:
            entry = opset.info(node.fn)
            if entry is not None and entry.check is not None:
                check = self.bind(f"check_{node.op}_{index}", functools.partial(entry.check, **public_attrs(node)))
                self.lines.append(f"{check}({', '.join(args)})")
            helper = self.bind(f"{node.op}_{index}", functools.partial(node.fn.forward, **public_attrs(node)))
            if len(node.outputs) > 1:
                self.lines.append(f"{node.outputs[1].name} = Context()")
                context = node.outputs[1].name
            else:
                context = "SCRATCH"
            call = f"{helper}({', '.join([context, *args])})"
            if node.output.shape == () and node.output.device == "cpu":
                call = f"np.asarray({call})"  # NumPy reductions return scalars; eager mode wraps them as 0-d arrays
            self.lines.append(f"{outs[0]} = {call}")

    def emit_cuda(self, node: Node, name: str) -> None:
        """Launch a ``cuda.jit`` kernel on the CudaArrays' device memory; results are new CudaArrays."""
        from dslearn.jit.plan import device_view
        from dslearn.kernels.cuda.array import CudaArray

        self.bind("device_view", device_view)
        self.bind("CudaArray", CudaArray)
        kernel = generate_cuda_kernel(node.body, node.attrs["shape"])
        self.kernels[name] = (kernel, node)
        shapes = {"rc": (kernel.rows, kernel.columns), "flat": (-1,)}
        args = [f"device_view({v.name}, {shapes[layout]})" for v, layout in zip(node.inputs, kernel.input_layouts)]
        for value, layout in zip(node.outputs, kernel.output_layouts):
            self.lines.append(f"{value.name} = CudaArray.empty({value.shape!r}, np.{value.dtype.name})")
            args.append(f"device_view({value.name}, {shapes[layout]})")
        self.lines.append(f"{name}[{kernel.blocks}, {kernel.threads}]({', '.join(args)})  # {' -> '.join(kernel.ops)}")

    def emit_fused(self, node: Node, index: int) -> None:
        name = f"fused_{index}"
        outs = [v.name for v in node.outputs]
        on_gpu = node.outputs[0].device != "cpu"
        if on_gpu and self.backend == "numba" and can_compile_cuda(node.body):
            self.emit_cuda(node, name)
            return
        if self.backend == "numpy" or on_gpu:
            self.bind(name, functools.partial(run_body, node.body))
            target = ", ".join(outs) + ("," if len(outs) == 1 else "")
            self.lines.append(f"{target} = {name}({', '.join(v.name for v in node.inputs)})")
            return
        columns_layout = node.attrs.get("layout") == "columns"
        kernel = (generate_column_kernel if columns_layout else generate_kernel)(node.body, node.attrs["shape"])
        self.kernels[name] = (kernel, node)
        args = [self.layout(v, layout, kernel.rows, kernel.columns)
                for v, layout in zip(node.inputs, kernel.input_layouts)]
        slots = node.attrs.get("_buffers", [None] * len(node.outputs))
        results = []
        for value, layout, slot in zip(node.outputs, kernel.output_layouts, slots):
            shape = {"rc": (kernel.rows, kernel.columns), "cr": (kernel.columns, kernel.rows), "flat": (-1,)}[layout]
            if slot is None:
                storage = f"{value.name}_out"
                self.lines.append(f"{storage} = np.empty({shape if layout != 'flat' else value.shape!r}, "
                                  f"np.{value.dtype.name})")
                args.append(storage if layout != "flat" else f"{storage}.reshape(-1)")
            else:
                storage = self.bind(f"b{slot}_{layout}", self.namespace[f"b{slot}"].reshape(shape))
                args.append(storage)
            results.append(f"{value.name} = {storage}.T" if layout == "cr" else
                           f"{value.name} = {storage}" + (f".reshape({value.shape!r})" if layout == "rc" else ""))
            if layout == "flat" and slot is not None:
                results[-1] = f"{value.name} = b{slot}"
            if layout != "cr":
                self.contiguous.add(value)
        self.lines.append(f"{name}({', '.join(args)})  # {' -> '.join(kernel.ops)}")
        self.lines.extend(results)


def generate_plan(graph: Graph, backend: str = "numba", name: str = "forward") -> PlanSource:
    """The source of ``def <name>(inputs..., captured...)`` returning the graph's outputs as a tuple."""
    if backend not in ("numba", "numpy"):
        raise ValueError(f"jit: backend must be 'numba' or 'numpy', got {backend!r}")
    writer = _Writer(graph, backend, name)
    for index, node in enumerate(graph.nodes):
        writer.emit(node, index)
    parameters = ", ".join(v.name for v in [*graph.inputs, *graph.captured])
    returned = ", ".join(v.name for v in graph.outputs) + ("," if len(graph.outputs) == 1 else "")
    body = writer.lines + [f"return ({returned})"]
    text = "\n".join([f"def {name}({parameters}):", *["    " + line for line in body]])
    return PlanSource(name, text, writer.namespace, writer.kernels)
