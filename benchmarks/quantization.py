"""Quantize LeNet on MNIST: float32 vs post-training quantization (PTQ) vs quantization-aware training (QAT).

One run on this machine:

1. trains the float32 LeNet (dslearn.models.LeNet) with the ``train_mnist`` CNN recipe (Adam 1e-3,
   cosine schedule, batch 64) on the offline MNIST-10k default (8,000 / 2,000 images);
2. PTQ at W8A8, W4A8, W4A4 and W2A4: per-channel symmetric weights, activation ranges from 20
   calibration batches (moving-average min-max), no training; and W4A4 with one weight scale per
   layer (per-tensor), the setting where 4-bit PTQ usually breaks;
3. QAT at the same bit widths: ``prepare_qat`` on the trained float model, ``--qat-epochs`` epochs
   of fine-tuning (Adam 1e-4), then ``quantize_model``; plus the variants: per-tensor W4A4, a progressive
   8 -> 6 -> 4 bit schedule (one epoch per stage), LSQ, PACT and distillation from the float model;
4. for every model: test accuracy of the fake-quantized model and of the integer model, the
   bytes ``ds.save(model.state_dict())`` writes, and the time to classify the 2,000 test images
   (batches of 500), for the integer model against the float32 dslearn model and against torch
   float32 on the same weights (torch in its own process, same threads). The models are timed
   round-robin, one pass each per round, best of ``--repeats`` rounds, so that a busy machine
   slows them all alike; torch is timed before and after them and its best time kept.

Usage: python benchmarks/quantization.py [--qat-epochs 2] [--repeats 5] [--markdown] [--quick]

May import: dslearn, numpy, torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import dslearn as ds
from dslearn import optim
from dslearn.data import DataLoader, TsinghuaDataset
from dslearn.models import LeNet
from dslearn.quantization import (
    ProgressiveQuantization,
    QATConfig,
    distill,
    prepare_qat,
    quantize_model,
    saved_size,
)
from dslearn.training import evaluate, fit
from dslearn.training.mnist import RECIPES, mnist_transforms

THREADS = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
BITS = [(8, 8), (4, 8), (4, 4), (2, 4)]
BATCH = 500


def load_data(seed: int = 0):
    train = TsinghuaDataset("MNIST", split="train", transform=mnist_transforms(False), download=False)
    test = TsinghuaDataset("MNIST", split="test", transform=mnist_transforms(False), download=False)
    loader = DataLoader(train, batch_size=64, shuffle=True, generator=ds.Generator().manual_seed(seed))
    images = ds.stack([test[i][0] for i in range(len(test))])
    labels = ds.tensor([int(test[i][1]) for i in range(len(test))])
    return train, loader, images, labels, getattr(train, "variant", "MNIST")


def accuracy(model, images, labels) -> float:
    loader = [(images[i:i + BATCH], labels[i:i + BATCH]) for i in range(0, len(labels), BATCH)]
    return evaluate(model, loader)["accuracy"]


def inference_seconds(models: list, images, repeats: int) -> list[float]:
    """For each model, the best of ``repeats`` passes over the test images (batches of 500), taken round-robin."""
    best = [float("inf")] * len(models)
    with ds.no_grad():
        for model in models:
            model.eval()
            model(images[:BATCH])  # warm-up: Numba compiles or loads its cache
        for _ in range(repeats):
            for k, model in enumerate(models):
                started = time.perf_counter()
                for i in range(0, len(images), BATCH):
                    model(images[i:i + BATCH])
                best[k] = min(best[k], time.perf_counter() - started)
    return best


def torch_inference_seconds(state: dict, images: np.ndarray, repeats: int) -> float:
    """The same LeNet and weights in torch float32, timed in a fresh process (one OpenMP runtime per process)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        np.savez(os.path.join(folder, "lenet.npz"), images=images, **state)
        code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                f"import quantization as b; print(json.dumps(b.run_torch({folder!r}, {repeats})))")
        output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_torch(folder: str, repeats: int) -> float:
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    arrays = np.load(os.path.join(folder, "lenet.npz"))
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10)).eval()
    model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in model.state_dict()})
    images = torch.from_numpy(arrays["images"])
    times = []
    with torch.no_grad():
        model(images[:BATCH])
        for _ in range(repeats):
            started = time.perf_counter()
            for i in range(0, len(images), BATCH):
                model(images[i:i + BATCH])
            times.append(time.perf_counter() - started)
    return min(times)


def train_float(loader, epochs: int, seed: int) -> LeNet:
    ds.manual_seed(seed)
    model = LeNet()
    optimizer = optim.Adam(model.parameters(), lr=RECIPES["cnn"]["lr"])
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    fit(model, optimizer, loader, epochs=epochs, scheduler=scheduler, progress=False, log=None)
    return model


