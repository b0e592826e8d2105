"""Benchmark dslearn's ops against torch on this machine, and the teaching matmul kernels against BLAS.

One run measures, with the same thread count for both frameworks, the forward and the backward
pass of matmul, conv2d, softmax, layer_norm and cross_entropy (float32), then the GFLOP/s of
the teaching kernels in ``dslearn.kernels.cpu.matmul`` as a fraction of BLAS (``np.matmul``).
Each timing is the median of repeats after warm-up runs (which also trigger Numba compilation).
An op that dslearn does not provide (yet) is skipped with a note.

Usage::

    python benchmarks/ops.py            # full run, plain-text tables
    python benchmarks/ops.py --quick    # fewer repeats, smaller problems, no n = 1024 kernels
    python benchmarks/ops.py --markdown # Markdown for docs/BENCHMARKS.md

May import: dslearn, torch, numpy, numba.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import torch
import torch.nn.functional as F
from dslearn.kernels.cpu import matmul as teaching

import dslearn as ds


@dataclass
class Case:
    """One op at one shape: how to build its float32 inputs and call it in each framework."""

    op: str
    shape: str
    make_inputs: Callable[[np.random.Generator], list[np.ndarray]]
    call_ds: Callable
    call_torch: Callable
    differentiable: tuple[bool, ...]  # which inputs get a gradient


def dslearn_function(name: str) -> Callable | None:
    """``ds.<name>``, else ``ds.nn.functional.<name>``, else None."""
    if hasattr(ds, name):
        return getattr(ds, name)
    try:
        import dslearn.nn.functional as functional
    except ImportError:
        return None
    return getattr(functional, name, None)


def normal(*shape: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.standard_normal(shape).astype(np.float32)


def cases(quick: bool) -> list[Case]:
    def ds_op(name: str, **kwargs) -> Callable:
        return lambda *args: dslearn_function(name)(*args, **kwargs)

    conv_shapes = [(64, 1, 28, 28, 16)] if quick else [(64, 1, 28, 28, 16), (32, 16, 32, 32, 32)]
    norm_shape = (16, 64, 256) if quick else (32, 128, 512)
    result = [
        Case("matmul", "64x784 @ 784x256", lambda r: [normal(64, 784)(r), normal(784, 256)(r)],
             lambda a, b: ds.matmul(a, b), torch.matmul, (True, True)),
        Case("matmul", "1024x1024 @ 1024x1024", lambda r: [normal(1024, 1024)(r), normal(1024, 1024)(r)],
             lambda a, b: ds.matmul(a, b), torch.matmul, (True, True)),
    ]
    for n, c, h, w, k in conv_shapes:
        result.append(Case("conv2d", f"x {n}x{c}x{h}x{w}, w {k}x{c}x3x3, pad 1",
                           lambda r, n=n, c=c, h=h, w=w, k=k: [normal(n, c, h, w)(r), normal(k, c, 3, 3)(r),
                                                               normal(k)(r)],
                           ds_op("conv2d", padding=1), lambda x, wt, b: F.conv2d(x, wt, b, padding=1),
                           (True, True, True)))
    for rows, cols in [(64, 10), (256, 1000)]:
        result.append(Case("softmax", f"{rows}x{cols}, dim -1", lambda r, rows=rows, cols=cols: [normal(rows, cols)(r)],
                           ds_op("softmax", dim=-1), lambda x: torch.softmax(x, dim=-1), (True,)))
    features = norm_shape[-1]
    result.append(Case("layer_norm", "x".join(map(str, norm_shape)) + f", over {features}",
                       lambda r: [normal(*norm_shape)(r), normal(features)(r), normal(features)(r)],
                       lambda x, wt, b: dslearn_function("layer_norm")(x, (features,), wt, b),
                       lambda x, wt, b: F.layer_norm(x, (features,), wt, b), (True, True, True)))
    for rows, classes in [(64, 10), (256, 1000)]:
        result.append(Case("cross_entropy", f"{rows}x{classes} logits",
                           lambda r, rows=rows, classes=classes: [normal(rows, classes)(r),
                                                                  r.integers(0, classes, rows)],
                           ds_op("cross_entropy"), F.cross_entropy, (True, False)))
    return result


# --- timing ------------------------------------------------------------------------------------


def median_ms(run_once: Callable[[], float], warmup: int, repeats: int) -> float:
    """Median over ``repeats`` of what ``run_once`` returns (seconds), after ``warmup`` discarded runs."""
    for _ in range(warmup):
        run_once()
    return 1e3 * statistics.median(run_once() for _ in range(repeats))


def elapsed(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_framework(case: Case, arrays: list[np.ndarray], framework: str, warmup: int, repeats: int):
    """(forward ms, backward ms) of ``case`` in ``framework`` ("dslearn" or "torch")."""
    if framework == "dslearn":
        inputs = [ds.tensor(a, requires_grad=g) for a, g in zip(arrays, case.differentiable)]
        call, make_grad = case.call_ds, ds.tensor
    else:
        inputs = [torch.from_numpy(a.copy()).requires_grad_(g) for a, g in zip(arrays, case.differentiable)]
        call, make_grad = case.call_torch, torch.from_numpy
    forward = median_ms(lambda: elapsed(lambda: call(*inputs)), warmup, repeats)
    upstream = make_grad(np.ones(tuple(call(*inputs).shape), np.float32))

    def backward_once() -> float:
        for tensor in inputs:
            tensor.grad = None
        out = call(*inputs)
        return elapsed(lambda: out.backward(upstream))

    return forward, median_ms(backward_once, warmup, repeats)


def op_rows(quick: bool) -> tuple[list[list[str]], list[str]]:
    warmup, repeats = (2, 5) if quick else (3, 15)
    rows, notes = [], []
    for case in cases(quick):
        if dslearn_function(case.op) is None:
            notes.append(f"{case.op} ({case.shape}): skipped, dslearn has no ds.{case.op} or "
                         f"ds.nn.functional.{case.op} yet")
            continue
        arrays = case.make_inputs(np.random.default_rng(0))
        try:
            ours = time_framework(case, arrays, "dslearn", warmup, repeats)
        except Exception as error:  # a benchmark reports a failing op and goes on to the next one
            notes.append(f"{case.op} ({case.shape}): skipped, dslearn raised {type(error).__name__}: {error}")
            continue
        theirs = time_framework(case, arrays, "torch", warmup, repeats)
        for pass_name, mine, torch_ms in zip(("forward", "backward"), ours, theirs):
            rows.append([case.op, case.shape, pass_name, f"{mine:.3f}", f"{torch_ms:.3f}", f"{mine / torch_ms:.2f}"])
    return rows, notes


def kernel_rows(quick: bool) -> list[list[str]]:
    """GFLOP/s of each teaching kernel and of BLAS at n x n x n, float32 (n = 1024 only without --quick)."""
    rng = np.random.default_rng(0)
    tiny = rng.standard_normal((4, 4)).astype(np.float32)
    for kernel in teaching.KERNELS.values():  # compile (or load from cache) outside the timings
        kernel(tiny, tiny, np.empty_like(tiny))
    rows = []
    for n in (256, 512) if quick else (256, 512, 1024):
        a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
        out = np.empty((n, n), np.float32)
        gflops = {}
        for name, kernel in teaching.KERNELS.items():
            slow = name == "naive" and n >= 512
            repeats = 1 if slow else (3 if quick else 7)
            run_once = lambda kernel=kernel, a=a, b=b, out=out: elapsed(lambda: kernel(a, b, out))
            ms = median_ms(run_once, 0 if slow else 1, repeats)
            gflops[name] = (ms, 2 * n**3 / (ms * 1e-3) / 1e9)
        for name, (ms, rate) in gflops.items():
            rows.append([f"{n}", name, f"{ms:.2f}", f"{rate:.1f}", f"{rate / gflops['blas'][1]:.1%}"])
    return rows


# --- report ------------------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    blas = np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {})
    environment = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                            "OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER", "NUMBA_NUM_THREADS") if k in os.environ)
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} logical cores"),
        ("threads", f"dslearn/Numba {numba.get_num_threads()} ({numba.threading_layer()} layer), "
                    f"torch {torch.get_num_threads()}"),
        ("versions", f"Python {platform.python_version()}, dslearn {ds.__version__}, NumPy {np.__version__} "
                     f"({blas.get('name', '?')} {blas.get('version', '')}), Numba {numba.__version__}, "
                     f"torch {torch.__version__}"),
        ("environment", environment or "no threading variables set"),
        ("load average", " ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("command", " ".join(["python", *sys.argv])),
    ]


def render(headers: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in [headers, *rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller problems")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables for docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(numba.get_num_threads())

    kernels = kernel_rows(args.quick)  # first: it also starts Numba's thread pool, named in machine()
    ops, notes = op_rows(args.quick)
    heading = "### " if args.markdown else ""
    bullet = "- " if args.markdown else "  "
    print(f"{heading}Machine\n")
    print("\n".join(f"{bullet}{key}: {value}" for key, value in machine()))
    print(f"\n{heading}dslearn vs torch, float32, median ms (ratio = dslearn / torch; below 1 is faster)\n")
    print(render(["op", "shape", "pass", "dslearn ms", "torch ms", "ratio"], ops, args.markdown))
    if notes:
        print("\n" + "\n".join(f"{bullet}{note}" for note in notes))
    print(f"\n{heading}Teaching matmul kernels vs BLAS (np.matmul), float32, n x n @ n x n\n")
    print(render(["n", "kernel", "ms", "GFLOP/s", "of BLAS"], kernels, args.markdown))


if __name__ == "__main__":
    main()
