"""Time ``@ds.jit`` against eager dslearn, torch eager and ``torch.compile``: same models, weights, inputs, threads.

Two workloads, in one run on this machine:

(a) inference of an MLP with LayerNorm and GELU, 784-256-256-10
    (Flatten, Linear, LayerNorm, GELU, Linear, LayerNorm, GELU, Linear), float32, no gradients,
    at batch 1, 64 and 1024;
(b) one full training step of the course's MNIST MLP (784-256-128-10 with ReLU, ``MnistMLP``):
    forward, cross-entropy, backward, optimizer update, at batch 64, with Adam (lr 1e-3, as
    benchmarks/train_mnist.py) and with SGD (lr 0.01, momentum 0.9).

Every framework runs in its own fresh interpreter (two OpenMP runtimes in one process fight
over the cores: the torch process never imports dslearn or Numba, and keeps torch's own OpenMP
settings) with the same weights (drawn once by seeded dslearn models, passed as a .npz file)
and the same random inputs; torch uses ``torch.set_num_threads(THREADS)``. Each measurement warms up
(compilation happens there and is timed separately: "first call"), then times ``--calls`` x
``--repeats`` calls, each on its own, and reports the median and the best (other programs on
the machine only ever make a call slower: the best is the most repeatable, and the ratios are
computed from the best times). For jit, the first call is measured with an empty kernel cache
(a temporary ``DSLEARN_JIT_CACHE``), i.e. the cost of a cold compile; with a warm cache it is
much lower. torch.compile runs in its
default mode; if it fails here, the error is reported instead of a time.

Usage: python benchmarks/jit.py [--calls 200] [--repeats 5] [--markdown] [--no-torch-compile]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
BATCHES = (1, 64, 1024)
WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY")  # as the user set it, before dslearn sets its own


def _timings(call, calls: int, repeats: int) -> dict:
    """The first call's time, then ``repeats * calls`` calls timed one by one: median and best."""
    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    for _ in range(5):
        call()
    per_call = []
    for _ in range(repeats * calls):
        started = time.perf_counter()
        call()
        per_call.append(time.perf_counter() - started)
    per_call.sort()
    return {"first": first, "median": per_call[len(per_call) // 2], "best": per_call[0]}


def _arrays(batch: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, batch).astype(np.int64)


def _dslearn_models():
    """The two models, with the weights of the run (``BENCH_WEIGHTS``, written by ``save_weights``)."""
    import numpy as np

    import dslearn as ds
    from dslearn import nn
    from dslearn.models import MnistMLP

    inference = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.LayerNorm(256), nn.GELU(), nn.Linear(256, 256),
                              nn.LayerNorm(256), nn.GELU(), nn.Linear(256, 10))
    inference.eval()
    training = MnistMLP()
    weights = np.load(os.environ["BENCH_WEIGHTS"])
    for prefix, model in (("inference.", inference), ("training.", training)):
        model.load_state_dict({k[len(prefix):]: ds.tensor(v) for k, v in weights.items() if k.startswith(prefix)})
    return inference, training


def save_weights(path: str) -> None:
    """Draw both models' weights once (seeded dslearn initialisation) and save them for every framework."""
    import numpy as np

    import dslearn as ds
    from dslearn import nn
    from dslearn.models import MnistMLP

    ds.manual_seed(0)
    inference = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.LayerNorm(256), nn.GELU(), nn.Linear(256, 256),
                              nn.LayerNorm(256), nn.GELU(), nn.Linear(256, 10))
    arrays = {f"inference.{k}": v.detach().numpy() for k, v in inference.state_dict().items()}
    arrays |= {f"training.{k}": v.detach().numpy() for k, v in MnistMLP().state_dict().items()}
    np.savez(path, **arrays)


def _eager_step(model, optimizer, loss_fn, x, y) -> None:
    """One eager training step (the same code for dslearn and torch)."""
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()


def run_dslearn(mode: str, calls: int, repeats: int) -> dict:
    import dslearn as ds
    from dslearn.jit import jit

    inference, _ = _dslearn_models()
    model = jit(inference) if mode == "jit" else inference
    results = {}
    for batch in BATCHES:
        x = ds.tensor(_arrays(batch, batch)[0])
        with ds.no_grad():
            results[f"infer{batch}"] = _timings(functools.partial(model, x), calls, repeats)
    x, y = (ds.tensor(a) for a in _arrays(64, 7))
    for name, make in (("adam", functools.partial(ds.optim.Adam, lr=1e-3)),
                       ("sgd", functools.partial(ds.optim.SGD, lr=0.01, momentum=0.9))):
        _, training = _dslearn_models()
        optimizer = make(training.parameters())
        if mode == "jit":
            step = functools.partial(jit(_LossOf(training, ds.cross_entropy), optimizer=optimizer), x, y)
        else:
            step = functools.partial(_eager_step, training, optimizer, ds.cross_entropy, x, y)
        results[f"train_{name}"] = _timings(step, calls, repeats)
    return results


class _LossOf:
    """``loss_fn(model(x), y)`` as a callable object (what the compiled training step traces)."""

    def __init__(self, model, loss_fn) -> None:
        self.model, self.loss_fn = model, loss_fn

    def __call__(self, x, y):
        return self.loss_fn(self.model(x), y)


