"""The adapter contract as a pytest suite that any adapter, in tree or a vendor's, subclasses.

    from portable.testing import AdapterContract

    class TestMyAdapter(AdapterContract):
        backend = "my-npu"                   # the entry-point name
        options = {"device_id": "0"}         # optional

Every test is about something a user would notice: the name resolves to this
adapter, probing either describes the device or says why not, importing the
adapter pulls in no vendor SDK, outputs match PyTorch's golden outputs at the
tolerance of the dtype the device computes in, the session's signature is the
model's, runs repeat, nothing falls back silently, unknown options are refused
and closing twice is harmless. When the backend is unavailable the tests that
need a device are skipped with the reason: `portable conformance` reports such
a run as "not run", never as passed.

Parity runs one golden case per preset × dispatch variant × shape: decode shapes
(1×1, 1×4: the MoE's per-token gather branch) and prefill (2×16: the grouped
branch). Sessions are opened as the harness opens them (`portable.sessions`): a
static-shape stack is specialized for each case's shapes. `UnsupportedModel`
from load, specialize or run skips the test as "not supported by this stack":
never a pass, never a failure.
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np
import pytest

from portable import reference as reference_models
from portable import registry
from portable.adapter import API_VERSION, Adapter, DeviceInfo, Session, SessionConfig
from portable.errors import BackendUnavailable, InvalidOption, UnsupportedModel
from portable.modelsource import ModelSource, resolve
from portable.parity import compare, tolerance_for
from portable.sessions import open_session
from portable.signature import read_signature

#: How a test skipped for `UnsupportedModel` starts its reason (the conformance kit's key).
NOT_SUPPORTED = "not supported by this stack"

#: Vendor SDKs no adapter module may import at import time, whatever it declares.
HEAVY_SDKS = ("torch", "onnxruntime", "openvino", "tensorrt", "torch_npu", "acl", "torch_musa",
              "torch_gcu", "torch_xmlir", "paddle", "tensorflow", "jax")

_IMPORT_PROBE = """
import json, sys
from importlib import metadata
ep = [e for e in metadata.entry_points(group={group!r}) if e.name == {name!r}][0]
ep.load()
print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))
"""


def _cases(presets: tuple[str, ...], dispatches: tuple[str, ...] | None) -> list[tuple]:
    return [(p, d, c) for p in presets for d in (dispatches or reference_models.dispatches())
            for c in reference_models.golden_case_names()]


@functools.cache
def _golden_case(preset: str, dispatch: str, name: str) -> tuple[dict, dict]:
    source = resolve(preset, (), dispatch)
    cases = {n: (i, o) for n, i, o in reference_models.golden_cases(source.reference_config)}
    return cases[name]


def describe_shapes(feeds: Mapping[str, np.ndarray]) -> str:
    """``input_ids int64[1, 4]``: what a report says about a case's inputs."""
    return ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in feeds.items())


@contextlib.contextmanager
def not_supported_is_skip() -> Iterator[None]:
    """`UnsupportedModel` (from load, specialize or run) skips as "not supported by this stack"."""
    try:
        yield
    except UnsupportedModel as exc:
        pytest.skip(f"{NOT_SUPPORTED}: {exc}")


