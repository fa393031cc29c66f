"""Reports of result files: self-contained HTML or Markdown, with matplotlib plots.

Plots are drawn on `matplotlib.figure.Figure` objects (no pyplot global state, no
display needed). HTML embeds them as base64 PNGs, so the page is one file; Markdown
links PNG files written beside it. Everything is rendered in memory before any file
is written.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portable.escape import markdown
from portable.results import shape_label, write_text_atomic

COLUMNS = ("model", "backend", "device", "scenario", "batch×seq", "p50 ms", "p50 95% CI",
           "p99 ms", "samples/s", "tokens/s", "roofline", "parity", "placement", "peak RSS",
           "status")


@dataclass(frozen=True)
class Plot:
    name: str
    title: str
    png: bytes


def _ok_cells(documents: Sequence[dict[str, Any]]):
    for document in documents:
        for cell in document["results"]:
            if cell["status"] == "ok":
                yield document, cell


def _figure(width: float = 7.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _finish(fig: Any, ax: Any, name: str, caption: str, title: str, xlabel: str,
            ylabel: str, legend: bool = True) -> Plot:
    """Label the axes and render the figure as a PNG plot."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return Plot(name, caption, buffer.getvalue())


def _label(document: dict[str, Any], cell: dict[str, Any], many_models: bool) -> str:
    label = f"{cell['backend']}\nb={cell['batch']}"
    return f"{document['model']['name']}\n{label}" if many_models else label


def latency_plot(documents: Sequence[dict[str, Any]]) -> Plot | None:
    cells = list(_ok_cells(documents))
    if not cells:
        return None
    many_models = len({d["model"]["name"] for d in documents}) > 1
    fig, ax = _figure(max(5.0, 1.1 * len(cells) + 2))
    data = [np.asarray(c["raw_latency_ns"], dtype=np.float64) / 1e6 for _, c in cells]
    ax.violinplot(data, showmedians=True)
    ax.set_xticks(range(1, len(cells) + 1), [_label(d, c, many_models) for d, c in cells],
                  fontsize=8)
    if max(np.max(x) for x in data) > 20 * min(np.min(x) for x in data):
        ax.set_yscale("log")
    return _finish(fig, ax, "latency", "Latency distribution per backend",
                   "Latency distribution per backend (median marked)", "", "latency (ms)",
                   legend=False)


def throughput_plot(documents: Sequence[dict[str, Any]]) -> Plot | None:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for document, cell in _ok_cells(documents):
        series[f"{cell['backend']} · {document['model']['name']}"].append(
            (cell["batch"], cell["throughput"]["samples_per_s"]))
    if not any(len({b for b, _ in points}) > 1 for points in series.values()):
        return None  # no sweep: one point per backend says nothing about batch
    fig, ax = _figure()
    for name, points in sorted(series.items()):
        batches, rates = zip(*sorted(points), strict=True)
        ax.plot(batches, rates, marker="o", label=name)
    ax.set_xscale("log", base=2)
    batches = sorted({b for points in series.values() for b, _ in points})
    ax.set_xticks(batches, [str(b) for b in batches])
    return _finish(fig, ax, "throughput", "Throughput vs batch", "Throughput vs batch",
                   "batch size", "samples / s")


