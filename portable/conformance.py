"""`portable conformance`: the shipped contract, parity and ONNX's node tests on one backend.

The contract is `portable.testing.AdapterContract` itself, run by pytest on a
generated three-line subclass, so a vendor's CI and this command check the same
thing. Plugin code never runs in this process: the contract, then the node tests,
each run in a child process that reports every case as it starts and ends; a case
that runs longer than the timeout is killed, and a child that dies (a segfault in a
vendor runtime) leaves the case it was in recorded as ``crashed`` and every case
after it ``not run``. The verdict:

- ``crashed``: a case crashed or hung (exit 4);
- ``failed``: a case failed, or a required node test (exit 1);
- ``passed``: every golden case of at least one variant (preset × dispatch) passed, and
  every other variant passed or is not supported by this stack at all (exit 0);
- ``unsupported``: no case failed, but no variant passed at every golden shape, or one
  passed at some shapes and is not supported at others (exit 3);
- ``not run``: nothing could run here (the backend is unavailable; exit 3).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from portable.childproc import describe_exit
from portable.errors import condense_message

PASSED, FAILED, NOT_RUN, CRASHED, UNSUPPORTED = (
    "passed", "failed", "not run", "crashed", "unsupported")
SKIPPED, TIMEOUT = "skipped", "timeout"
PARITY_CLAUSE = "test_outputs_match_golden"
DEFAULT_CASE_TIMEOUT_S = 600.0

_MODULE = """from portable.testing import AdapterContract


class TestConformance(AdapterContract):
    backend = {backend!r}
    options = {options!r}
    presets = {presets!r}
"""

_CHILD = "import sys; from portable.conformance import child_main; child_main(*sys.argv[1:])"


@dataclass(frozen=True)
class Clause:
    name: str
    outcome: str
    """``passed``, ``failed``, ``skipped``, ``unsupported`` (not supported by this stack),
    ``crashed``, ``timeout`` or ``not run``."""
    message: str = ""


@dataclass
class ConformanceReport:
    backend: str
    options: Mapping[str, str]
    clauses: list[Clause] = field(default_factory=list)
    node_tests: dict[str, Any] | None = None
    node_tests_required: bool = False

    @property
    def died(self) -> list[Clause]:
        """The cases (contract clauses or node tests) that crashed or hung."""
        return [c for c in self.clauses if c.outcome in (CRASHED, TIMEOUT)]

    @property
    def verdict(self) -> str:
        """See the module docstring: a variant (preset × dispatch) that passes some golden cases
        and is not supported at the others keeps the verdict at ``unsupported``."""
        node_failed = bool(self.node_tests and self.node_tests["failed"])
        if self.died:
            return CRASHED
        if any(c.outcome == FAILED for c in self.clauses) or (
            self.node_tests_required and node_failed
        ):
            return FAILED
        variants = _parity_by_variant(self.clauses)
        if any(outcomes == {PASSED} for outcomes in variants.values()) and not any(
                outcomes == {PASSED, UNSUPPORTED} for outcomes in variants.values()):
            return PASSED
        return UNSUPPORTED if any(UNSUPPORTED in o for o in variants.values()) else NOT_RUN

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "options": dict(self.options),
            "verdict": self.verdict,
            "contract": [asdict(c) for c in self.clauses],
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


def _parity_by_variant(clauses: Sequence[Clause]) -> dict[str, set[str]]:
    """Outcomes of the parity cases per variant (``moe-tiny-sparse``), from the test ids."""
    from portable import reference

    variants: dict[str, set[str]] = {}
    for clause in clauses:
        if not clause.name.startswith(PARITY_CLAUSE):
            continue
        case_id = clause.name.partition("[")[2].rstrip("]")
        variant = next((case_id.removesuffix(f"-{name}") for name in
                        reference.golden_case_names() if case_id.endswith(f"-{name}")), case_id)
        variants.setdefault(variant, set()).add(clause.outcome)
    return variants


# -- the child: runs one stage and writes one JSON line per event ----------------------------
class _Events:
    def __init__(self, path: str):
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the child's life

    def write(self, **event: Any) -> None:
        self._fh.write(json.dumps(event) + "\n")
        self._fh.flush()


class _Reporter:
    """A pytest plugin writing when each test starts and how each phase ended."""

    def __init__(self, events: _Events) -> None:
        self.events = events

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.events.write(event="start", case=nodeid.split("::", 2)[-1])

    def pytest_runtest_logreport(self, report: Any) -> None:
        from portable.testing import NOT_SUPPORTED

        name = report.nodeid.split("::", 2)[-1]
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            reason = reason.removeprefix("Skipped: ")
            outcome = UNSUPPORTED if reason.startswith(NOT_SUPPORTED) else SKIPPED
            self.events.write(event="clause", name=name, outcome=outcome, message=reason)
        elif report.failed:
            self.events.write(event="clause", name=name, outcome=FAILED,
                              message=failure_message(report.longreprtext))
        elif report.when == "call":
            self.events.write(event="clause", name=name, outcome=PASSED)


def child_main(stage: str, folder: str) -> None:
    """Run `stage` (``contract`` or ``node-tests``) of the spec in `folder`."""
    root = Path(folder)
    spec = json.loads((root / "spec.json").read_text(encoding="utf-8"))
    events = _Events(str(root / "events.jsonl"))
    if stage == "contract":
        import pytest

        args = [spec["module"], "-c", str(root / "pytest.ini"), "--rootdir", str(root), "-q",
                "-p", "no:cacheprovider", "--import-mode=importlib", "-W", "ignore"]
        with contextlib.redirect_stdout(io.StringIO()):
            pytest.main(args, plugins=[_Reporter(events)])
    else:
        summary = run_node_tests_for_reference(
            spec["backend"], spec["options"], Path(spec["model"]),
            on_start=lambda name: events.write(event="start", case=f"ONNX node test {name}"))
        events.write(event="node_tests", summary=summary)


# -- the parent: starts a stage, watches its events, records deaths ---------------------------
def _read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    if not path.exists():
        return [], offset
    with open(path, encoding="utf-8") as fh:
        fh.seek(offset)
        text = fh.read()
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines()], offset + len(complete)


def run_stage(stage: str, folder: Path, timeout_s: float) -> tuple[dict[str, Clause], dict]:
    """Run `stage` in a child; its clauses by name (the first failure or skip of a test wins)
    and the last ``node_tests`` summary. A case that hangs past `timeout_s` is killed."""
    clauses: dict[str, Clause] = {}
    summary: dict[str, Any] = {}
    current: tuple[str, float] | None = None
    offset = 0
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, stage, str(folder)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            done = proc.poll() is not None
            events, offset = _read_events(folder / "events.jsonl", offset)
            for event in events:
                if event["event"] == "start":
                    current = (event["case"], time.monotonic())
                elif event["event"] == "node_tests":
                    summary = event["summary"]
                else:
                    known = clauses.get(event["name"])
                    if known is None or known.outcome == PASSED:
                        clauses[event["name"]] = Clause(event["name"], event["outcome"],
                                                        event.get("message", ""))
            if done:
                break
            if current is not None and time.monotonic() - current[1] > timeout_s:
                proc.kill()
                proc.wait()
                clauses[current[0]] = Clause(current[0], TIMEOUT, (
                    f"no result after {timeout_s:g}s; the child process was killed"))
                return clauses, summary
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        how = describe_exit(proc.returncode)
        unfinished = current is not None and current[0] not in clauses
        name = current[0] if unfinished else f"the {stage} runner"
        clauses[name] = Clause(name, CRASHED, f"the process running this case was {how}")
    return clauses, summary


def _write_spec(folder: Path, **spec: Any) -> None:
    (folder / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    (folder / "events.jsonl").unlink(missing_ok=True)


def run_contract(
    backend: str, options: Mapping[str, str], presets: Sequence[str],
    timeout_s: float = DEFAULT_CASE_TIMEOUT_S,
) -> list[Clause]:
    """Run AdapterContract on `backend` under pytest in a child process, case by case."""
    with tempfile.TemporaryDirectory(prefix="portable-conformance-") as name:
        root = Path(name)
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        # A unique module name: pytest may run inside a process that imported another
        # module of the same name (our own test suite does).
        module = root / f"test_portable_conformance_{uuid.uuid4().hex}.py"
        module.write_text(_MODULE.format(backend=backend, options=dict(options),
                                         presets=tuple(presets)), encoding="utf-8")
        _write_spec(root, module=str(module))
        clauses, _ = run_stage("contract", root, timeout_s)
        if any(c.outcome in (CRASHED, TIMEOUT) for c in clauses.values()):
            clauses.update({name: Clause(name, NOT_RUN, "an earlier case died")
                            for name in _collected(root, module) if name not in clauses})
    return list(clauses.values())


def _collected(root: Path, module: Path) -> list[str]:
    """The contract's test ids, collected in a child (collection imports the plugin)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), "-c", str(root / "pytest.ini"),
         "--rootdir", str(root), "-q", "--collect-only", "-p", "no:cacheprovider",
         "--import-mode=importlib"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    return [line.split("::", 2)[-1] for line in done.stdout.splitlines() if "::" in line]


