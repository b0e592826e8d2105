"""Where the code runs: a person at a notebook, or a headless run (nbgrader, papermill, CI).

nbgrader sets ``NBGRADER_EXECUTION`` while it autogrades and ``dslearn course run`` sets
``DSLEARN_HEADLESS``. Either one, set to anything non-empty, makes the run headless: widgets and
live figures have nobody to look at them, so ``dslearn.viz`` builds static figures instead and
keeps progress bars quiet. Labs test the same variables in their set-up cell.

May import: the standard library.

>>> import os
>>> os.environ["DSLEARN_HEADLESS"] = "1"
>>> is_headless()
True
>>> del os.environ["DSLEARN_HEADLESS"]
"""

from __future__ import annotations

import os

HEADLESS_VARIABLES = ("NBGRADER_EXECUTION", "DSLEARN_HEADLESS")


def is_headless() -> bool:
    """Whether nbgrader or the course runner is executing this code (no one watches the output).

    >>> isinstance(is_headless(), bool)
    True
    """
    return any(os.environ.get(name) for name in HEADLESS_VARIABLES)