def moe_scaling_plot(documents: Sequence[dict[str, Any]]) -> Plot | None:
    """Tokens/s against total parameters across runs of reference MoE configs."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for _document, cell in _ok_cells(documents):
        if "moe" in cell and cell["throughput"]["tokens_per_s"] is not None:
            total = cell["moe"]["total_params"]
            key = f"{cell['backend']} b={cell['batch']}"
            series[key][total] = max(series[key].get(total, 0.0),
                                     cell["throughput"]["tokens_per_s"])
    if not any(len(points) > 1 for points in series.values()):
        return None
    fig, ax = _figure()
    for name, points in sorted(series.items()):
        totals = sorted(points)
        ax.plot([t / 1e6 for t in totals], [points[t] for t in totals], marker="o", label=name)
    return _finish(fig, ax, "moe_scaling", "MoE scaling", "MoE scaling: throughput vs model size",
                   "total parameters (millions)", "tokens / s")


def expert_load_plot(documents: Sequence[dict[str, Any]]) -> Plot | None:
    """Tokens routed to each expert (summed over MoE layers), one bar group per backend."""
    loads = {}
    for document, cell in _ok_cells(documents):
        load = (cell.get("moe") or {}).get("expert_load")
        if load:
            loads[f"{cell['backend']} · {document['model']['name']} b={cell['batch']}"] = (
                np.asarray(load).sum(axis=0))
    if not loads:
        return None
    fig, ax = _figure()
    width = 0.8 / len(loads)
    experts = max(load.size for load in loads.values())
    for i, (name, load) in enumerate(sorted(loads.items())):
        ax.bar(np.arange(load.size) + i * width, load, width=width, label=name)
    ax.set_xticks(np.arange(experts) + 0.4 - width / 2, [str(e) for e in range(experts)])
    return _finish(fig, ax, "expert_load", "MoE expert load", "MoE expert load", "expert",
                   "tokens routed")


def parity_plot(documents: Sequence[dict[str, Any]]) -> Plot | None:
    """Max abs error against the golden outputs per backend, beside the tolerance."""
    bars = {}
    for document, cell in _ok_cells(documents):
        parity = cell.get("parity")
        if parity and parity["max_abs_error"] is not None:  # null: not finite
            tolerance = max(o["tolerance"] for o in parity["outputs"].values())
            name = f"{cell['backend']}\n{document['model']['name']} b={cell['batch']}"
            bars[name] = (max(parity["max_abs_error"], 1e-12), tolerance, parity["passed"])
    if not bars:
        return None
    fig, ax = _figure(max(5.0, 1.1 * len(bars) + 2))
    names = list(bars)
    errors = [bars[n][0] for n in names]
    ax.bar(range(len(names)), errors,
           color=["tab:green" if bars[n][2] else "tab:red" for n in names])
    ax.scatter(range(len(names)), [bars[n][1] for n in names], marker="_", s=600,
               color="black", label="tolerance", zorder=3)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_yscale("log")
    return _finish(fig, ax, "parity", "Parity per backend", "Parity with the PyTorch reference",
                   "", "max abs error (0 drawn at 1e-12)")


def plots(documents: Sequence[dict[str, Any]]) -> list[Plot]:
    makers = (latency_plot, throughput_plot, moe_scaling_plot, expert_load_plot, parity_plot)
    return [plot for plot in (make(documents) for make in makers) if plot is not None]


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _row(document: dict[str, Any], cell: dict[str, Any]) -> list[str]:
    base = [document["model"]["name"], cell["backend"],
            (cell.get("device") or {}).get("device", "-"), cell["scenario"],
            shape_label(cell)]
    if cell["status"] != "ok":
        return [*base, *["-"] * 9, f"{cell['status']}: {(cell.get('error') or {}).get('message')}"]
    lat, thr = cell["latency"], cell["throughput"]
    ci = lat.get("median_ci")
    parity = cell.get("parity")
    placement = cell.get("placement") or {}
    nodes = ", ".join(f"{k}: {v}" for k, v in placement.get("nodes_by_device", {}).items())
    if placement.get("fallback"):
        nodes += " (fallback: " + ", ".join(placement["fallback_op_types"]) + ")"
    rss = cell.get("memory", {}).get("peak_rss_bytes")
    parity_text = "n/a"
    if parity:
        parity_text = ("pass" if parity["passed"] else "FAIL") + (
            f" ({_fmt(parity['max_abs_error'], '.1e')})")
    roof = cell.get("roofline") or {}
    roof_text = (f"{roof['fraction']:.0%} ({roof['bound']}-bound)"
                 if roof.get("fraction") is not None else "-")
    status = "ok" if cell["rules"]["met"] else f"ok, rules not met: {cell['rules']['reason']}"
    if cell.get("warnings"):
        status += "; " + "; ".join(cell["warnings"])
    return [*base, f"{lat['p50']:.3f}",
            f"{ci['low']:.3f}–{ci['high']:.3f}" if ci else "-",
            f"{lat['p99']:.3f}", f"{thr['samples_per_s']:.1f}", _fmt(thr["tokens_per_s"], ".0f"),
            roof_text, parity_text, nodes or "-", _fmt(rss and rss / 2**20, ".0f") + " MiB",
            status]


def rows(documents: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [_row(d, c) for d in documents for c in d["results"]]


def _environments(documents: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for d in documents:
        env = d["environment"]
        lines.append(f"{d['created_at']} · {d['model']['name']} · {env['cpu']} "
                     f"({env['cores']} cores) · {env['os']} · Python {env['python']} · "
                     f"portable {env['portable']}")
    return lines


_CSS = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f0f0f0}figure{margin:1.5rem 0}img{max-width:100%}"""


def render_html(documents: Sequence[dict[str, Any]], figures: Sequence[Plot]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>"
                   for row in rows(documents))
    images = "".join(
        f'<figure id="plot-{p.name}"><img alt="{esc(p.title)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.png).decode("ascii")}"><figcaption>{esc(p.title)}</figcaption>'
        "</figure>" for p in figures)
    envs = "".join(f"<li>{esc(line)}</li>" for line in _environments(documents))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>portable report</title><style>{_CSS}</style></head><body>"
            f"<h1>portable report</h1><h2>Results</h2><table><tr>{head}</tr>{body}</table>"
            f"<h2>Plots</h2>{images}<h2>Runs</h2><ul>{envs}</ul></body></html>\n")


def render_markdown(documents: Sequence[dict[str, Any]], figures: Sequence[Plot],
                    image_dir: str) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(markdown(c) for c in cells) + " |"

    parts = ["# portable report", "", "## Results", "", line(COLUMNS),
             line(["---"] * len(COLUMNS)), *(line(r) for r in rows(documents)), "", "## Plots", ""]
    parts += [f"![{p.title}]({image_dir}/{p.name}.png)\n" for p in figures]
    parts += ["## Runs", "", *(f"- {markdown(e)}" for e in _environments(documents)), ""]
    return "\n".join(parts)


def write_report(documents: Sequence[dict[str, Any]], output: Path) -> list[Path]:
    """Render and write the report (.html or .md); returns the files written."""
    figures = plots(documents)
    if output.suffix == ".html":
        return [write_text_atomic(output, render_html(documents, figures))]
    image_dir = output.parent / f"{output.stem}_files"
    text = render_markdown(documents, figures, image_dir.name)
    image_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in figures:
        path = image_dir / f"{plot.name}.png"
        path.write_bytes(plot.png)
        written.append(path)
    return [write_text_atomic(output, text), *written]
