"""What a report says about result files, as plain-text tables (rendering escapes them).

A report reads several files, often repeated runs of one model: every row names its
run (``#1``, ``#2`` in the order the files were given), and the runs table says what
each was (file, time, model, precision, scenario, settings, threads). Cells a backend
could not run (``unavailable``, ``unsupported``) are summarised once per backend, never
drawn as rows of figures; cells that failed while running keep a row with their status.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from portable.precision import PRECISIONS, split_variant_name
from portable.results import shape_label

NOT_RUN = ("unavailable", "unsupported")
"""Statuses of cells that never ran here: summarised per backend, no row."""
SPEEDUP_SCENARIOS = ("latency", "throughput", "generate")
"""Scenarios whose p50 is the device's pace; a server cell's latency includes queueing."""


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    note: str = ""


@dataclass(frozen=True)
class Run:
    """One result file: its tag in the report, its file name and its document."""

    tag: str
    file: str
    document: dict[str, Any]


def runs_of(documents: Sequence[dict[str, Any]], files: Sequence[str] | None = None) -> list[Run]:
    names = list(files) if files is not None else ["-"] * len(documents)
    return [Run(f"#{i}", name, doc)
            for i, (name, doc) in enumerate(zip(names, documents, strict=True), 1)]


def cells(runs: Sequence[Run]) -> Iterator[tuple[Run, dict[str, Any]]]:
    """(run, cell) of every cell that ran: ok, or failed while running."""
    for run in runs:
        for cell in run.document["results"]:
            if cell["status"] not in NOT_RUN:
                yield run, cell


def ok_cells(runs: Sequence[Run]) -> Iterator[tuple[Run, dict[str, Any]]]:
    for run, cell in cells(runs):
        if cell["status"] == "ok":
            yield run, cell


def precision_of(document: dict[str, Any], cell: dict[str, Any] | None = None) -> str:
    """The model's stored precision (``model.precision``, else a ``-int8`` name suffix), with
    the device's compute precision when the cell ran in another one."""
    model = document["model"]
    stored = model.get("precision") or split_variant_name(model["name"])[1] or "fp32"
    compute = (cell or {}).get("compute_precision")
    return f"{stored}, computed in {compute}" if compute and compute != stored else stored


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / 2**20:.1f} MiB"


def _settings(document: dict[str, Any]) -> str:
    s = document["settings"]
    parts = [f"batches {','.join(str(b) for b in s.get('batches') or [s['batch']])}",
             f"seq {s['seq']}", f"warm-up {s['warmup']}",
             f"≥{s['iterations']} runs, ≥{s['min_duration_s']:g} s (cap {s['max_duration_s']:g} s)",
             f"seed {s['seed']}"]
    scenario = s.get("scenario")
    if scenario == "generate":
        parts.append(f"prompt {s.get('prompt_len')}, generate {s.get('gen_len')}")
    elif scenario == "server":
        rate = s.get("rate")
        parts.append(f"rate {'auto' if rate is None else f'{rate:g}/s'}, "
                     f"p99 bound {s.get('p99_bound_ms')} ms"
                     + (", find peak" if s.get("find_peak") else ""))
    if s.get("strict"):
        parts.append("strict")
    return "; ".join(parts)


def _threads(document: dict[str, Any]) -> str:
    asked = document["settings"].get("threads")
    used = sorted({str(c["conditions"]["threads"]) for c in document["results"]
                   if (c.get("conditions") or {}).get("threads") is not None})
    text = "runtime default" if asked is None else str(asked)
    return text + (f" (used {', '.join(used)})" if used and used != [str(asked)] else "")


def runs_table(runs: Sequence[Run]) -> Table:
    rows = []
    for run in runs:
        d, env = run.document, run.document["environment"]
        model = d["model"]
        rows.append([run.tag, run.file, d["created_at"], model["name"], precision_of(d),
                     _mib(model.get("size_bytes")), d["settings"].get("scenario") or "-",
                     _settings(d), _threads(d),
                     f"{env['cpu']} ({env['cores']} cores), {env['os']}, Python "
                     f"{env['python']}, portable {env['portable']}"
                     + (" — interrupted" if d.get("interrupted") else "")])
    return Table("Runs", ("run", "file", "created", "model", "precision", "size on disk",
                          "scenario", "settings", "threads", "machine"), rows)


def _p50(cell: dict[str, Any]) -> float | None:
    return (cell.get("latency") or {}).get("p50")


