"""Any portable adapter as an `onnx.backend.base.Backend`, so ONNX's own backend tests run on it.

    from portable.onnx_backend import backend_for
    import onnx.backend.test

    test = onnx.backend.test.BackendTest(backend_for("openvino"), __name__)
    test.include(r"^test_softmax_")
    globals().update(test.test_cases)

`run_node_tests` runs ONNX's node tests for a set of op types (those the reference
model uses) and counts the outcomes, for `portable conformance` and our own suite.
The adapter runs on its own device; ONNX's test device label is always ``CPU``.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import unittest
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from portable import registry
from portable.adapter import Session
from portable.errors import UnsupportedModel, condense_message
from portable.sessions import ShapeSets, session_config


class AdapterRep(BackendRep):
    """A loaded model: positional inputs in, positional outputs out, as ONNX's runner wants.

    It owns the model's folder: the file stays valid until the session is closed
    (`close()`, or when ONNX's runner drops the rep), as contract 1.1 promises. A
    static-shape session is specialized for each new shape set before it runs, and
    `UnsupportedModel` from specialize or run skips the test, as from load.
    """

    def __init__(self, session: Session, shape_sets: ShapeSets, folder: Any,
                 input_names: list[str], output_names: list[str]):
        self._session = session
        self._shape_sets = shape_sets
        self._input_names = input_names
        self._output_names = output_names
        self._finalizer = weakref.finalize(self, _close, session, folder)

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        pairs = inputs.items() if isinstance(inputs, Mapping) else zip(
            self._input_names, inputs, strict=False)
        feeds = {name: np.asarray(value) for name, value in pairs}  # numpy scalars -> 0-d
        with _unsupported_is_skip():
            self._shape_sets.ensure(feeds)
            outputs = self._session.run(feeds)
        return tuple(outputs[name] for name in self._output_names)

    def close(self) -> None:
        self._finalizer()


def _close(session: Session, folder: Any) -> None:
    """Close the session first, then remove the model it may still read."""
    try:
        session.close()
    finally:
        folder.cleanup()


@contextlib.contextmanager
def _unsupported_is_skip() -> Iterator[None]:
    try:
        yield
    except UnsupportedModel as exc:  # not a failure of the op: the adapter says so
        raise unittest.SkipTest(str(exc)) from None


class AdapterBackend(Backend):
    """Subclassed per adapter by `backend_for`; `adapter_name` and `options` say which."""

    adapter_name: ClassVar[str]
    options: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> AdapterRep:
        super().prepare(model, device, **kwargs)
        adapter = registry.create(cls.adapter_name, cls.options)
        folder = tempfile.TemporaryDirectory(prefix="portable-onnx-backend-")
        path = Path(folder.name) / "model.onnx"
        onnx.save(model, str(path))
        try:
            with _unsupported_is_skip():
                # ONNX's runner gives the inputs only to run(): shapes come then.
                session = adapter.load(path, session_config(adapter, {}, strict=True))
        except BaseException:
            folder.cleanup()
            raise
        initializers = {init.name for init in model.graph.initializer}
        inputs = [i.name for i in model.graph.input if i.name not in initializers]
        return AdapterRep(session, ShapeSets.of(adapter, session), folder, inputs,
                          [o.name for o in model.graph.output])

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


def backend_for(name: str, options: Mapping[str, str] | None = None) -> type[AdapterBackend]:
    """An `onnx.backend.base.Backend` class that runs models through adapter `name`."""
    canonical = registry.canonical_name(name)
    return type(f"AdapterBackend[{canonical}]", (AdapterBackend,),
                {"adapter_name": canonical, "options": dict(options or {})})


def model_op_types(model: onnx.ModelProto) -> set[str]:
    """Op types of every node, subgraphs (If/Loop bodies) included."""
    found: set[str] = set()
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else
                      f"{node.domain}.{node.op_type}")
            for attr in node.attribute:
                graphs.extend([attr.g] if attr.HasField("g") else [])
                graphs.extend(attr.graphs)
    return found


def model_elem_types(model: onnx.ModelProto) -> set[int]:
    """Tensor element types at the graph's edges, in its weights and its Cast targets."""
    graph = model.graph
    values = [*graph.input, *graph.output, *graph.value_info]
    found = {v.type.tensor_type.elem_type for v in values if v.type.HasField("tensor_type")}
    found |= {init.data_type for init in graph.initializer}
    found |= {attr.i for node in graph.node if node.op_type == "Cast"
              for attr in node.attribute if attr.name == "to"}
    return found - {onnx.TensorProto.UNDEFINED}


def node_tests_for(model: onnx.ModelProto) -> list[str]:
    """ONNX node tests that use only `model`'s op types on only its element types."""
    from onnx.backend.test.loader import load_model_tests

    ops, dtypes = model_op_types(model), model_elem_types(model)
    with warnings.catch_warnings():  # ONNX generates its cases with numpy overflow warnings
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    names = []
    for case in cases:
        if case.model is None:
            continue
        used = model_op_types(case.model)
        if used and used <= ops and model_elem_types(case.model) <= dtypes:
            names.append(case.name)
    return sorted(names)


_GIST = (re.compile(r"Mismatched elements|Max absolute difference"),
         re.compile(r"^(\w+\.)*\w*(Error|Exception|Fail)\b"))


def _gist(trace: str) -> str:
    """What went wrong, in one line, from a unittest traceback."""
    lines = [line.strip() for line in trace.splitlines() if line.strip()]
    mismatch, error = _GIST
    hit = next((line for line in lines if mismatch.search(line)), None)
    if hit:
        return hit
    # An exception's message runs to the end of the trace: keep its cause lines too.
    at = next((i for i, line in enumerate(lines) if error.search(line)), None)
    if at is not None:
        return condense_message("\n".join(lines[at:]))
    return lines[-1] if lines else ""


@dataclass
class NodeTestSummary:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    """(test name, the last line of its error)."""

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed, "skipped": self.skipped,
                "failures": [{"test": name, "error": error} for name, error in self.failures]}


