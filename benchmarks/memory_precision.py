"""Measure what checkpointing, micro-batches and mixed precision buy: memory, time and accuracy.

One run on this machine:

1. activation checkpointing (``ds.set_grad_checkpoint(True)``) on a deep MLP, 16 blocks of 4
   Linear(512, 512) + Tanh layers, batch 256: peak activation bytes (``ds.memory.track``) and
   the time of one forward + backward, plain vs checkpointed;
2. micro-batches (``train_step(..., micro_batch_size=...)``) on the same model: peak activation
   bytes for one step on a batch of 256 cut into 256, 64 and 16;
3. mixed precision on the course's MNIST MLP (784-256-128-10), ``--epochs`` epochs of Adam on the
   offline MNIST-10k default, batch 64: test accuracy and epoch time in float32 and under
   ``ds.autocast`` with bfloat16 and with float16 (+ ``GradScaler``). On a CPU, low precision saves
   no time (NumPy computes float16 and bfloat16 in software): the point is the accuracy.

Usage: python benchmarks/memory_precision.py [--epochs 3] [--markdown]

May import: dslearn, numpy.
"""

from __future__ import annotations

import argparse
import time

import dslearn as ds
from dslearn.data import DataLoader, TsinghuaDataset
from dslearn.models import MnistMLP
from dslearn.training import evaluate, train_step
from dslearn.training.mnist import mnist_transforms

MIB = 2**20


def deep_mlp(blocks: int = 16, width: int = 512) -> ds.nn.Module:
    ds.manual_seed(0)
    return ds.nn.Sequential(*[ds.nn.Sequential(*[layer for _ in range(4)
                                                 for layer in (ds.nn.Linear(width, width), ds.nn.Tanh())])
                              for _ in range(blocks)], ds.nn.Linear(width, 10))


def checkpointing_rows() -> list[list[str]]:
    model = deep_mlp()
    x, y = ds.randn(256, 512), ds.randint(0, 10, (256,))
    rows, plain = [], None
    for enabled in (False, True):
        ds.set_grad_checkpoint(enabled)
        seconds = []
        for _ in range(3):
            model.zero_grad()
            with ds.memory.track() as memory:
                started = time.perf_counter()
                ds.nn.functional.cross_entropy(model(x), y).backward()
                seconds.append(time.perf_counter() - started)
        ds.set_grad_checkpoint(False)
        peak = memory.peak_activation_bytes
        plain = plain or (peak, min(seconds))
        rows.append(["checkpointed" if enabled else "plain", f"{peak / MIB:.1f}", f"{peak / plain[0]:.2f}",
                     f"{1000 * min(seconds):.0f}", f"{min(seconds) / plain[1]:.2f}"])
    return rows


def micro_batch_rows() -> list[list[str]]:
    model = deep_mlp()
    optimizer = ds.optim.SGD(model.parameters(), lr=0.01)
    batch = (ds.randn(256, 512), ds.randint(0, 10, (256,)))
    rows, whole = [], None
    for size in (256, 64, 16):
        with ds.memory.track() as memory:
            train_step(model, optimizer, batch, micro_batch_size=size)
        whole = whole or memory.peak_activation_bytes
        rows.append([str(size), f"{memory.peak_activation_bytes / MIB:.1f}",
                     f"{memory.peak_activation_bytes / whole:.2f}"])
    return rows


def precision_rows(epochs: int) -> list[list[str]]:
    train = TsinghuaDataset("MNIST", split="train", transform=mnist_transforms(False), download=False)
    test = TsinghuaDataset("MNIST", split="test", transform=mnist_transforms(False), download=False)
    rows = []
    for name, dtype in (("float32", None), ("bfloat16 autocast", ds.bfloat16),
                        ("float16 autocast + GradScaler", ds.float16)):
        ds.manual_seed(0)
        model, loader = MnistMLP(), DataLoader(train, batch_size=64, shuffle=True,
                                               generator=ds.Generator().manual_seed(0))
        optimizer = ds.optim.Adam(model.parameters(), lr=1e-3)
        scaler = ds.amp.GradScaler(enabled=dtype is ds.float16)
        epoch_seconds = []
        for _ in range(epochs):
            started = time.perf_counter()
            for images, labels in loader:
                optimizer.zero_grad()
                with ds.autocast(dtype=dtype or ds.float16, enabled=dtype is not None):
                    loss = ds.nn.functional.cross_entropy(model(images), labels)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            epoch_seconds.append(time.perf_counter() - started)
        accuracy = evaluate(model, DataLoader(test, batch_size=500))["accuracy"]
        rows.append([name, f"{100 * accuracy:.2f}", f"{min(epoch_seconds):.2f}", str(scaler.skipped_steps)])
    return rows


def table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    print("Activation checkpointing, deep MLP (16 blocks x 4 Linear(512, 512) + Tanh), batch 256:\n")
    print(table(["run", "peak activations MiB", "vs plain", "forward + backward ms", "vs plain"],
                checkpointing_rows(), args.markdown))
    print("\nMicro-batches, one SGD step on a batch of 256, same model:\n")
    print(table(["micro-batch size", "peak activations MiB", "vs whole batch"], micro_batch_rows(), args.markdown))
    print(f"\nMixed precision, MNIST MLP, {args.epochs} epochs of Adam (lr 1e-3, batch 64) on MNIST-10k:\n")
    print(table(["run", "test accuracy %", "best epoch s", "skipped steps"], precision_rows(args.epochs),
                args.markdown))


if __name__ == "__main__":
    main()