def qat(float_model, loader, config: QATConfig, epochs: int, variant: str):
    """Fine-tune a prepared copy of ``float_model``; ``variant`` is 'plain', 'progressive' or 'distill'."""
    prepared = prepare_qat(float_model, config)
    optimizer = optim.Adam(prepared.parameters(), lr=1e-4)
    if variant == "distill":
        distill(prepared, float_model, optimizer, loader, epochs=epochs, progress=False, log=None)
    elif variant == "progressive":
        schedule = ProgressiveQuantization(prepared, (8, 6, config.weight_bits), activations=True)
        for _ in range(3):
            fit(prepared, optimizer, loader, epochs=1, progress=False, log=None)
            schedule.step()
    else:
        fit(prepared, optimizer, loader, epochs=epochs, progress=False, log=None)
    return prepared


def measure(name: str, method: str, fake_quantized, integer, images, labels, started: float) -> dict:
    return {"name": name, "method": method, "model": integer,
            "fake_quant_accuracy": accuracy(fake_quantized, images, labels) if fake_quantized is not None else None,
            "accuracy": accuracy(integer, images, labels), "bytes": saved_size(integer),
            "prepare_seconds": time.perf_counter() - started}


def run(args) -> tuple[list[dict], dict]:
    train, loader, images, labels, variant = load_data(args.seed)
    started = time.perf_counter()
    float_model = train_float(loader, args.epochs, args.seed)
    rows = [measure("float32", "trained", None, float_model, images, labels, started)]
    calibration = DataLoader(train, batch_size=64, shuffle=True, generator=ds.Generator().manual_seed(args.seed + 1))
    bits = BITS[1:3] if args.quick else BITS
    per_tensor = [] if args.quick else [(4, 4, {"per_channel": False})]  # one weight scale per layer
    for weight_bits, activation_bits, options in [(w, a, {}) for w, a in bits] + per_tensor:
        started = time.perf_counter()
        config = QATConfig(weight_bits=weight_bits, activation_bits=activation_bits, qat_enabled=False, **options)
        integer = quantize_model(float_model, config, calibration_data=calibration, calibration_batches=20)
        label = "PTQ" + (" (per-tensor weights)" if options else "")
        rows.append(measure(f"W{weight_bits}A{activation_bits}", label, None, integer, images, labels, started))
    variants = [(w, a, "plain", {}) for w, a in bits]
    if not args.quick:
        variants += [(4, 4, "plain", {"per_channel": False}), (4, 4, "progressive", {}),
                     (2, 4, "plain", {"learnable_scales": True}), (2, 4, "plain", {"pact": True}),
                     (2, 4, "distill", {})]
    for weight_bits, activation_bits, kind, options in variants:
        started = time.perf_counter()
        config = QATConfig(weight_bits=weight_bits, activation_bits=activation_bits, **options)
        prepared = qat(float_model, loader, config, args.qat_epochs, kind)
        integer = quantize_model(prepared)
        label = {"progressive": "QAT, 8->6->4 bits", "distill": "QAT + distillation"}.get(kind, "QAT")
        label += (" (LSQ)" if options.get("learnable_scales") else " (PACT)" if options.get("pact")
                  else " (per-tensor weights)" if options.get("per_channel") is False else "")
        rows.append(measure(f"W{weight_bits}A{activation_bits}", label, prepared, integer, images, labels, started))
    state = {k: v.numpy() for k, v in float_model.state_dict().items()}  # torch's Sequential has the same keys
    torch_seconds = torch_inference_seconds(state, images.numpy(), args.repeats)
    for row, seconds in zip(rows, inference_seconds([row["model"] for row in rows], images, args.repeats)):
        row["seconds"] = seconds
    torch_seconds = min(torch_seconds, torch_inference_seconds(state, images.numpy(), args.repeats))
    return rows, {"variant": variant, "samples": len(labels), "torch_seconds": torch_seconds}


def print_table(rows: list[dict], info: dict, markdown: bool) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    print(f"machine: {cpu}, {os.cpu_count()} cores; threads {THREADS}; python {platform.python_version()}, "
          f"dslearn {ds.__version__}, numpy {np.__version__}; data: {info['variant']} "
          f"({info['samples']} test images); torch float32 on the same weights: "
          f"{1000 * info['torch_seconds']:.1f} ms for the test set")
    float_row = rows[0]
    header = ["model", "method", "fake-quant acc %", "integer acc %", "bytes on disk", "x smaller",
              "inference ms", "vs dslearn float32", "vs torch float32", "s to make"]
    lines = []
    for row in rows:
        fake = "-" if row["fake_quant_accuracy"] is None else f"{100 * row['fake_quant_accuracy']:.2f}"
        lines.append([row["name"], row["method"], fake, f"{100 * row['accuracy']:.2f}", f"{row['bytes']:,}",
                      f"{float_row['bytes'] / row['bytes']:.2f}", f"{1000 * row['seconds']:.1f}",
                      f"{row['seconds'] / float_row['seconds']:.2f}x", f"{row['seconds'] / info['torch_seconds']:.2f}x",
                      f"{row['prepare_seconds']:.1f}"])
    if markdown:
        print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=RECIPES["cnn"]["epochs"], help="float training epochs")
    parser.add_argument("--qat-epochs", type=int, default=2, help="QAT fine-tuning epochs")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the test set (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="W4A8 and W4A4 only, no QAT variants")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table for docs/BENCHMARKS.md")
    args = parser.parse_args()
    rows, info = run(args)
    print_table(rows, info, args.markdown)


if __name__ == "__main__":
    main()