def _announcing(on_start: Callable[[str], None] | None) -> type[unittest.TextTestResult]:
    class AnnouncingResult(unittest.TextTestResult):
        def startTest(self, test: unittest.TestCase) -> None:  # noqa: N802 - unittest's name
            if on_start is not None:
                on_start(test.id().rsplit(".", 1)[-1].removesuffix("_cpu"))
            super().startTest(test)

    return AnnouncingResult


def run_node_tests(
    name: str, test_names: Iterable[str], options: Mapping[str, str] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> NodeTestSummary:
    """Run the named ONNX node tests through `onnx.backend.test.BackendTest` on adapter `name`;
    `on_start(test)` is told each test's name before it runs (to name one that crashes)."""
    import onnx.backend.test

    wanted = sorted(set(test_names))
    summary = NodeTestSummary()
    if not wanted:
        return summary
    backend_test = onnx.backend.test.BackendTest(backend_for(name, options), __name__)
    backend_test.include("^(" + "|".join(wanted) + ")_cpu$")
    loader = unittest.defaultTestLoader
    selected = {f"{test}_cpu" for test in wanted}
    suite = unittest.TestSuite(
        test
        for case in backend_test.test_cases.values()
        for test in loader.loadTestsFromTestCase(case)
        if test.id().rsplit(".", 1)[-1] in selected
    )
    result = unittest.TextTestRunner(stream=io.StringIO(), verbosity=0,
                                     resultclass=_announcing(on_start)).run(suite)
    summary.skipped = len(result.skipped)
    for test, trace in [*result.failures, *result.errors]:
        summary.failures.append((test.id().rsplit(".", 1)[-1], _gist(trace)))
    summary.failed = len(summary.failures)
    summary.passed = result.testsRun - summary.failed - summary.skipped
    return summary
