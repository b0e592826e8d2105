"""Benchmark dslearn's CUDA kernels against torch on the same GPU: matmul FLOP/s, elementwise and reduction bandwidth.

Three tables, each number best-of-N after warm-up runs (which also compile the kernels):

* matmul: the shared-memory tiled kernel (``dslearn.kernels.cuda.matmul``, and the naive one at the
  smallest size) in GFLOP/s, as a fraction of ``torch.matmul`` in FP32 (cuBLAS; TF32 off);
* elementwise: ``x + y`` (the broadcasting zip kernel) and GELU (a fused activation kernel), in
  GB/s of memory traffic, as a fraction of torch's same op, which runs near the GPU's bandwidth;
* reduction: a full sum (split across blocks, then combined) and row sums, in GB/s read, as a
  fraction of ``torch.sum``.

The device's name heads the output. On a machine without a GPU, ``--simulate`` runs everything in
Numba's CUDA simulator on tiny shapes, against torch on the CPU: it shows that the script works,
and its numbers mean nothing.

Usage::

    python benchmarks/gpu.py                # on a machine with a CUDA GPU and a CUDA build of torch
    python benchmarks/gpu.py --repeats 20 --markdown
    python benchmarks/gpu.py --simulate     # no GPU: the simulator, tiny shapes

May import: dslearn, torch, numpy, numba.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

SIZES = {  # the real run and the simulated one
    "matmul": ([1024, 2048, 4096], [12]),
    "elementwise": ([1 << 26], [1000]),
    "rows": ([(8192, 8192)], [(6, 40)]),
}


def best_time(fn: Callable, args: tuple, repeats: int, synchronize: Callable) -> float:
    """The fastest of ``repeats`` timed calls ``fn(*args)`` (seconds), after two warm-up calls; each call
    is timed until the device has finished it."""
    for _ in range(2):
        fn(*args)
    synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def table(title: str, header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--simulate", action="store_true", help="run in Numba's CUDA simulator, tiny shapes")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.simulate:
        if "numba" in sys.modules and not os.environ.get("NUMBA_ENABLE_CUDASIM"):
            parser.error("--simulate must set NUMBA_ENABLE_CUDASIM before numba is imported")
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        args.repeats = 1

    import torch
    from dslearn.kernels.cuda import activations, matmul, numpy_api, runtime
    from dslearn.kernels.cuda.array import CudaArray

    if not runtime.is_available():
        print("no CUDA GPU here (numba.cuda.is_available() is False); run with --simulate to try the script")
        return 1
    on_gpu = not args.simulate
    if on_gpu and not torch.cuda.is_available():
        print("torch has no CUDA here: install a CUDA build of torch to compare against cuBLAS")
        return 1
    torch_device = "cuda" if on_gpu else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 against FP32
    pick = 0 if on_gpu else 1

    def sync() -> None:
        runtime.synchronize()
        if on_gpu:
            torch.cuda.synchronize()

    def both(array: np.ndarray):
        return CudaArray.from_numpy(array), torch.from_numpy(array).to(torch_device)

    rng = np.random.default_rng(0)
    torch_name = torch.cuda.get_device_name() if on_gpu else "torch on the CPU (simulation: numbers mean nothing)"
    print(f"dslearn CUDA device: {runtime.device_name()}; torch: {torch_name}; best of {args.repeats}\n")

    def row(label: list[str], work: float, ours: tuple, theirs: tuple) -> list[str]:
        """``label`` + (work / time) for dslearn and torch in billions per second, and their ratio."""
        ours_rate = work / best_time(*ours, args.repeats, sync) / 1e9
        theirs_rate = work / best_time(*theirs, args.repeats, sync) / 1e9
        return label + [f"{ours_rate:.1f}", f"{theirs_rate:.1f}", f"{ours_rate / theirs_rate:.1%}"]

    rows = []
    for n in SIZES["matmul"][pick]:
        (a, ta), (b, tb) = (both(rng.standard_normal((n, n), dtype=np.float32)) for _ in range(2))
        for kernel in ["tiled", "naive"] if n == SIZES["matmul"][pick][0] else ["tiled"]:
            rows.append(row([f"{n} x {n}", kernel], 2 * n ** 3, (matmul.matmul, (a, b, kernel)),
                            (torch.matmul, (ta, tb))))
    print(table("matmul, float32 (GFLOP/s)", ["shape", "kernel", "dslearn", "torch", "fraction"], rows,
                args.markdown))

    rows = []
    for n in SIZES["elementwise"][pick]:
        (x, tx), (y, ty) = (both(rng.standard_normal(n, dtype=np.float32)) for _ in range(2))
        rows.append(row(["x + y", f"{n:,}"], 3 * 4 * n, (np.add, (x, y)), (torch.add, (tx, ty))))
        rows.append(row(["gelu(x)", f"{n:,}"], 2 * 4 * n, (activations.gelu, (x,)),
                        (torch.nn.functional.gelu, (tx,))))
    print(table("elementwise, float32 (GB/s moved)", ["op", "elements", "dslearn", "torch", "fraction"], rows,
                args.markdown))

    rows = []
    for n in SIZES["elementwise"][pick]:
        x, tx = both(rng.standard_normal(n, dtype=np.float32))
        rows.append(row(["sum(x)", f"{n:,}"], 4 * n, (numpy_api.reduce, (x, "sum")), (torch.sum, (tx,))))
    for shape in SIZES["rows"][pick]:
        x, tx = both(rng.standard_normal(shape, dtype=np.float32))
        rows.append(row(["x.sum(1)", f"{shape[0]} x {shape[1]}"], 4 * shape[0] * shape[1],
                        (numpy_api.reduce, (x, "sum", 1)), (torch.sum, (tx, 1))))
    print(table("reduction, float32 (GB/s read)", ["op", "shape", "dslearn", "torch", "fraction"], rows,
                args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
