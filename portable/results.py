"""Result files: one JSON document per run, schema-versioned, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from portable import environment
from portable.errors import OutputError, ResultFileError
from portable.jsonio import dumps_finite, read_json
from portable.resultshape import shape_error

SCHEMA_VERSION = 1
KIND = "portable.bench"


def build_document(
    model: dict[str, Any], settings: dict[str, Any], cells: Sequence[dict[str, Any]],
    packages: Sequence[str] = (),
) -> dict[str, Any]:
    """A result document; `packages` are the distributions the run's adapters declare."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": KIND,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment.capture(packages),
        "model": model,
        "settings": settings,
        "results": list(cells),
    }


DEFAULT_FOLDER = Path("results")
_NAME_MAX = 255
_TMP_EXTRA = len(".") + len(".") + 8 + len(".tmp")
"""What `write_text_atomic`'s temporary name adds to the final one."""


def default_path(directory: Path, document: dict[str, Any]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backends = "+".join(sorted({c["backend"] for c in document["results"]})) or "none"
    name = f"{stamp}-{document['model']['name']}-{backends}"
    budget = _NAME_MAX - _TMP_EXTRA - len(".json")
    return directory / f"{name.encode()[:budget].decode(errors='ignore')}.json"


def check_output(output: Path | None) -> None:
    """Refuse, before anything is measured, an output the result could not be written to.

    `output` is a ``.json`` file, a folder, or None (``results/``).
    """
    if output is not None and output.suffix not in ("", ".json") and not output.is_dir():
        raise OutputError(f"--output {output}: a result file must end in .json "
                          "(or give a folder); export CSV with `portable export-results`")
    is_file = output is not None and output.suffix == ".json"
    folder = (output.parent if is_file else output) or DEFAULT_FOLDER
    if is_file:
        if output.is_dir():
            raise OutputError(f"--output {output}: is a directory; give a file name or "
                              "drop the .json suffix to write into it")
        if len(output.name.encode()) + _TMP_EXTRA > _NAME_MAX:
            raise OutputError(f"--output: the file name is too long ({len(output.name)} "
                              f"characters; at most {_NAME_MAX - _TMP_EXTRA})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write results to {folder}: not a writable folder")


def output_path(output: Path | None, document: dict[str, Any]) -> Path:
    if output is not None and output.suffix == ".json":
        return output
    return default_path(output or DEFAULT_FOLDER, document)


def save(output: Path | None, document: dict[str, Any]) -> tuple[Path, str | None]:
    """Write the document where asked; if that fails, to a fallback file, never discarding it.

    Returns the path written and, when the fallback was used, why the asked-for path failed.
    """
    path = output_path(output, document)
    try:
        return write_atomic(path, document), None
    except OSError as exc:
        problem = f"cannot write {path}: {exc.strerror or exc}"
    for folder in (DEFAULT_FOLDER, Path(tempfile.gettempdir())):
        with contextlib.suppress(OSError):
            return write_atomic(default_path(folder, document), document), problem
    raise OutputError(f"{problem}; no fallback folder was writable either")


def write_atomic(path: Path, document: dict[str, Any]) -> Path:
    """Write `document` as JSON to `path`: readers see the old file or the whole new one."""
    # serialise first: a document that cannot be written leaves no trace
    return write_text_atomic(path, dumps_finite(document) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: Path) -> dict[str, Any]:
    """Read and check a result file: a readable JSON object of this schema version."""
    document = read_json(path)
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise ResultFileError(f"{path}: not a portable result file")
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultFileError(
            f"{path}: schema version {version!r}; this portable reads version {SCHEMA_VERSION}"
        )
    problem = schema_error(document) or shape_error(document)
    if problem:
        raise ResultFileError(f"{path}: does not match the result schema: {problem}")
    return document


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of result documents (portable/schemas/result-v1.schema.json)."""
    text = resources.files("portable").joinpath(f"schemas/result-v{SCHEMA_VERSION}.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def schema_error(document: dict[str, Any]) -> str | None:
    """The first way `document` breaks the schema, as ``at a/b/c: what``; None when it fits."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "top level"
    return f"at {where}: {error.message[:200]}"


def shape_label(cell: dict[str, Any]) -> str:
    """``batch×seq``, or ``batch N`` for a model without a sequence dimension."""
    return f"{cell['batch']}×{cell['seq']}" if cell.get("seq") else f"batch {cell['batch']}"


def best_throughput(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backend, the ok cell with the most samples/s (the best point of a batch sweep)."""
    best: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if cell["status"] != "ok":
            continue
        current = best.get(cell["backend"])
        if current is None or cell["throughput"]["samples_per_s"] > current["samples_per_s"]:
            best[cell["backend"]] = {"backend": cell["backend"], "batch": cell["batch"],
                                     **cell["throughput"]}
    return list(best.values())


CSV_COLUMNS = (
    "created_at", "model", "backend", "scenario", "batch", "seq", "status",
    "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "stdev_ms", "cv",
    "median_ci_low_ms", "median_ci_high_ms", "samples_per_s", "tokens_per_s",
    "rules_met", "parity_passed", "max_abs_error", "peak_rss_bytes", "error",
)


def flat_row(document: dict[str, Any], cell: dict[str, Any]) -> dict[str, Any]:
    """One cell as a flat row of `CSV_COLUMNS` (blank where the cell has no such figure)."""
    latency = cell.get("latency") or {}
    ci = latency.get("median_ci") or {}
    parity = cell.get("parity") or {}
    row = {
        "created_at": document["created_at"],
        "model": document["model"]["name"],
        "backend": cell["backend"],
        "scenario": cell["scenario"],
        "batch": cell["batch"],
        "seq": cell["seq"],
        "status": cell["status"],
        **{f"{key}_ms": latency.get(key) for key in ("p50", "p90", "p95", "p99", "mean", "stdev")},
        "cv": latency.get("cv"),
        "median_ci_low_ms": ci.get("low"),
        "median_ci_high_ms": ci.get("high"),
        **(cell.get("throughput") or {}),
        "rules_met": (cell.get("rules") or {}).get("met"),
        "parity_passed": parity.get("passed"),
        "max_abs_error": parity.get("max_abs_error"),
        "peak_rss_bytes": (cell.get("memory") or {}).get("peak_rss_bytes"),
        "error": (cell.get("error") or {}).get("message"),
    }
    return {column: row.get(column) for column in CSV_COLUMNS}
