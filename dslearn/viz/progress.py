"""Progress bars that suit where they run: a widget in a notebook, text in a terminal, silent when headless.

``progress`` is ``tqdm.auto.tqdm`` with one difference: under nbgrader or the course runner
(``is_headless()``) it is disabled, so graded and executed notebooks do not fill up with bar
widgets that nobody can see.

May import: tqdm, dslearn.environment.

>>> total = 0
>>> for i in progress(range(4), desc="batches", disable=True):
...     total += i
>>> total
6
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm.auto import tqdm

from dslearn.environment import is_headless


def progress(iterable: Iterable | None = None, *, desc: str | None = None, total: int | None = None,
             leave: bool = False, unit: str = "it", disable: bool | None = None, **options) -> tqdm:
    """A ``tqdm.auto`` bar over ``iterable``; ``disable=None`` means: off when headless, on otherwise.

    Other keyword arguments go to tqdm (``position``, ``postfix``, ...).

    >>> list(progress(range(3), desc="epochs", disable=True))
    [0, 1, 2]
    """
    if disable is None:
        disable = is_headless()
    return tqdm(iterable, desc=desc, total=total, leave=leave, unit=unit, disable=disable, **options)
