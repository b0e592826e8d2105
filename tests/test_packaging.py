"""Packaging: every package ships in the wheel, every module imports on its own, kernel doctests pass."""

import doctest
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import dslearn.kernels
import pytest
import tomllib

import dslearn

ROOT = Path(__file__).resolve().parents[1]


def _package_dirs() -> set[str]:
    found = set()
    for base, prefix in ((ROOT / "dslearn", "dslearn"), (ROOT / "kernels", "dslearn.kernels")):
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(base).parts
            found.add(".".join((prefix, *relative)))
    return found


def test_every_package_is_listed_for_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert _package_dirs() == listed


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


@pytest.mark.parametrize("module", ["dslearn.tensor", "dslearn.autograd.function", "dslearn.autograd.engine",
                                    "dslearn.ops.elementwise", "dslearn.nn", "dslearn.optim", "dslearn.data",
                                    "dslearn.debug", "dslearn.serialization", "dslearn.training"])
def test_each_entry_module_imports_first_in_a_fresh_interpreter(module):
    subprocess.run([sys.executable, "-c", f"import {module}; import dslearn as ds; ds.ones(2).sum()"], check=True,
                   cwd="/")


_CUDA_PREFIX = "dslearn.kernels.cuda."
_CPU_KERNEL_MODULES = [m for m in _modules(dslearn.kernels) if not m.startswith(_CUDA_PREFIX)]
_CUDA_KERNEL_MODULES = [m for m in _modules(dslearn.kernels) if m.startswith(_CUDA_PREFIX)]


@pytest.mark.parametrize("module", _CPU_KERNEL_MODULES)
def test_kernel_doctests(module):
    # Collected here rather than by --doctest-modules, which would import kernels/ as a top-level package
    # and make Numba's on-disk cache record the wrong module name.
    failed, _ = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failed == 0


def test_cuda_kernel_doctests_in_the_simulator():
    # The simulator must be chosen before numba is imported, so the CUDA doctests run in a child process.
    script = (
        "import doctest, importlib, sys\n"
        f"modules = {_CUDA_KERNEL_MODULES!r}\n"
        "failed = sum(doctest.testmod(importlib.import_module(m), optionflags=doctest.ELLIPSIS).failed"
        " for m in modules)\n"
        "sys.exit(1 if failed else 0)\n"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
