"""The course runner's report: one table of labs (status, duration, peak memory, test cells) as Markdown and HTML.

May import: the standard library, dslearn.course.runner.

>>> from dslearn.course.runner import LabRun
>>> print(markdown_report([LabRun("00-welcome", "Welcome", "passed", 4.21, 301.5, 4, 0, 0)], {"mode": "fast"}))
# Course run
<BLANKLINE>
- mode: fast
- result: 1 of 1 labs passed
<BLANKLINE>
| lab | title | status | duration (s) | peak memory (MiB) | tests passed | failed | not run | error |
|---|---|---|---:|---:|---:|---:|---:|---|
| 00-welcome | Welcome | passed | 4.2 | 302 | 4 | 0 | 0 |  |
<BLANKLINE>
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from dslearn.course.runner import LabRun

COLUMNS = ("lab", "title", "status", "duration (s)", "peak memory (MiB)", "tests passed", "failed", "not run", "error")
NUMERIC = {"duration (s)", "peak memory (MiB)", "tests passed", "failed", "not run"}


def _row(run: LabRun) -> list[str]:
    return [run.lab_id, run.title, run.status, f"{run.seconds:.1f}", f"{run.peak_memory_mb:.0f}", str(run.tests_passed),
            str(run.tests_failed), str(run.tests_not_run), run.error]


def _summary(runs: Sequence[LabRun]) -> str:
    return f"{sum(run.ok for run in runs)} of {len(runs)} labs passed"


def markdown_report(runs: Sequence[LabRun], facts: Mapping[str, str]) -> str:
    """The report as Markdown: the facts of the run (mode, machine, budget...) as a list, then the table."""
    lines = ["# Course run", ""]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    lines += [f"- result: {_summary(runs)}", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---:" if column in NUMERIC else "---" for column in COLUMNS) + "|")
    for run in runs:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in _row(run)) + " |")
    return "\n".join(lines) + "\n"


def html_report(runs: Sequence[LabRun], facts: Mapping[str, str]) -> str:
    """The report as a standalone HTML page; a failed lab's row is highlighted and links its executed notebook."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    rows = []
    for run in runs:
        cells = []
        for column, value in zip(COLUMNS, _row(run)):
            text = html.escape(value)
            if column == "lab" and run.notebook is not None:
                text = f'<a href="notebooks/{html.escape(run.notebook.name)}">{text}</a>'
            cells.append(f'<td class="{"num" if column in NUMERIC else ""}">{text}</td>')
        rows.append(f'<tr class="{"ok" if run.ok else "bad"}">{"".join(cells)}</tr>')
    facts_html = "".join(f"<li>{html.escape(name)}: {html.escape(str(value))}</li>" for name, value in facts.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Course run</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; }}
td.num {{ text-align: right; }} tr.bad {{ background: #fde2e2; }} tr.ok td:nth-child(3) {{ color: #17692b; }}
</style></head><body>
<h1>Course run</h1>
<ul>{facts_html}<li>result: {html.escape(_summary(runs))}</li></ul>
<table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""


def write_report(runs: Sequence[LabRun], facts: Mapping[str, str], report_dir: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``report_dir``; returns their paths."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    markdown_path, html_path = report_dir / "report.md", report_dir / "report.html"
    markdown_path.write_text(markdown_report(runs, facts), encoding="utf-8")
    html_path.write_text(html_report(runs, facts), encoding="utf-8")
    return markdown_path, html_path