class AdapterContract:
    """Subclass and set `backend`; optionally `options`, `presets`, `dispatches`."""

    backend: ClassVar[str]
    options: ClassVar[Mapping[str, str]] = {}
    presets: ClassVar[tuple[str, ...]] = ("moe-tiny",)
    """Reference presets whose golden outputs the adapter must match."""
    dispatches: ClassVar[tuple[str, ...] | None] = None
    """MoE dispatch variants to check; None means every variant the reference model has."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            cases = _cases(self.presets, self.dispatches)
            metafunc.parametrize("case", cases, ids=["-".join(c) for c in cases])

    # -- fixtures ---------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def adapter_class(cls) -> type[Adapter]:
        return registry.load_adapter_class(cls.backend)

    @pytest.fixture(scope="class")
    @classmethod
    def device(cls, adapter_class: type[Adapter]) -> DeviceInfo:
        try:
            return adapter_class(cls.options).probe()
        except BackendUnavailable as exc:
            pytest.skip(f"{cls.backend} is unavailable here: {exc}")

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls, adapter_class: type[Adapter], device: DeviceInfo) -> Adapter:
        return adapter_class(cls.options)

    @pytest.fixture(scope="class")
    @classmethod
    def reference(cls) -> ModelSource:
        return resolve(cls.presets[0], (), None)

    @pytest.fixture(scope="class")
    @classmethod
    def golden(cls, reference: ModelSource) -> tuple[dict, dict]:
        golden = reference.golden()
        assert golden is not None, f"{reference.name} has no golden outputs"
        return golden

    @pytest.fixture(scope="class")
    @classmethod
    def session(cls, adapter: Adapter, reference: ModelSource, golden: tuple[dict, dict]
                ) -> Session:
        with not_supported_is_skip():
            session, _ = open_session(adapter, reference.path, golden[0], strict=True)
        yield session
        session.close()

    # -- the contract -----------------------------------------------------------------------
    def test_entry_point_name_matches(self, adapter_class: type[Adapter]) -> None:
        assert adapter_class.name == registry.canonical_name(self.backend)
        assert adapter_class.api_version[0] == API_VERSION[0]

    def test_probe_describes_device_or_says_why_not(self, adapter_class: type[Adapter]) -> None:
        try:
            info = adapter_class(self.options).probe()
        except BackendUnavailable as exc:
            assert exc.reason, "BackendUnavailable must say why"
            return
        assert isinstance(info, DeviceInfo)
        assert info.device.split(":")[0] == adapter_class.device_kind
        assert info.name

    def test_import_loads_no_vendor_sdk(self, adapter_class: type[Adapter]) -> None:
        modules = sorted(set(HEAVY_SDKS) | set(adapter_class.vendor_modules))
        code = _IMPORT_PROBE.format(group=registry.GROUP, name=adapter_class.name,
                                    modules=modules)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == []

    def test_unknown_and_bad_options_rejected(self, adapter_class: type[Adapter]) -> None:
        with pytest.raises(InvalidOption, match="valid: "):
            adapter_class({**self.options, "no_such_option_xyz": "1"})
        for key, spec in adapter_class.option_spec.items():
            if spec.choices:
                with pytest.raises(InvalidOption, match="choose one of"):
                    adapter_class({**self.options, key: "not-a-choice-xyz"})

    def test_outputs_match_golden(self, adapter: Adapter, case: tuple[str, str, str]) -> None:
        preset, dispatch, name = case
        inputs, expected = _golden_case(preset, dispatch, name)
        with not_supported_is_skip():
            session, _ = open_session(adapter, resolve(preset, (), dispatch).path, inputs,
                                      strict=True)
            with session:
                outputs = session.run(inputs)
        report = compare(outputs, expected, "golden outputs from PyTorch eager",
                         session.compute_precision)
        assert report.passed, (f"case {name} ({describe_shapes(inputs)}): "
                               + json.dumps(report.to_dict(), indent=1))

    def test_signature_matches_model(
        self, session: Session, reference: ModelSource, golden: tuple[dict, dict]
    ) -> None:
        model = read_signature(reference.path)
        assert [(s.name, s.dtype) for s in session.inputs] == [
            (s.name, s.dtype) for s in model.inputs]
        assert [(s.name, s.dtype) for s in session.outputs] == [
            (s.name, s.dtype) for s in model.outputs]
        with not_supported_is_skip():
            outputs = session.run(golden[0])
        assert list(outputs) == [s.name for s in model.outputs]
        for spec in model.outputs:
            assert outputs[spec.name].dtype == np.dtype(spec.dtype), spec.name
            assert outputs[spec.name].shape == golden[1][spec.name].shape, spec.name

    def test_repeated_runs_agree(self, session: Session, golden: tuple[dict, dict]) -> None:
        with not_supported_is_skip():
            first = session.run(golden[0])
            second = session.run(golden[0])
        for name, value in first.items():
            tol = tolerance_for(str(value.dtype), session.compute_precision)
            if value.dtype.kind == "f":
                np.testing.assert_allclose(second[name], value, rtol=tol, atol=tol)
            else:
                np.testing.assert_array_equal(second[name], value)

    def test_no_silent_fallback(
        self, session: Session, device: DeviceInfo, golden: tuple[dict, dict]
    ) -> None:
        with not_supported_is_skip():
            session.run(golden[0])
        placement = session.placement()
        assert placement.requested == device.device, (
            f"placement claims {placement.requested}, the probe found {device.device}")
        ran_on = {dev for dev, n in placement.nodes_by_device.items() if n}
        assert ran_on, f"the runtime did not say where nodes ran ({placement.source})"
        assert ran_on == {device.device}, placement.to_dict()

    def test_close_is_idempotent(self, adapter: Adapter, reference: ModelSource) -> None:
        session = adapter.load(reference.path, SessionConfig())
        session.close()
        session.close()
