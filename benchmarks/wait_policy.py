"""Why dslearn sets OMP_WAIT_POLICY=PASSIVE: one MNIST training epoch with idle threads spinning vs sleeping.

Numba's OpenMP workers and OpenBLAS's workers both busy-wait after a parallel region by default. On a
machine with few cores they then steal each other's cores whenever a Numba kernel and a BLAS call
alternate, which is every layer of a training step. The script times the dslearn epoch of
benchmarks/train_mnist.py in fresh processes under each policy.

Usage: python benchmarks/wait_policy.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def epoch_seconds(model: str, policy: str, repeats: int) -> float:
    code = (f"import json, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import train_mnist as b; "
            f"print(json.dumps(b.run_dslearn({model!r}, {repeats})))")
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])["best"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; best epoch of {args.repeats} (MNIST, batch 64, Adam)")
    print("| model | OMP_WAIT_POLICY=ACTIVE s/epoch | PASSIVE s/epoch | slowdown from spinning |\n|---|---|---|---|")
    for model in ("mlp", "cnn"):
        active, passive = (epoch_seconds(model, policy, args.repeats) for policy in ("ACTIVE", "PASSIVE"))
        print(f"| {model} | {active:.3f} | {passive:.3f} | {active / passive:.1f}x |")


if __name__ == "__main__":
    main()
