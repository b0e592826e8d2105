"""Random numbers: one seedable default generator, and ``Generator`` objects for private streams.

``ds.manual_seed(s)`` makes every random op (``rand``, ``randn``, dropout, initialisers,
DataLoader shuffling) repeatable. Generators wrap NumPy's PCG64.

May import: numpy, dslearn.tensor, dslearn.dtypes.

>>> import dslearn as ds
>>> _ = ds.manual_seed(0); a = ds.rand(3)
>>> _ = ds.manual_seed(0); b = ds.rand(3)
>>> bool((a == b).all())
True
"""

from __future__ import annotations

import numpy as np


class Generator:
    """A stream of random numbers with its own seed and state.

    >>> g = Generator().manual_seed(42)
    >>> g.initial_seed()
    42
    """

    def __init__(self, device="cpu") -> None:
        self.device = device
        self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))

    def manual_seed(self, seed: int) -> Generator:
        """Reset the stream to the one that ``seed`` names; returns self."""
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
        self._seed = int(seed)
        self.numpy = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        """The generator's state, to save and restore later."""
        return self.numpy.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.numpy.bit_generator.state = state


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (and return it)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the default generator from the operating system's entropy; returns the seed."""
    value = int(np.random.SeedSequence().entropy % 2**63)
    default_generator.manual_seed(value)
    return value


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)


def numpy_generator(generator: Generator | None) -> np.random.Generator:
    """The NumPy generator behind ``generator`` (or the default one)."""
    return (generator or default_generator).numpy


def uniform_like(x, low: float = 0.0, high: float = 1.0, generator: Generator | None = None):
    """A tensor like ``x`` of values drawn uniformly from ``[low, high)``."""
    from dslearn.tensor import Tensor

    values = numpy_generator(generator).uniform(low, high, size=x.shape)
    return Tensor._make(values.astype(x._data.dtype))


def normal_like(x, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None):
    """A tensor like ``x`` of values drawn from N(mean, std^2)."""
    from dslearn.tensor import Tensor

    values = numpy_generator(generator).normal(mean, std, size=x.shape)
    return Tensor._make(values.astype(x._data.dtype))