def run_node_tests_for_reference(
    backend: str, options: Mapping[str, str], model_path: Path,
    on_start: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """ONNX's node tests for the op and element types the reference model uses."""
    import onnx

    from portable.onnx_backend import node_tests_for, run_node_tests

    names = node_tests_for(onnx.load(str(model_path)))
    summary = run_node_tests(backend, names, options, on_start)
    return {"selected": len(names), **summary.to_dict()}


def run_node_tests_isolated(backend: str, options: Mapping[str, str], model_path: Path,
                            timeout_s: float) -> tuple[dict[str, Any] | None, list[Clause]]:
    """The node tests in a child: their summary, or the clause of the test that died."""
    with tempfile.TemporaryDirectory(prefix="portable-node-tests-") as name:
        root = Path(name)
        _write_spec(root, backend=backend, options=dict(options), model=str(model_path))
        clauses, summary = run_stage("node-tests", root, timeout_s)
    return summary or None, list(clauses.values())


def check(
    backend: str,
    options: Mapping[str, str],
    presets: Sequence[str],
    node_tests: str = "report",
    timeout_s: float = DEFAULT_CASE_TIMEOUT_S,
) -> ConformanceReport:
    """`node_tests`: ``off``, ``report`` (counted, informational) or ``require`` (must pass);
    `timeout_s`: how long one case may run before it is killed and recorded as hung."""
    from portable.modelsource import resolve

    report = ConformanceReport(backend, options,
                               run_contract(backend, options, presets, timeout_s),
                               node_tests_required=node_tests == "require")
    if node_tests != "off" and report.verdict not in (NOT_RUN, CRASHED):
        report.node_tests, died = run_node_tests_isolated(
            backend, options, resolve(presets[0]).path, timeout_s)
        report.clauses.extend(died)
    return report
