"""Take the library's reference implementations away from the sandbox, on disk as well as in memory.

A lab that asks students to write ``mse_loss`` themselves lists ``dslearn.nn.functional.mse_loss`` in
its probe file's ``DISABLED``. Replacing the function in the running process is not enough: the
student's code could reload the module, read its source or load its cached bytecode. So the grader
writes, for each module that defines a disabled name, a copy of the module's source in which that
function's body (or that class's constructor) raises, and the sandbox sees that copy in place of the
original file (a read-only bind mount); the module's cached bytecode and Numba cache files are hidden.
Modules the lab blocks (``torch``) are hidden folder and all.

May import: the standard library.

>>> source = "def f(x):\\n    return x\\n\\ndef g(x):\\n    return f(x)\\n"
>>> print(stub_source(source, {"f": "lib.f"}), end="")
def f(x):
    raise RuntimeError('lib.f is disabled while this lab is graded: write it yourself')
<BLANKLINE>
def g(x):
    return f(x)
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import os
from pathlib import Path


def _refusal(name: str) -> ast.stmt:
    message = f"{name} is disabled while this lab is graded: write it yourself"
    return ast.parse(f"raise RuntimeError({message!r})").body[0]


def stub_source(source: str, names: dict[str, str]) -> str:
    """The module source with each top-level function in ``names`` (local name -> dotted name) made to raise."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            node.body = [_refusal(names[node.name])]
        elif isinstance(node, ast.ClassDef) and node.name in names:
            constructor = ast.parse("def __init__(self, *args, **kwargs):\n    pass").body[0]
            constructor.body = [_refusal(names[node.name])]
            node.body = [constructor]
    return ast.unparse(tree) + "\n"


def defining_file(dotted: str) -> tuple[str, str] | None:
    """The source file that defines a dotted name and the name's local name there, or None if not found.

    >>> path, name = defining_file("dslearn.nn.functional.mse_loss")
    >>> Path(path).name, name
    ('loss.py', 'mse_loss')
    """
    module_name, _, attribute = dotted.rpartition(".")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
        path = inspect.getsourcefile(value)
    except (ImportError, AttributeError, TypeError):
        return None
    local = getattr(value, "__qualname__", attribute)
    return (path, local) if path and "." not in local else None


def overlays(disabled: list[str] | tuple[str, ...], folder: Path) -> list[tuple[str, str]]:
    """Stubbed copies of the modules that define ``disabled`` names, written under ``folder``.

    Returns the (copy, original) pairs to bind over the originals. Raises ``LookupError`` for a name
    that cannot be found (a probe file's typo must not pass silently).
    """
    by_file: dict[str, dict[str, str]] = {}
    for dotted in disabled:
        found = defining_file(dotted)
        if found is None:
            raise LookupError(f"disabled reference {dotted!r} is not a top-level function or class of a module")
        by_file.setdefault(found[0], {})[found[1]] = dotted
    binds = []
    folder.mkdir(parents=True, exist_ok=True)
    for path, names in sorted(by_file.items()):
        text = stub_source(Path(path).read_text(encoding="utf-8"), names)
        copy = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}-{Path(path).name}"
        if not copy.is_file():
            temporary = copy.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(text, encoding="utf-8")
            os.chmod(temporary, 0o644)
            temporary.replace(copy)
        binds.append((str(copy), path))
    return binds


def compiled_caches(sources: list[str]) -> list[str]:
    """The bytecode and Numba cache files of these source files, as they are now (to hide from the sandbox).

    >>> compiled_caches(["/nonexistent/module.py"])
    []
    """
    found = []
    for source in sources:
        cache = Path(source).parent / "__pycache__"
        found += [str(p) for p in sorted(cache.glob(f"{Path(source).stem}.*"))] if cache.is_dir() else []
    return found


def module_folders(names: list[str] | tuple[str, ...]) -> list[str]:
    """Where the named top-level packages are installed (the folders to hide), without importing them.

    >>> module_folders(["no_such_module_here"])
    []
    """
    folders = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            folders += [str(Path(p).resolve()) for p in spec.submodule_search_locations]
        elif spec.origin and os.path.isfile(spec.origin):
            folders.append(str(Path(spec.origin).resolve()))
    return folders
