"""`portable conformance`: the shipped contract, parity and ONNX's node tests on one backend.

The contract is `portable.testing.AdapterContract` itself, run by pytest on a
generated three-line subclass, so a vendor's CI and this command check the same
thing. A run in which nothing ran (backend unavailable, everything skipped) is
"not run", never "passed".
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portable.errors import condense_message

PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
PARITY_CLAUSE = "test_outputs_match_golden"

_MODULE = """from portable.testing import AdapterContract


class TestConformance(AdapterContract):
    backend = {backend!r}
    options = {options!r}
    presets = {presets!r}
"""


@dataclass(frozen=True)
class Clause:
    name: str
    outcome: str
    """``passed``, ``failed`` or ``skipped``."""
    message: str = ""


@dataclass
class ConformanceReport:
    backend: str
    options: Mapping[str, str]
    clauses: list[Clause] = field(default_factory=list)
    node_tests: dict[str, Any] | None = None
    node_tests_required: bool = False

    @property
    def verdict(self) -> str:
        """Failed on any failure; "not run" unless parity passed on at least one variant
        (the clauses that need no device pass even where the backend is unavailable)."""
        node_failed = bool(self.node_tests and self.node_tests["failed"])
        if any(c.outcome == FAILED for c in self.clauses) or (
            self.node_tests_required and node_failed
        ):
            return FAILED
        if not any(c.outcome == PASSED and c.name.startswith(PARITY_CLAUSE)
                   for c in self.clauses):
            return NOT_RUN
        return PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "options": dict(self.options),
            "verdict": self.verdict,
            "contract": [c.__dict__ for c in self.clauses],
            "onnx_node_tests": self.node_tests,
            "onnx_node_tests_required": self.node_tests_required,
        }


def failure_message(longrepr: str) -> str:
    """What a pytest failure says, in one line: its last block of ``E`` lines, condensed,
    so a runtime's multi-line message keeps its cause (not only ``Exception from ...:189:``)."""
    lines = [line for line in longrepr.splitlines() if line.strip()]
    block: list[str] = []
    for line in reversed(lines):
        if line.lstrip().startswith("E "):
            block.insert(0, line.lstrip()[1:].strip())
        elif block:
            break
    return condense_message("\n".join(block)) or (lines[-1] if lines else "failed")


class _Collector:
    """A pytest plugin keeping one outcome per test: the first failure or skip, else the call."""

    def __init__(self) -> None:
        self.clauses: dict[str, Clause] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        name = report.nodeid.split("::", 2)[-1]
        known = self.clauses.get(name)
        if known is not None and known.outcome != "passed":
            return
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            self.clauses[name] = Clause(name, "skipped", reason.removeprefix("Skipped: "))
        elif report.failed:
            self.clauses[name] = Clause(name, "failed", failure_message(report.longreprtext))
        elif report.when == "call":
            self.clauses[name] = Clause(name, "passed")


def run_contract(
    backend: str, options: Mapping[str, str], presets: Sequence[str]
) -> list[Clause]:
    """Run AdapterContract on `backend` under pytest, in this process, with output captured."""
    import pytest

    collector = _Collector()
    with tempfile.TemporaryDirectory(prefix="portable-conformance-") as folder:
        root = Path(folder)
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        # A unique module name: pytest may run inside a process that imported another
        # module of the same name (our own test suite does).
        module = root / f"test_portable_conformance_{uuid.uuid4().hex}.py"
        module.write_text(_MODULE.format(backend=backend, options=dict(options),
                                         presets=tuple(presets)), encoding="utf-8")
        args = [str(module), "-c", str(root / "pytest.ini"), "--rootdir", str(root), "-q",
                "-p", "no:cacheprovider", "--import-mode=importlib", "-W", "ignore"]
        with contextlib.redirect_stdout(io.StringIO()):
            code = pytest.main(args, plugins=[collector])
    if code == pytest.ExitCode.INTERRUPTED:  # pytest swallowed a Ctrl-C: pass it on
        raise KeyboardInterrupt
    return list(collector.clauses.values())


def run_node_tests_for_reference(
    backend: str, options: Mapping[str, str], model_path: Path
) -> dict[str, Any]:
    """ONNX's node tests for the op and element types the reference model uses."""
    import onnx

    from portable.onnx_backend import node_tests_for, run_node_tests

    names = node_tests_for(onnx.load(str(model_path)))
    summary = run_node_tests(backend, names, options)
    return {"selected": len(names), **summary.to_dict()}


def check(
    backend: str,
    options: Mapping[str, str],
    presets: Sequence[str],
    node_tests: str = "report",
) -> ConformanceReport:
    """`node_tests`: ``off``, ``report`` (counted, informational) or ``require`` (must pass)."""
    from portable.modelsource import resolve

    report = ConformanceReport(backend, options, run_contract(backend, options, presets),
                               node_tests_required=node_tests == "require")
    if node_tests != "off" and report.verdict != NOT_RUN:
        report.node_tests = run_node_tests_for_reference(
            backend, options, resolve(presets[0]).path)
    return report
