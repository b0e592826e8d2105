"""Build ``course/index.ipynb``, the "start here" notebook, from the syllabus.

The index links every available lab, marks the others *coming*, lists objectives, hours and
prerequisites, and holds one code cell that shows the student's progress (``dslearn.course.progress``)
when run. It is generated, never edited by hand: ``dslearn course index`` writes it and
``dslearn course index --check`` fails when the committed file is stale. Cell ids are fixed, so the same
syllabus always gives the same file.

May import: the standard library, nbformat, dslearn.course.

>>> from dslearn.course.syllabus import load_syllabus
>>> notebook = build_index(load_syllabus())
>>> notebook.cells[0].source.splitlines()[0]
'# dslearn: deep learning from the tensor up'
"""

from __future__ import annotations

from pathlib import Path

from dslearn.course.syllabus import Lab, Level, Syllabus

INDEX_FILE = Path("course") / "index.ipynb"

PROGRESS_CODE = """from dslearn.course.progress import show_progress

show_progress()  # reads your notebooks in labs/; pass labs_dir="..." if you keep them elsewhere"""

HOW_PROGRESS_WORKS = """## How progress is computed

The table above is read from your lab notebooks **as last saved**, nothing else:

- *not in your folder*: the lab's notebook is not in `labs/<lab>/`;
- *not started*: none of its visible test cells has been run;
- *in progress*: some visible test cells ran, not all of them passed;
- *visible tests pass*: every visible test cell ran without an error.

Hidden tests run only when your lab is graded, so *visible tests pass* is not a grade. Save the notebook
after running its tests, then run the progress cell again."""

INSTRUCTORS = """## For instructors

`dslearn course validate` checks every lab, `dslearn course run --fast` executes them headlessly and writes
a report to `reports/course/`, and `dslearn grade ...` wraps nbgrader (release, collect, autograde,
feedback, export). See `grading/README.md`. This page is generated from `course/syllabus.yml` by
`dslearn course index`: edit the syllabus, not this notebook."""


def _lab_link(lab: Lab) -> str:
    number, _, _ = lab.id.partition("-")
    name = f"{number} · {lab.title}"
    return f"[{name}](../{lab.notebook.as_posix()})" if lab.available else name


def _lab_section(lab: Lab) -> str:
    status = "" if lab.available else " · **coming**"
    needs = ", ".join(lab.prerequisites) or "none"
    lines = [f"#### {_lab_link(lab)}", "", f"*about {lab.hours:g} hours · prerequisites: {needs}*{status}", ""]
    lines += [f"- {objective}" for objective in lab.objectives]
    return "\n".join(lines)


def _level_markdown(level: Level, syllabus: Syllabus) -> str:
    parts = [f"## {level.title} · about {syllabus.hours(level.id):g} hours", "", level.goal]
    for unit in level.units:
        parts += ["", f"### {unit.title}"]
        for lab in unit.labs:
            parts += ["", _lab_section(lab)]
    return "\n".join(parts)


def _intro_markdown(syllabus: Syllabus) -> str:
    rows = [f"| {level.title} | {sum(1 for unit in level.units for _ in unit.labs)} | "
            f"{sum(1 for unit in level.units for lab in unit.labs if lab.available)} | {syllabus.hours(level.id):g} |"
            for level in syllabus.levels]
    return "\n".join([
        f"# {syllabus.title}", "", syllabus.summary, "",
        "**Start here.** Work through the labs in order: each one lists what it needs. Click a lab's title to",
        "open it. Run the cell below at any time to see where you are.", "",
        "| level | labs | available now | hours |", "|---|---:|---:|---:|", *rows,
    ])


def build_index(syllabus: Syllabus):
    """The index notebook (an ``nbformat`` notebook node) for a syllabus."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell(_intro_markdown(syllabus), id="start-here"),
             new_code_cell(PROGRESS_CODE, id="progress")]
    cells += [new_markdown_cell(_level_markdown(level, syllabus), id=f"level-{level.id}")
              for level in syllabus.levels]
    cells += [new_markdown_cell(HOW_PROGRESS_WORKS, id="how-progress-works"),
              new_markdown_cell(INSTRUCTORS, id="for-instructors")]
    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(notebook)
    return notebook


def index_text(syllabus: Syllabus) -> str:
    """The index notebook as the exact text written to disk."""
    import nbformat

    return nbformat.writes(build_index(syllabus)) + "\n"


def write_index(syllabus: Syllabus, root: Path) -> Path:
    """Write ``<root>/course/index.ipynb``; returns its path."""
    path = Path(root) / INDEX_FILE
    path.write_text(index_text(syllabus), encoding="utf-8")
    return path


def index_is_current(syllabus: Syllabus, root: Path) -> bool:
    """Whether the committed index equals what the syllabus generates."""
    path = Path(root) / INDEX_FILE
    return path.is_file() and path.read_text(encoding="utf-8") == index_text(syllabus)
