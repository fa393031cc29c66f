"""No silent fallback, shown with ONNX Runtime's real behaviour on this CPU-only build.

Asked for an execution provider it lacks (CUDA here), ORT warns and runs on CPU.
Asked for the Azure EP, which exists in every ORT build but implements no standard
op, ORT places every node on the CPU EP: a real partial-fallback setup.
"""

import glob
import os
import tempfile
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from helpers import add_model, contrib_op_model

from portable import harness
from portable.adapter import SessionConfig
from portable.backends.ort_cpu import OrtCpuAdapter
from portable.backends.ort_cuda import OrtCudaAdapter, OrtTensorrtAdapter
from portable.errors import BackendUnavailable, PlacementError, UnsupportedModel
from portable.harness import WorkItem, run_work_item
from portable.kit.ort import OrtAdapter
from portable.modelsource import resolve
from portable.timing import BenchSettings

pytestmark = pytest.mark.filterwarnings("ignore:Specified provider")

FEEDS = {"x": np.ones((2, 4), np.float32)}


class AzureAdapter(OrtAdapter):
    """A provider that is present but runs none of the model's ops."""

    name = "ort-azure-test"
    provider = "AzureExecutionProvider"
    device_kind = "azure"


@pytest.fixture
def model(tmp_path):
    return add_model(tmp_path / "add.onnx")


@pytest.fixture
def gpu_wheel_without_gpu(monkeypatch):
    """What onnxruntime-gpu does on a host with no usable GPU: lists CUDA, then runs on CPU."""
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    monkeypatch.setattr(OrtCudaAdapter, "runtime", None)


def test_raw_onnxruntime_falls_back_silently(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sess = ort.InferenceSession(str(model), providers=["CUDAExecutionProvider"])
    assert sess.get_providers() == ["CPUExecutionProvider"]
    sess.run(None, FEEDS)  # no exception: the run happened on CPU


def test_cuda_adapter_refuses_the_cpu_run_by_default(model, gpu_wheel_without_gpu):
    with pytest.raises(PlacementError, match="fallback to CPU EP has been explicitly disabled"):
        OrtCudaAdapter().load(model, SessionConfig())


def test_cuda_adapter_never_labels_a_cpu_session_cuda(model, gpu_wheel_without_gpu):
    adapter = OrtCudaAdapter({"allow_fallback": "true"})
    with pytest.raises(BackendUnavailable, match=r"asked for CUDAExecutionProvider but runs "
                                                 r"\['CPUExecutionProvider'\]"):
        adapter.load(model, SessionConfig())


def test_partial_fallback_is_read_per_node_from_the_profiler(model):
    session = AzureAdapter({"allow_fallback": "true"}).load(model, SessionConfig())
    session.run(FEEDS)
    placement = session.placement()
    session.close()
    assert placement.source == "profiler"
    assert placement.requested == "azure"
    assert dict(placement.nodes_by_device) == {"cpu": 1}
    assert placement.fallback_op_types == ("Add",) and placement.has_fallback


def test_accelerator_adapters_default_to_strict(model):
    assert AzureAdapter().default_strict and not OrtCpuAdapter().default_strict
    with pytest.raises(PlacementError, match="allow_fallback=true"):
        AzureAdapter().load(model, SessionConfig())
    # the refused session's profiler file is not left behind
    assert not glob.glob(os.path.join(tempfile.gettempdir(),
                                      f"portable-ort-azure-test-{os.getpid()}-*"))


@pytest.mark.parametrize("strict, status", [(False, "ok"), (True, "refused")])
def test_harness_records_fallback_and_strict_fails_it(model, monkeypatch, strict, status):
    monkeypatch.setattr(harness.registry, "create",
                        lambda name, options: AzureAdapter({"allow_fallback": "true"}))
    settings = BenchSettings(batch=2, seq=1, warmup=0, iterations=2, min_duration_s=0.0,
                             strict=strict)
    result = run_work_item(WorkItem("ort-azure-test", {}, resolve(str(model)), settings)).to_dict()
    assert result["status"] == status
    if strict:  # ORT itself refuses to create the session
        assert "fallback to CPU EP has been explicitly disabled" in result["error"]["message"]
        assert "placement" not in result
    else:
        assert result["placement"]["fallback"]
        assert result["placement"]["nodes_by_device"] == {"cpu": 1}


def test_cpu_placement_counts_every_executed_node(tiny_export):
    session = OrtCpuAdapter().load(tiny_export.onnx_path, SessionConfig())
    inputs, _ = resolve("moe-tiny").golden()
    session.run(inputs)
    placement = session.placement()
    assert placement.source == "profiler" and not placement.has_fallback
    assert set(placement.nodes_by_device) == {"cpu"} and placement.nodes_by_device["cpu"] > 50
    session.close()


def test_io_binding_path_gives_the_same_outputs(model):
    class BoundCpu(OrtCpuAdapter):
        io_binding_device = "cpu"

    session = BoundCpu().load(model, SessionConfig())
    step = session.prepare(FEEDS)
    step()
    session.synchronize()
    (bound,) = session._binding.copy_outputs_to_cpu()
    np.testing.assert_array_equal(bound, session.run(FEEDS)["y"])
    session.close()


def test_an_op_the_runtime_lacks_is_unsupported_not_a_usage_error(tmp_path):
    model = contrib_op_model(tmp_path / "unknown.onnx", op_type="NoSuchFusedOp")
    with pytest.raises(UnsupportedModel, match="com.microsoft:NoSuchFusedOp"):
        OrtCpuAdapter().load(model, SessionConfig())


def test_same_device_providers_are_not_fallback(model):
    class AzureThenCpu(AzureAdapter):  # stands in for TensorRT then CUDA on one GPU
        same_device_providers = ("CPUExecutionProvider",)

    adapter = AzureThenCpu({"allow_fallback": "true"})
    assert [p for p, _ in adapter.provider_list()] == ["AzureExecutionProvider",
                                                        "CPUExecutionProvider"]
    session = adapter.load(model, SessionConfig())
    session.run(FEEDS)
    assert dict(session.placement().nodes_by_device) == {"azure": 1}
    session.close()
    trt = OrtTensorrtAdapter({"device_id": "1", "trt_fp16_enable": "1"}).provider_list()
    assert trt == [("TensorrtExecutionProvider", {"device_id": "1", "trt_fp16_enable": "1"}),
                   ("CUDAExecutionProvider", {"device_id": "1"})]


@pytest.mark.parametrize("first_call", ["run", "prepare"])
def test_profiling_never_reaches_the_timed_step(model, first_call):
    """Placement is read from a profile of one run; callers that never ask for placement()
    (benchmark scripts, vendor harnesses) must not time a profiled session."""
    session = OrtCpuAdapter().load(model, SessionConfig())
    feeds = {"x": np.ones((2, 4), np.float32)}
    if first_call == "run":
        session.run(feeds)
    step = session.prepare(feeds)
    step()
    assert session._sess.end_profiling() == ""  # the profiler had already been stopped
    expected = {"cpu": 1} if first_call == "run" else {}
    assert dict(session.placement().nodes_by_device) == expected
    session.close()
