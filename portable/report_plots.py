"""The plots of a report, drawn with matplotlib only where the results have data for them.

Plots are drawn on `matplotlib.figure.Figure` objects (no pyplot global state, no
display needed). Each scenario gets its own plots: a server run's latencies include
queueing at a chosen rate and a generation's are whole generations, so neither is
drawn on the axes of a latency sweep. Text from result files reaches matplotlib as
plain text (control characters shown, ``$`` not read as mathtext).
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from portable.escape import terminal
from portable.report_tables import Run, ok_cells

MAX_EXPERT_TICKS = 32
"""Beyond this many experts, label every n-th so the labels stay readable."""


@dataclass(frozen=True)
class Plot:
    name: str
    """A file-name-safe id (``latency-latency``, ``expert_load-1``)."""
    title: str
    png: bytes


def text(value: Any) -> str:
    """`value` as plain matplotlib text: control characters shown, no mathtext."""
    return terminal(value).replace("$", r"\$")


def _figure(width: float = 7.0, height: float = 3.6):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, 20.0), height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _finish(fig: Any, ax: Any, name: str, caption: str, xlabel: str, ylabel: str,
            legend: bool = True) -> Plot:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(text(caption))
    if legend:
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return Plot(name, caption, buffer.getvalue())


def _who(run: Run, cell: dict[str, Any], many_runs: bool, sep: str = " · ") -> str:
    """A series or tick label: backend, model, and the run tag when there are several."""
    parts = [cell["backend"], run.document["model"]["name"]]
    return text(sep.join([*parts, run.tag] if many_runs else parts))


def slug(value: str) -> str:
    """A file-name-safe form of a scenario name (plot names become file names)."""
    return re.sub(r"[^a-z0-9_]+", "_", value.lower())[:40] or "_"


def _scenarios(runs: Sequence[Run]) -> list[str]:
    return list(dict.fromkeys(c["scenario"] for _, c in ok_cells(runs)))


def latency_plot(runs: Sequence[Run], scenario: str) -> Plot | None:
    """Latency distribution of each cell of one scenario (violins, median marked)."""
    found = [(r, c) for r, c in ok_cells(runs) if c["scenario"] == scenario]
    if not found:
        return None
    many = len(runs) > 1
    fig, ax = _figure(max(5.0, 1.2 * len(found) + 2))
    data = [np.asarray(c["raw_latency_ns"], dtype=np.float64) / 1e6 for _, c in found]
    ax.violinplot(data, showmedians=True)
    ax.set_xticks(range(1, len(found) + 1),
                  [f"{_who(r, c, many, chr(10))}\nb={c['batch']}" for r, c in found], fontsize=8)
    if max(np.max(x) for x in data) > 20 * min(np.min(x) for x in data):
        ax.set_yscale("log")
    unit = {"generate": "per generation", "server": "queueing excluded"}.get(scenario, "")
    return _finish(fig, ax, f"latency-{slug(scenario)}",
                   f"{scenario} scenario: latency distribution (median marked)",
                   "", f"latency (ms{', ' + unit if unit else ''})", legend=False)


def throughput_plot(runs: Sequence[Run], scenario: str) -> Plot | None:
    """Samples/s against batch size for each backend's sweep in one scenario."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for run, cell in ok_cells(runs):
        if cell["scenario"] == scenario:
            series[_who(run, cell, len(runs) > 1)].append(
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
    return _finish(fig, ax, f"throughput-{slug(scenario)}",
                   f"{scenario} scenario: throughput vs batch", "batch size",
                   "samples / s (batch / mean latency)")


def server_plot(runs: Sequence[Run]) -> Plot | None:
    """Each rate a server peak search tried: its p99 (queueing included) against the bound."""
    series = {}
    bounds = set()
    for run, cell in ok_cells(runs):
        server = cell.get("server") or {}
        trials = [t for t in server.get("trials") or [] if t.get("p99_ms") is not None]
        if trials:
            series[f"{_who(run, cell, len(runs) > 1)} b={cell['batch']}"] = sorted(
                (t["rate"], t["p99_ms"], t["verdict"] == "VALID") for t in trials)
            bounds.add(server["p99_bound_ms"])
    if not series:
        return None
    fig, ax = _figure()
    for name, trials in sorted(series.items()):
        rates, p99s, valid = zip(*trials, strict=True)
        line = ax.plot(rates, p99s, marker="o", label=name)[0]
        ax.scatter([r for r, v in zip(rates, valid, strict=True) if not v],
                   [p for p, v in zip(p99s, valid, strict=True) if not v], marker="x", s=60,
                   color=line.get_color(), zorder=3)
    for bound in sorted(bounds):
        ax.axhline(bound, color="black", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    return _finish(fig, ax, "server-trials",
                   "server scenario: p99 per trial rate (x: INVALID; dashed: the bound)",
                   "target rate (requests / s)", "p99 latency, queueing included (ms)")


def generate_plot(runs: Sequence[Run]) -> Plot | None:
    """Output tokens/s against TPOT across batch sizes: the serving trade-off."""
    series: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for run, cell in ok_cells(runs):
        gen = cell.get("generate")
        if gen:
            series[_who(run, cell, len(runs) > 1)].append(
                (gen["tpot_ms"]["p50"], gen["output_tokens_per_s"], cell["batch"]))
    if not any(len({b for *_, b in points}) > 1 for points in series.values()):
        return None
    fig, ax = _figure()
    for name, points in sorted(series.items()):
        points.sort(key=lambda p: p[2])
        tpot, tokens, batches = zip(*points, strict=True)
        ax.plot(tpot, tokens, marker="o", label=name)
        for x, y, batch in points:
            ax.annotate(f"b={batch}", (x, y), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    return _finish(fig, ax, "generate-tradeoff",
                   "generate scenario: output tokens/s against time per output token",
                   "TPOT p50 (ms)", "output tokens / s")


def moe_scaling_plot(runs: Sequence[Run]) -> Plot | None:
    """Tokens/s against total parameters across runs of reference MoE configs."""
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for _run, cell in ok_cells(runs):
        if "moe" in cell and cell["throughput"]["tokens_per_s"] is not None:
            total = cell["moe"]["total_params"]
            key = text(f"{cell['backend']} {cell['scenario']} b={cell['batch']}")
            series[key][total] = max(series[key].get(total, 0.0),
                                     cell["throughput"]["tokens_per_s"])
    if not any(len(points) > 1 for points in series.values()):
        return None
    fig, ax = _figure()
    for name, points in sorted(series.items()):
        totals = sorted(points)
        ax.plot([t / 1e6 for t in totals], [points[t] for t in totals], marker="o", label=name)
    return _finish(fig, ax, "moe_scaling", "MoE scaling: throughput vs model size",
                   "total parameters (millions)", "tokens / s")


def expert_load_plots(runs: Sequence[Run]) -> list[Plot]:
    """Per model: tokens routed to each expert (summed over MoE layers), a bar per cell."""
    by_model: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for run, cell in ok_cells(runs):
        load = (cell.get("moe") or {}).get("expert_load")
        if load:
            label = f"{cell['backend']} {cell['scenario']} b={cell['batch']}"
            by_model[run.document["model"]["name"]][
                text(f"{label} {run.tag}" if len(runs) > 1 else label)] = (
                np.asarray(load).sum(axis=0))
    plots = []
    for index, (model, loads) in enumerate(by_model.items(), 1):
        experts = max(load.size for load in loads.values())
        fig, ax = _figure(max(7.0, 0.12 * experts * len(loads)), 4.0)
        width = 0.8 / len(loads)
        for i, (name, load) in enumerate(sorted(loads.items())):
            ax.bar(np.arange(load.size) + i * width, load, width=width, label=name)
        step = max(1, -(-experts // MAX_EXPERT_TICKS))
        ticks = np.arange(0, experts, step)
        ax.set_xticks(ticks + 0.4 - width / 2, [str(e) for e in ticks], fontsize=8)
        plots.append(_finish(fig, ax, f"expert_load-{index}", f"{model}: MoE expert load",
                             "expert", "tokens routed (all MoE layers)"))
    return plots


def parity_plot(runs: Sequence[Run]) -> Plot | None:
    """Max abs error against the golden outputs per cell, beside the tolerance."""
    bars = {}
    for run, cell in ok_cells(runs):
        parity = cell.get("parity")
        if parity and parity["max_abs_error"] is not None:  # null: not finite
            tolerance = max(o["tolerance"] for o in parity["outputs"].values())
            where = text(f"{cell['scenario']} b={cell['batch']}")
            name = f"{_who(run, cell, len(runs) > 1, chr(10))}\n{where}"
            bars[name] = (max(parity["max_abs_error"], 1e-12), tolerance, parity["passed"])
    if not bars:
        return None
    fig, ax = _figure(max(5.0, 1.2 * len(bars) + 2))
    names = list(bars)
    ax.bar(range(len(names)), [bars[n][0] for n in names],
           color=["tab:green" if bars[n][2] else "tab:red" for n in names])
    ax.scatter(range(len(names)), [bars[n][1] for n in names], marker="_", s=600,
               color="black", label="tolerance", zorder=3)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_yscale("log")
    return _finish(fig, ax, "parity", "Parity with the PyTorch reference", "",
                   "max abs error (0 drawn at 1e-12)")


def plots(runs: Sequence[Run]) -> list[Plot]:
    """Every plot the runs have data for, scenario by scenario, then the MoE ones."""
    found: list[Plot | None] = []
    for scenario in _scenarios(runs):
        found.append(latency_plot(runs, scenario))
        if scenario in ("latency", "throughput"):
            found.append(throughput_plot(runs, scenario))
    found += [server_plot(runs), generate_plot(runs), moe_scaling_plot(runs),
              *expert_load_plots(runs), parity_plot(runs)]
    unique: list[Plot] = []
    for plot in (p for p in found if p is not None):
        taken = {p.name for p in unique}
        name = plot.name if plot.name not in taken else f"{plot.name}-{len(unique)}"
        unique.append(Plot(name, plot.title, plot.png))
    return unique
