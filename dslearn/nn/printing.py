"""How modules print: ``Name(settings)`` on one line, or one indented line per setting and child.

May import: nothing (plain string handling).

>>> print(format_repr("Net", [], ["(fc): " + indent("Linear(\\n  x\\n)", 2)]))
Net(
  (fc): Linear(
    x
  )
)
"""

from __future__ import annotations


def indent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (which follows a ``(name): `` prefix).

    >>> indent("a\\nb", 2)
    'a\\n  b'
    """
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


def format_repr(name: str, extra_lines: list[str], child_lines: list[str]) -> str:
    """``Name(extra)`` when there is one setting line and no child, else one indented line each (as PyTorch).

    >>> format_repr("ReLU", [], []), format_repr("Linear", ["in_features=2"], [])
    ('ReLU()', 'Linear(in_features=2)')
    """
    lines = extra_lines + child_lines
    if not lines:
        return name + "()"
    if len(extra_lines) == 1 and not child_lines:
        return f"{name}({extra_lines[0]})"
    return name + "(\n  " + "\n  ".join(lines) + "\n)"