def _torch_models():
    """The same two models in torch, with the same weights (this process never imports dslearn)."""
    import numpy as np
    import torch
    from torch import nn

    inference = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.LayerNorm(256), nn.GELU(), nn.Linear(256, 256),
                              nn.LayerNorm(256), nn.GELU(), nn.Linear(256, 10))
    training = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    weights = np.load(os.environ["BENCH_WEIGHTS"])
    for prefix, model in (("inference.", inference), ("training.", training)):
        model.load_state_dict({k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in weights.items()
                               if k.startswith(prefix)})
    return inference.eval(), training


def run_torch(mode: str, calls: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    inference, _ = _torch_models()
    wrap = torch.compile if mode == "compile" else (lambda m: m)
    results = {}
    model = wrap(inference)
    for batch in BATCHES:
        x = torch.from_numpy(_arrays(batch, batch)[0])
        with torch.inference_mode():
            results[f"infer{batch}"] = _timings(functools.partial(model, x), calls, repeats)
    x, y = (torch.from_numpy(a) for a in _arrays(64, 7))
    for name, make in (("adam", functools.partial(torch.optim.Adam, lr=1e-3)),
                       ("sgd", functools.partial(torch.optim.SGD, lr=0.01, momentum=0.9))):
        _, training = _torch_models()
        optimizer = make(training.parameters())
        step = functools.partial(_eager_step, wrap(training), optimizer, torch.nn.functional.cross_entropy, x, y)
        results[f"train_{name}"] = _timings(step, calls, repeats)
    return results


def measure(framework: str, mode: str, calls: int, repeats: int, weights: str) -> dict:
    """Run one framework and mode in a fresh interpreter; returns its timings (or the error)."""
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import jit as b; "
            f"print(json.dumps(b.run_{framework}({mode!r}, {calls}, {repeats})))")
    env = dict(os.environ, BENCH_WEIGHTS=weights)
    if framework == "torch":  # torch's own OpenMP settings, not the ones dslearn sets for itself
        env.pop("OMP_WAIT_POLICY", None)
        if WAIT_POLICY is not None:
            env["OMP_WAIT_POLICY"] = WAIT_POLICY
    with tempfile.TemporaryDirectory() as cache:
        env["DSLEARN_JIT_CACHE"] = cache  # jit's first call compiles from scratch
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cell(result: dict, key: str, field: str = "median") -> str:
    if "error" in result:
        return "failed"
    return f"{result[key][field] * 1e6:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables for docs/BENCHMARKS.md")
    parser.add_argument("--no-torch-compile", action="store_true", help="skip torch.compile (it compiles slowly)")
    args = parser.parse_args()
    import numba
    import numpy
    import torch

    import dslearn

    columns = [("dslearn eager", "dslearn", "eager"), ("dslearn @ds.jit", "dslearn", "jit"),
               ("torch eager", "torch", "eager")]
    if not args.no_torch_compile:
        columns.append(("torch.compile", "torch", "compile"))
    with tempfile.TemporaryDirectory() as folder:
        weights = os.path.join(folder, "weights.npz")
        save_weights(weights)
        results = {title: measure(fw, mode, args.calls, args.repeats, weights) for title, fw, mode in columns}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores; threads {THREADS}; python {platform.python_version()}, "
          f"dslearn {dslearn.__version__}, numpy {numpy.__version__}, numba {numba.__version__}, "
          f"torch {torch.__version__}; {args.repeats} x {args.calls} calls, median (best) microseconds per call")
    rows = [(f"inference, batch {b}", f"infer{b}") for b in BATCHES]
    rows += [("training step, batch 64, Adam", "train_adam"), ("training step, batch 64, SGD", "train_sgd")]
    titles = [title for title, _, _ in columns]
    jit_ = results["dslearn @ds.jit"]
    if args.markdown:
        print("\n| workload | " + " | ".join(titles) + " | eager / jit (best) | jit / torch eager (best) |")
        print("|---" * (len(titles) + 3) + "|")
    for label, key in rows:
        cells = [f"{_cell(results[t], key)} ({_cell(results[t], key, 'best')})" for t in titles]
        ratios = ["-", "-"]
        if "error" not in jit_ and "error" not in results["dslearn eager"]:
            ratios[0] = f"{results['dslearn eager'][key]['best'] / jit_[key]['best']:.2f}x"
        if "error" not in jit_ and "error" not in results["torch eager"]:
            ratios[1] = f"{jit_[key]['best'] / results['torch eager'][key]['best']:.2f}"
        if args.markdown:
            print(f"| {label} | " + " | ".join(cells + ratios) + " |")
        else:
            print(f"{label}: " + ", ".join(f"{t} {c}" for t, c in zip(titles, cells)) +
                  f"; eager/jit {ratios[0]}, jit/torch {ratios[1]}")
    print("\nfirst call, seconds (for jit: trace + optimise + compile with an empty kernel cache):")
    for title in titles:
        if "error" in results[title]:
            print(f"  {title}: failed: {results[title]['error']}")
        else:
            print(f"  {title}: " + ", ".join(f"{key} {results[title][key]['first']:.2f}" for _, key in rows))


if __name__ == "__main__":
    main()
