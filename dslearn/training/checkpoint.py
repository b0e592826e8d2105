"""Checkpoints: everything needed to stop training and resume it bit for bit.

A checkpoint holds the model's and the optimizer's state dicts, the scheduler's, the epoch
reached, the history so far and the random generators' states, saved with ``ds.save`` (atomic,
no pickle). Resuming from epoch k and training on gives the same parameters as never stopping.

May import: dslearn.serialization, dslearn.random.

>>> import dslearn as ds, tempfile, os
>>> model = ds.nn.Linear(2, 1)
>>> opt = ds.optim.SGD(model.parameters(), lr=0.1)
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
>>> save_checkpoint(path, model, opt, epoch=3)
>>> load_checkpoint(path, model, opt)["epoch"]
3
"""

from __future__ import annotations

import os

from dslearn import random as ds_random
from dslearn.serialization import load, save


def save_checkpoint(path: str | os.PathLike, model, optimizer=None, *, epoch: int, scheduler=None,
                    history: list | None = None, generators=()) -> None:
    """Write a checkpoint atomically (the previous file survives a crash mid-write)."""
    state = {
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": list(history or []),
        "rng": ds_random.get_rng_state(),
        "generators": [g.get_state() for g in generators],
    }
    save(state, path)


def load_checkpoint(path: str | os.PathLike, model, optimizer=None, *, scheduler=None, generators=()) -> dict:
    """Restore model, optimizer, scheduler and random states in place; returns the checkpoint dict."""
    state = load(path)
    model.load_state_dict(state["model"])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    ds_random.set_rng_state(state["rng"])
    saved = state["generators"]
    if len(saved) != len(generators):
        raise ValueError(f"load_checkpoint: {path} holds {len(saved)} generator states, {len(generators)} were given")
    for generator, generator_state in zip(generators, saved):
        generator.set_state(generator_state)
    return state