def speedups(runs: Sequence[Run]) -> dict[int, tuple[str, float]]:
    """Per ok cell (by id): (reference backend, reference p50 / this p50). The reference is
    the first backend of the same file that ran ok in the same scenario at the same batch."""
    result: dict[int, tuple[str, float]] = {}
    for run in runs:
        reference: dict[tuple[str, int], dict[str, Any]] = {}
        for cell in run.document["results"]:
            if cell["status"] != "ok" or cell["scenario"] not in SPEEDUP_SCENARIOS:
                continue
            ref = reference.setdefault((cell["scenario"], cell["batch"]), cell)
            if _p50(ref) and _p50(cell):
                result[id(cell)] = (ref["backend"], _p50(ref) / _p50(cell))
    return result


def status_of(cell: dict[str, Any]) -> str:
    """A short status: the cell's own, or for an ok cell what qualifies it."""
    if cell["status"] != "ok":
        return cell["status"]
    flags = []
    if (cell.get("parity") or {}).get("passed") is False:
        flags.append("parity FAIL")
    token = ((cell.get("generate") or {}).get("token_parity") or {})
    if token.get("passed") is False:
        flags.append("tokens FAIL")
    if not cell["rules"]["met"]:
        flags.append("rules not met")
    if cell.get("warnings"):
        flags.append("warning")
    return "ok" + (f" ({', '.join(flags)})" if flags else "")


def _notes(cell: dict[str, Any]) -> str:
    if cell["status"] != "ok":
        return (cell.get("error") or {}).get("message") or ""
    notes = []
    if not cell["rules"]["met"] and cell["rules"].get("reason"):
        notes.append(f"rules not met: {cell['rules']['reason']}")
    notes += cell.get("warnings") or []
    server = cell.get("server")
    if server:
        notes.append(f"{server['verdict']} at {server['rate']:g}/s: p99 "
                     f"{_fmt(server.get('p99_ms'), '.2f')} ms (queueing included; bound "
                     f"{server['p99_bound_ms']:g} ms)"
                     + (f"; peak {server['peak_rate']:g}/s" if server.get("peak_rate") else ""))
    return "; ".join(notes)


def agreement(cell: dict[str, Any]) -> str:
    """Agreement with the reference: the precision verdict, golden parity, token match."""
    texts = []
    parity = cell.get("parity")
    if parity and parity.get("precision"):
        texts.append(parity["precision"]["summary"])
    elif parity:
        texts.append(f"{'pass' if parity['passed'] else 'FAIL'} "
                     f"(max abs {_fmt(parity['max_abs_error'], '.1e')})")
    token = (cell.get("generate") or {}).get("token_parity")
    if token:
        texts.append(token_text(token))
    cross = cell.get("cross_parity")
    if cross and cross.get("role") != "reference":
        texts.append(f"{'pass' if cross['passed'] else 'FAIL'} vs {cross['reference']}")
    return "; ".join(texts) or "-"


def token_text(token: dict[str, Any]) -> str:
    text = f"tokens {token['token_match']:.1%} match"
    if token["first_divergence"] is not None:
        text += f", first divergence at step {token['first_divergence']}"
        if token.get("reference_margin") is not None:
            text += f" (margin {token['reference_margin']:.2g})"
    return text


def _placement(cell: dict[str, Any]) -> str:
    placement = cell.get("placement") or {}
    nodes = ", ".join(f"{k}: {v}" for k, v in placement.get("nodes_by_device", {}).items())
    if placement.get("fallback"):
        nodes += " (fallback: " + ", ".join(placement["fallback_op_types"]) + ")"
    return nodes or "-"


def _speedup_text(found: tuple[str, float] | None) -> str:
    return "-" if found is None else f"{found[1]:.2f}× vs {found[0]}"


def summary_table(runs: Sequence[Run]) -> Table:
    """Per run, scenario and shape: each backend's p50 and speedup against the reference."""
    ups = speedups(runs)
    rows = []
    for run, cell in cells(runs):
        if cell["scenario"] not in SPEEDUP_SCENARIOS:
            continue
        found = ups.get(id(cell))
        rows.append([run.tag, run.document["model"]["name"], cell["scenario"], shape_label(cell),
                     cell["backend"], status_of(cell), _fmt(_p50(cell), ".3f"),
                     _speedup_text(found)])
    return Table("Summary", ("run", "model", "scenario", "batch×seq", "backend", "status",
                             "p50 ms", "speedup"), rows,
                 "speedup = p50 of the file's first backend that ran in the same scenario at "
                 "the same batch (the reference) / this p50; generate: per whole generation")


