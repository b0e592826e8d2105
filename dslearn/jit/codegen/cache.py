"""The compiled-kernel cache: each distinct kernel is compiled once, then reused, in and across processes.

A generated kernel is identified by its source text (which spells out the ops, dtypes,
layouts and static sizes, and nothing else: two layers of a model with the same shapes share
one kernel). The source is written to ``<cache>/k_<hash>.py`` and imported; Numba compiles it
eagerly (the signature is in the decorator) and, with ``cache=True``, stores the machine code
next to it, so a later process loads it in milliseconds. Within a process, a dict of
compiled kernels answers first.

The cache folder is ``$DSLEARN_JIT_CACHE``, or ``~/.cache/dslearn/jit``, or a temporary
folder when neither is writable. ``cache_statistics()`` reports hits, misses and the time
spent compiling.

May import: numpy, numba, dslearn.kernels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import tempfile
import time
from pathlib import Path

import numba

from dslearn.kernels.cpu import fused_math

_loaded: dict[str, object] = {}
_statistics = {"memory_hits": 0, "disk_hits": 0, "compiled": 0, "seconds": 0.0}
_HELPERS_VERSION = hashlib.sha1(inspect.getsource(fused_math).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """Where generated kernels and their compiled code are kept."""
    chosen = os.environ.get("DSLEARN_JIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dslearn", "jit")
    for candidate in (chosen, os.path.join(tempfile.gettempdir(), "dslearn-jit")):
        try:
            os.makedirs(candidate, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return Path(candidate)
        except OSError:
            continue
    raise RuntimeError("jit: no writable folder for the kernel cache; set DSLEARN_JIT_CACHE")


def kernel_key(source: str) -> str:
    """The cache key of a kernel: its source, the helper functions' version and Numba's version."""
    text = "\n".join([source, _HELPERS_VERSION, numba.__version__])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def load_kernel(source: str, name: str = "kernel") -> tuple[object, float, str]:
    """The compiled function ``name`` of a generated module: (function, seconds, 'memory'|'disk'|'compiled').

    >>> src = "from numba import njit\\n@njit('float64(float64)', cache=True)\\ndef kernel(x):\\n    return x + 1\\n"
    >>> kernel, seconds, how = load_kernel(src)
    >>> kernel(1.0), how in ("disk", "compiled", "memory")
    (2.0, True)
    """
    key = kernel_key(source)
    if key in _loaded:
        _statistics["memory_hits"] += 1
        return _loaded[key], 0.0, "memory"
    path = cache_dir() / f"k_{key}.py"
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(source)
        os.replace(partial, path)
    started = time.perf_counter()
    module_name = f"dslearn_jit_kernels.k_{key}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    seconds = time.perf_counter() - started
    function = getattr(module, name)
    stats = getattr(function, "stats", None)  # CUDA kernels compile at their first launch
    how = "disk" if stats is not None and stats.cache_hits else "compiled"
    _statistics["disk_hits" if how == "disk" else "compiled"] += 1
    _statistics["seconds"] += seconds
    _loaded[key] = function
    return function, seconds, how


def cache_statistics() -> dict:
    """Kernels found in memory, loaded from disk, compiled, and the seconds spent loading/compiling.

    >>> sorted(cache_statistics())
    ['compiled', 'disk_hits', 'memory_hits', 'seconds']
    """
    return dict(_statistics)
