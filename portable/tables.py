"""Human-readable tables of results and backends (rich), for stdout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from portable.escape import markup as escape
from portable.registry import BackendStatus
from portable.results import shape_label


def _mib(value: int | None) -> str:
    return f"{value / 2**20:.0f} MiB" if value else "-"


def _error(value: float | None) -> str:
    return "inf" if value is None else f"{value:.1e}"


def _parity_cell(parity: dict[str, Any] | None, cross: dict[str, Any] | None = None) -> str:
    """Golden parity and, with several backends, parity against the first backend."""
    texts = []
    if parity and parity.get("precision"):  # below fp32: the routing-aware verdict decides
        texts.append(parity["precision"]["summary"])
    elif parity:
        texts.append(f"{_error(parity['max_abs_error'])} {'pass' if parity['passed'] else 'FAIL'}")
    if cross and cross["role"] == "reference":
        texts.append("cross-backend reference")
    elif cross:
        verdict = "pass" if cross["passed"] else "FAIL"
        if cross.get("precision"):
            verdict += f" ({cross['precision']['precision']} rules)"
        source = cross["reference"].removesuffix(" outputs")
        texts.append(f"{_error(cross['max_abs_error'])} {verdict} vs {source}")
    return "; ".join(texts) or "n/a (no reference)"


def _speedups(results: Sequence[dict[str, Any]]) -> dict[int, str]:
    """Per result index: p50 of the first ok backend at the same batch over this one's p50."""
    reference: dict[int, float] = {}
    for cell in results:
        if cell["status"] == "ok" and cell["batch"] not in reference:
            reference[cell["batch"]] = cell["latency"]["p50"]
    return {i: f"{reference[c['batch']] / c['latency']['p50']:.2f}×"
            for i, c in enumerate(results)
            if c["status"] == "ok" and c["latency"].get("p50") and c["batch"] in reference}


def bench_table(document: dict[str, Any]) -> Table:
    model = escape(document["model"]["name"])
    table = Table(title=f"portable bench · {model}", title_justify="left",
                  caption="samples/s = batch / mean latency; speedup = the first backend's p50 "
                          "/ this p50, at the same batch", caption_justify="left")
    for header in ("backend", "device", "model", "batch×seq", "p50 ms", "p90 ms", "p99 ms",
                   "speedup", "samples/s", "tokens/s", "parity (max abs)", "peak RSS"):
        numeric = header.endswith(("ms", "/s", "RSS")) or header == "speedup"
        table.add_column(header, justify="right" if numeric else "left")
    speedups = _speedups(document["results"])
    for index, cell in enumerate(document["results"]):
        device = (cell.get("device") or {}).get("device", "-")
        shape = shape_label(cell)
        backend = escape(cell["backend"])
        device = escape(device)
        if cell["status"] != "ok":
            error = cell.get("error") or {}
            reason = f"{cell['status']}: {error.get('message', '')}"
            if error.get("hint") and error["hint"] not in reason:
                reason += f" ({error['hint']})"
            table.add_row(backend, device, model, shape, f"[red]{escape(reason)}[/red]",
                          *[""] * 7)
            continue
        lat, thr = cell["latency"], cell["throughput"]
        mark = "" if cell["rules"]["met"] else " *"
        table.add_row(
            backend, device, model, shape,
            f"{lat['p50']:.3f}{mark}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}",
            speedups.get(index, "-"),
            f"{thr['samples_per_s']:.1f}",
            "-" if thr["tokens_per_s"] is None else f"{thr['tokens_per_s']:.0f}",
            escape(_parity_cell(cell.get("parity"), cell.get("cross_parity"))),
            _mib(cell["memory"].get("peak_rss_bytes")),
        )
    return table


def backends_table(rows: Sequence[BackendStatus]) -> Table:
    table = Table(title="portable backends", title_justify="left")
    for header in ("name", "available", "device", "runtime", "reason / hint"):
        table.add_column(header)
    for row in rows:
        if row.available and row.device:
            runtime = ", ".join(f"{k} {v}" for k, v in row.device.runtime.items())
            table.add_row(escape(row.name), "[green]yes[/green]",
                          escape(f"{row.device.device} ({row.device.name})"), escape(runtime), "")
        else:
            why = row.reason + (f" — {row.hint}" if row.hint else "")
            table.add_row(escape(row.name), "[red]no[/red]", "-", "-", escape(why))
    return table


def print_table(table: Table) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # a file or pipe: don't wrap to 80 columns
    console.print(table)