def details_table(runs: Sequence[Run]) -> Table:
    ups = speedups(runs)
    rows = []
    for run, cell in cells(runs):
        base = [run.tag, run.document["model"]["name"], cell["backend"],
                (cell.get("device") or {}).get("device", "-"), cell["scenario"],
                shape_label(cell), status_of(cell)]
        if cell["status"] != "ok":
            rows.append([*base, *["-"] * 10, _notes(cell)])
            continue
        lat, thr = cell["latency"], cell["throughput"]
        ci = lat.get("median_ci")
        roof = cell.get("roofline") or {}
        rows.append([*base, f"{lat['p50']:.3f}",
                     f"{ci['low']:.3f}–{ci['high']:.3f}" if ci else "-", f"{lat['p99']:.3f}",
                     _speedup_text(ups.get(id(cell))), f"{thr['samples_per_s']:.1f}",
                     _fmt(thr["tokens_per_s"], ".0f"),
                     f"{roof['fraction']:.0%} ({roof['bound']}-bound)"
                     if roof.get("fraction") is not None else "-",
                     agreement(cell), _placement(cell),
                     _mib((cell.get("memory") or {}).get("peak_rss_bytes")), _notes(cell)])
    return Table("Results", ("run", "model", "backend", "device", "scenario", "batch×seq",
                             "status", "p50 ms", "p50 95% CI", "p99 ms", "speedup", "samples/s",
                             "tokens/s", "roofline", "agreement", "placement", "peak RSS",
                             "notes"), rows,
                 "samples/s = batch / mean latency (server: the completed rate × batch)")


def not_run(runs: Sequence[Run]) -> list[str]:
    """One line per backend that could not run here: its status and why, with the runs."""
    found: dict[tuple[str, str, str], list[str]] = {}
    for run in runs:
        for cell in run.document["results"]:
            if cell["status"] in NOT_RUN:
                error = cell.get("error") or {}
                why = error.get("message") or ""
                if error.get("hint") and error["hint"] not in why:
                    why += f" ({error['hint']})"
                tags = found.setdefault((cell["backend"], cell["status"], why), [])
                if run.tag not in tags:
                    tags.append(run.tag)
    return [f"{backend}: {status}: {why} (run {', '.join(tags)})"
            for (backend, status, why), tags in found.items()]


def generate_table(runs: Sequence[Run]) -> Table | None:
    ups = speedups(runs)
    rows = []
    for run, cell in ok_cells(runs):
        gen = cell.get("generate")
        if not gen:
            continue
        token = gen.get("token_parity")
        rows.append([run.tag, run.document["model"]["name"], precision_of(run.document, cell),
                     cell["backend"], str(cell["batch"]), f"{gen['prompt_len']}+{gen['gen_len']}",
                     f"{gen['ttft_ms']['p50']:.3f}", f"{gen['tpot_ms']['p50']:.3f}",
                     f"{gen['output_tokens_per_s']:.1f}",
                     token_text(token) if token else "-", _speedup_text(ups.get(id(cell)))])
    if not rows:
        return None
    return Table("Generation", ("run", "model", "precision", "backend", "batch",
                                "prompt+generated", "TTFT p50 ms", "TPOT p50 ms",
                                "output tokens/s", "token match", "speedup"), rows,
                 "TTFT = prefill + first token; TPOT = per output token after the first; "
                 "output tokens/s over the whole batch")


def _order(precision: str) -> int:
    stored = precision.split(",")[0]
    return PRECISIONS.index(stored) if stored in PRECISIONS else len(PRECISIONS)


def precision_table(runs: Sequence[Run]) -> Table | None:
    """Precision as a dimension: each variant's size, pace and agreement, side by side."""
    entries = []
    for run, cell in ok_cells(runs):
        precision = precision_of(run.document, cell)
        gen = cell.get("generate")
        tokens = gen["output_tokens_per_s"] if gen else cell["throughput"]["tokens_per_s"]
        base_model = split_variant_name(run.document["model"]["name"])[0]
        entries.append(((base_model, cell["backend"], cell["scenario"], cell["batch"],
                         _order(precision), run.tag),
                        [base_model, precision, _mib(run.document["model"].get("size_bytes")),
                         cell["backend"], cell["scenario"], shape_label(cell), run.tag,
                         _fmt(_p50(cell), ".3f"),
                         _fmt(gen["tpot_ms"]["p50"], ".3f") if gen else "-",
                         _fmt(tokens, ".0f"), agreement(cell)]))
    if len({row[1] for _, row in entries}) < 2 and not any(
            "precision" in (c.get("parity") or {}) for _, c in ok_cells(runs)):
        return None  # one precision, no verdict: nothing to set side by side
    entries.sort(key=lambda entry: entry[0])
    return Table("Precision", ("model", "precision", "size on disk", "backend", "scenario",
                               "batch×seq", "run", "p50 ms", "TPOT p50 ms", "tokens/s",
                               "agreement"), [row for _, row in entries],
                 "tokens/s: output tokens/s in the generate scenario; agreement: the "
                 "routing-aware verdict below fp32, else parity with the PyTorch reference")


def tables(runs: Sequence[Run]) -> list[Table]:
    """Every table a report shows, in order; empty ones left out."""
    found = [runs_table(runs), summary_table(runs), generate_table(runs),
             precision_table(runs), details_table(runs)]
    return [t for t in found if t is not None and t.rows]
