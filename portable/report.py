"""Reports of result files: self-contained HTML or Markdown, with matplotlib plots.

What the report says lives in `portable.report_tables` (tables of plain text) and
`portable.report_plots` (PNG plots); this module renders them, escaping every string
from a result file for the page it goes to. HTML embeds the plots as base64 PNGs, so
the page is one file; Markdown links PNG files written beside it. Everything is
rendered in memory before any file is written.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portable.escape import markdown
from portable.report_plots import Plot, plots
from portable.report_tables import Run, Table, not_run, runs_of, tables
from portable.results import write_text_atomic

NOT_RUN_TITLE = "Not run here"

_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:.85rem;margin-bottom:.5rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top}th{background:#f0f0f0}
.note{color:#555;font-size:.85rem}figure{margin:1.5rem 0}img{max-width:100%}"""


def _html_table(table: Table) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                   for row in table.rows)
    note = f'<p class="note">{esc(table.note)}</p>' if table.note else ""
    return f"<h2>{esc(table.title)}</h2><table><tr>{head}</tr>{body}</table>{note}"


def render_html(runs: Sequence[Run], figures: Sequence[Plot]) -> str:
    esc = html.escape
    parts = [_html_table(t) for t in tables(runs)]
    missing = not_run(runs)
    if missing:
        parts.append(f"<h2>{NOT_RUN_TITLE}</h2><ul>"
                     + "".join(f"<li>{esc(line)}</li>" for line in missing) + "</ul>")
    if figures:
        parts.append("<h2>Plots</h2>" + "".join(
            f'<figure id="plot-{esc(p.name)}"><img alt="{esc(p.title)}" '
            f'src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
            f"<figcaption>{esc(p.title)}</figcaption></figure>" for p in figures))
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>portable report</title><style>{_CSS}</style></head><body>"
            f"<h1>portable report</h1>{''.join(parts)}</body></html>\n")


def _markdown_table(table: Table) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(markdown(c) for c in cells) + " |"

    lines = [f"## {table.title}", "", line(table.columns), line(["---"] * len(table.columns)),
             *(line(r) for r in table.rows), ""]
    return lines + ([f"_{markdown(table.note)}_", ""] if table.note else [])


def render_markdown(runs: Sequence[Run], figures: Sequence[Plot], image_dir: str) -> str:
    parts = ["# portable report", ""]
    for table in tables(runs):
        parts += _markdown_table(table)
    missing = not_run(runs)
    if missing:
        parts += [f"## {NOT_RUN_TITLE}", "", *(f"- {markdown(line)}" for line in missing), ""]
    if figures:
        parts += ["## Plots", ""]
        parts += [f"![{markdown(p.title)}]({image_dir}/{p.name}.png)\n" for p in figures]
    return "\n".join(parts)


def write_report(documents: Sequence[dict[str, Any]], output: Path,
                 files: Sequence[str] | None = None) -> list[Path]:
    """Render and write the report (.html or .md); returns the files written. `files`
    names the result files the documents came from (the runs table shows them)."""
    runs = runs_of(documents, files)
    figures = plots(runs)
    if output.suffix == ".html":
        return [write_text_atomic(output, render_html(runs, figures))]
    image_dir = output.parent / f"{output.stem}_files"
    text = render_markdown(runs, figures, image_dir.name)
    image_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in figures:
        path = image_dir / f"{plot.name}.png"
        path.write_bytes(plot.png)
        written.append(path)
    return [write_text_atomic(output, text), *written]
