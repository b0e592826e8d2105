"""Time one MNIST training epoch in dslearn and in torch: same models, data, batch size, optimizer, threads.

Both frameworks train the README's MLP (784-256-128-10) and LeNet CNN with Adam at batch 64 on the
8,000 training images of the offline MNIST-10k default (or the 60k set when present), from the same
initial weights and the same batch order, in one run on this machine. Data loading is included for
both: dslearn's DataLoader and torch's DataLoader over the same arrays. Each framework runs in its own
subprocess (two OpenMP runtimes in one process fight over the cores), and the best of --repeats
epochs after a warm-up epoch is reported.

Usage: python benchmarks/train_mnist.py [--repeats 3] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))


def load_arrays():
    """MNIST training images (N, 1, 28, 28) float32 normalised, labels int64, from dslearn's registry."""
    import numpy as np

    from dslearn.data import TsinghuaDataset

    train = TsinghuaDataset("MNIST", split="train", download=False)
    images, labels = train.__getitems__(list(range(len(train))))
    images = (images.numpy() - 0.1307) / 0.3081
    return images.astype(np.float32), labels.numpy().astype(np.int64), getattr(train, "variant", "mnist")


def run_dslearn(model_name: str, repeats: int) -> dict:
    import dslearn as ds
    from dslearn.data import DataLoader, TensorDataset
    from dslearn.models import mnist_model

    images, labels, variant = load_arrays()
    ds.manual_seed(0)
    model = mnist_model(model_name)
    optimizer = ds.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(ds.tensor(images), ds.tensor(labels)), batch_size=64, shuffle=True,
                        generator=ds.Generator().manual_seed(0))

    def epoch():
        for x, y in loader:
            optimizer.zero_grad()
            ds.cross_entropy(model(x), y).backward()
            optimizer.step()

    return _time_epochs(epoch, repeats) | {"variant": variant, "samples": len(labels)}


def run_torch(model_name: str, repeats: int) -> dict:
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    images, labels, variant = load_arrays()
    torch.manual_seed(0)
    if model_name == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                              nn.Linear(128, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                              nn.ReLU(), nn.Linear(84, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))

    def epoch():
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()

    return _time_epochs(epoch, repeats) | {"variant": variant, "samples": len(labels)}


def _time_epochs(epoch, repeats: int) -> dict:
    epoch()  # warm-up: Numba compiles (or loads its cache), allocators settle
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - started)
    return {"best": min(times), "median": sorted(times)[len(times) // 2]}


def measure(framework: str, model: str, repeats: int) -> dict:
    """Run one framework in a fresh interpreter and return its timings."""
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import train_mnist as b; "
            f"print(json.dumps(b.run_{framework}({model!r}, {repeats})))")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for docs/BENCHMARKS.md")
    args = parser.parse_args()
    import numpy
    import torch

    import dslearn

    rows = []
    for model in ("mlp", "cnn"):
        ours, theirs = measure("dslearn", model, args.repeats), measure("torch", model, args.repeats)
        rows.append((model, ours, theirs))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores; threads {THREADS}; python {platform.python_version()}, "
          f"dslearn {dslearn.__version__}, numpy {numpy.__version__}, torch {torch.__version__}; "
          f"data: {rows[0][1]['variant']} ({rows[0][1]['samples']} training images), batch 64, Adam")
    if args.markdown:
        print("\n| model | dslearn s/epoch | torch s/epoch | ratio (dslearn / torch) |\n|---|---|---|---|")
    for model, ours, theirs in rows:
        ratio = ours["best"] / theirs["best"]
        if args.markdown:
            print(f"| {model} | {ours['best']:.3f} | {theirs['best']:.3f} | {ratio:.2f} |")
        else:
            print(f"{model}: dslearn {ours['best']:.3f} s/epoch (median {ours['median']:.3f}), "
                  f"torch {theirs['best']:.3f} s/epoch (median {theirs['median']:.3f}), ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
