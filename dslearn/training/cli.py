"""``dslearn train mnist --model mlp|cnn``: the beginner capstone from the command line.

May import: the standard library, dslearn.training.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="dslearn")
>>> add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["train", "mnist", "--model", "cnn", "--epochs", "2"])
>>> args.dataset, args.model, args.epochs, args.func.__name__
('mnist', 'cnn', 2, 'train_command')
"""

from __future__ import annotations

import argparse

DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


def add_parser(subparsers) -> None:
    """Register ``train``."""
    train = subparsers.add_parser("train", help="train a model on a digits dataset and report its test accuracy",
                                  description="Train an MLP or a LeNet-style CNN on MNIST-style data. Without the "
                                              "60,000 MNIST training images the offline MNIST-10k split is used "
                                              "(and named as such).")
    train.add_argument("dataset", choices=sorted(DATASETS), help="which dataset (from the registry / DSLEARN_DATA)")
    train.add_argument("--model", choices=["mlp", "cnn"], default="mlp", help="784-256-128-10 MLP or LeNet CNN")
    train.add_argument("--epochs", type=int, default=None, help="default: the model's recipe (mlp 15, cnn 10)")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--micro-batch-size", type=int, default=None,
                       help="accumulate gradients over micro-batches of this size (same result, less memory)")
    train.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                       help="random 2-pixel shifts (default: on for mlp, off for cnn)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--checkpoint-dir", default=None, help="write a checkpoint after every epoch here")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    train.add_argument("--offline", action="store_true", help="never try to download missing files")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=train_command)


def train_command(args: argparse.Namespace) -> int:
    from dslearn.training.mnist import train_mnist

    summary = train_mnist(args.model, DATASETS[args.dataset], epochs=args.epochs, batch_size=args.batch_size,
                          lr=args.lr, augment=args.augment, micro_batch_size=args.micro_batch_size, seed=args.seed,
                          checkpoint_dir=args.checkpoint_dir, resume=args.resume, progress=not args.no_progress,
                          download=False if args.offline else None)
    print(summary)
    return 0
