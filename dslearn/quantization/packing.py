"""int4 packing: two signed 4-bit integers per byte, the storage of 2- to 4-bit weights.

Layout (ONNX's int4 order), along the last axis: element ``2i`` is the **low** nibble of byte
``i`` and element ``2i + 1`` its **high** nibble; each nibble is the 4-bit two's complement of
its value (-8..7: ``-1`` is ``0xF``, ``-8`` is ``0x8``). A row of odd length ends with a zero
high nibble, so a row of ``k`` values takes ``ceil(k / 2)`` bytes and rows stay byte-aligned
(a kernel can unpack any row on its own). ``[1, -2, 3]`` packs to ``[0xE1, 0x03]``.

May import: numpy, dslearn.tensor, dslearn.creation, dslearn.ops.arguments, dslearn.kernels.

>>> import dslearn as ds
>>> packed = pack_int4(ds.tensor([[1, -2, 3]], dtype=ds.int8))
>>> [hex(b) for b in packed.tolist()[0]], unpack_int4(packed, 3)
(['0xe1', '0x3'], tensor([[ 1, -2,  3]], dtype=dslearn.int8))
"""

from __future__ import annotations

import numpy as np

from dslearn.creation import tensor
from dslearn.kernels.cpu import quantized as kernels
from dslearn.ops.arguments import check_integer, describe, to_tensor
from dslearn.tensor import Tensor


def pack_int4(values) -> Tensor:
    """Integers in [-8, 7] (any integer dtype, at least 1-d) packed two per byte along the last axis: uint8.

    >>> import dslearn as ds
    >>> pack_int4(ds.tensor([-1, 2]))
    tensor([47], dtype=dslearn.uint8)
    """
    values = to_tensor(values, "pack_int4")
    check_integer("pack_int4", "values", values)
    if values.ndim == 0:
        raise ValueError(f"pack_int4: expected at least one dimension, got {describe(values)}")
    array = values.numpy()
    if array.size and (array.min() < -8 or array.max() > 7):
        raise ValueError(f"pack_int4: values must lie in [-8, 7], got [{array.min()}, {array.max()}]")
    return tensor(kernels.pack_int4(array.astype(np.int8)))


def unpack_int4(packed, length: int) -> Tensor:
    """The first ``length`` signed nibbles of each row of a uint8 tensor from ``pack_int4``: int8.

    >>> import dslearn as ds
    >>> unpack_int4(ds.tensor([47], dtype=ds.uint8), 2)
    tensor([-1,  2], dtype=dslearn.int8)
    """
    packed = to_tensor(packed, "unpack_int4")
    if packed.dtype.name != "uint8" or packed.ndim == 0:
        raise TypeError(f"unpack_int4: expected a uint8 tensor with at least one dimension, got {describe(packed)}")
    row_bytes = packed.shape[-1]
    if length not in ({0} if row_bytes == 0 else {2 * row_bytes - 1, 2 * row_bytes}):
        raise ValueError(f"unpack_int4: {row_bytes} bytes per row hold {2 * row_bytes - 1} or {2 * row_bytes} "
                         f"values, not {length}")
    return tensor(kernels.unpack_int4(packed.numpy(), length))
