"""Array back ends: which array type holds a device's data, and moving data between them.

The CPU back end is NumPy itself.

May import: numpy, dslearn.device.
"""

from __future__ import annotations

import numpy as np

from dslearn.device import Device


def move(array, device: Device):
    """``array`` copied to ``device``."""
    if device.type == "cpu":
        return array if type(array) is np.ndarray else array.to_numpy()
    raise RuntimeError(
        f"to({device}): dslearn has no CUDA back end available in this process; tensors can live on 'cpu' only"
    )
