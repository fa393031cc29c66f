"""Probing and options of the adapters for stacks this machine lacks (CUDA, CANN, vendors)
and of OpenVINO, which runs here."""

import os

import pytest
from helpers import contrib_op_model

from portable import registry
from portable.adapter import SessionConfig
from portable.backends.cann import CannAdapter
from portable.backends.openvino import OpenVinoAdapter
from portable.backends.ort_cuda import OrtCudaAdapter, OrtTensorrtAdapter
from portable.errors import BackendUnavailable, InvalidOption, UnsupportedModel
from portable.harness import WorkItem, run_work_item
from portable.kit.probing import VendorRuntime
from portable.kit.stub import VendorStubAdapter
from portable.modelsource import resolve
from portable.timing import BenchSettings

CANN_OPTIONS = ("device_id", "npu_mem_limit", "arena_extend_strategy", "enable_cann_graph",
                "dump_graphs", "dump_om_model", "precision_mode", "op_select_impl_mode",
                "optypelist_for_implmode")


@pytest.mark.parametrize("name, provider, package", [
    ("cuda", "CUDAExecutionProvider", "onnxruntime-gpu"),
    ("ort-tensorrt", "TensorrtExecutionProvider", "onnxruntime-gpu"),
    ("ascend", "CANNExecutionProvider", "onnxruntime-cann"),
])
def test_accelerator_probe_names_every_gap_and_the_install(name, provider, package):
    with pytest.raises(BackendUnavailable) as err:
        registry.create(name).probe()
    assert f"has no {provider}" in err.value.reason
    assert "no device nodes" in err.value.reason  # the driver is checked too
    assert package in err.value.hint


def test_cann_accepts_exactly_its_documented_options():
    with pytest.raises(InvalidOption) as err:
        CannAdapter({"precison_mode": "force_fp32"})
    assert "unknown option(s) precison_mode" in str(err.value)
    for key in CANN_OPTIONS:
        assert key in str(err.value)
    adapter = CannAdapter({"enable_cann_graph": "yes", "npu_mem_limit": "1073741824"})
    assert adapter.provider_options() == {"device_id": "0", "enable_cann_graph": "1",
                                          "npu_mem_limit": "1073741824"}
    assert adapter.device() == "npu:0"


@pytest.mark.parametrize("options, message", [
    ({"precision_mode": "fp8"}, "choose one of force_fp32, force_fp16"),
    ({"device_id": "-1"}, "expected an integer >= 0"),
    ({"enable_cann_graph": "maybe"}, "expected true/false"),
])
def test_cann_bad_values_say_what_is_valid(options, message):
    with pytest.raises(InvalidOption, match=message):
        CannAdapter(options)


@pytest.mark.parametrize("mode, precision", [
    (None, "float16"), ("force_fp16", "float16"), ("allow_mix_precision", "float16"),
    ("must_keep_origin_dtype", None), ("force_fp32", None),
])
def test_cann_precision_mode_sets_the_parity_precision(mode, precision):
    adapter = CannAdapter({"precision_mode": mode} if mode else {})
    assert adapter.compute_precision() == precision


def test_cuda_options_map_to_provider_options_and_io_binding():
    adapter = OrtCudaAdapter({"device_id": "1", "gpu_mem_limit": "2147483648",
                              "cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "false"})
    assert adapter.provider_options() == {"device_id": "1", "gpu_mem_limit": "2147483648",
                                          "cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
    assert adapter.device() == "cuda:1" and adapter.io_device().kind == "cuda"
    assert adapter.compute_precision() is None
    assert OrtCudaAdapter().compute_precision() == "tfloat32"
    assert OrtTensorrtAdapter({"trt_fp16_enable": "1"}).compute_precision() == "float16"
    with pytest.raises(InvalidOption, match="choose one of EXHAUSTIVE, HEURISTIC, DEFAULT"):
        OrtCudaAdapter({"cudnn_conv_algo_search": "fast"})


@pytest.mark.parametrize("name", ["musa", "dcu", "xpu", "gcu"])
def test_vendor_stubs_report_what_is_missing(name):
    adapter = registry.create(name)
    with pytest.raises(BackendUnavailable) as err:
        adapter.probe()
    assert "no device nodes" in err.value.reason and "not found" in err.value.reason
    assert err.value.hint
    with pytest.raises(BackendUnavailable):
        adapter.load("model.onnx", SessionConfig())


def test_vendor_stub_with_runtime_present_still_runs_nothing(tmp_path, monkeypatch):
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "acme0").touch()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libacmert.so.1").touch()
    monkeypatch.setenv("ACME_HOME", str(tmp_path))

    class Acme(VendorStubAdapter):
        name = "acme"
        device_kind = "acme"
        runtime = VendorRuntime("Acme", (str(tmp_path / "dev" / "acme[0-9]*"),),
                                ("libacmert.so",), {"ACME_HOME": ()})

    info = Acme().probe()
    assert info.device == "acme:0" and info.device_count == 1
    with pytest.raises(BackendUnavailable, match="runs nothing rather than run elsewhere"):
        Acme().load(tmp_path / "m.onnx", SessionConfig())
    monkeypatch.setenv("ACME_HOME", os.devnull)
    with pytest.raises(BackendUnavailable, match=r"libacmert.so not found .*\$ACME_HOME"):
        Acme().probe()


def test_openvino_defaults_to_f32_and_rejects_bad_values():
    assert OpenVinoAdapter().probe().details["inference_precision"] == "float32"
    with pytest.raises(InvalidOption, match="choose one of f32, bf16, f16"):
        OpenVinoAdapter({"inference_precision": "int4"})
    with pytest.raises(InvalidOption, match="choose one of latency, throughput"):
        OpenVinoAdapter({"performance_hint": "fast"})
    with pytest.raises(BackendUnavailable, match="no device NPU9"):
        OpenVinoAdapter({"device": "NPU9"}).probe()


def test_openvino_names_the_op_it_cannot_run(tmp_path):
    model = contrib_op_model(tmp_path / "fused.onnx")
    with pytest.raises(UnsupportedModel, match="com.microsoft.MoE"):
        OpenVinoAdapter().load(model, SessionConfig())
    settings = BenchSettings(warmup=0, iterations=1, min_duration_s=0.0)
    result = run_work_item(WorkItem("openvino", {}, resolve(str(model)), settings)).to_dict()
    assert result["status"] == "unsupported" and "com.microsoft.MoE" in result["error"]["message"]


def test_openvino_bf16_is_recorded_and_loosens_parity(tiny_export):
    settings = BenchSettings(batch=1, seq=8, warmup=0, iterations=2, min_duration_s=0.0)
    result = run_work_item(WorkItem("openvino", {"inference_precision": "bf16"},
                                    resolve("moe-tiny"), settings)).to_dict()
    assert result["status"] == "ok", result["error"]
    parity = result["parity"]
    assert parity["compute_precision"] == "bfloat16"
    assert parity["outputs"]["logits"]["tolerance"] == 5e-2
    assert parity["max_abs_error"] > 1e-4  # really computed in bf16: f32 would be ~1e-6


def test_cuda_device_facts_come_from_the_driver_tool(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\ncase \"$1\" in\n"
                   "  *memory.used*) echo 1024; echo 2048 ;;\n"
                   "  *) echo 'NVIDIA A100, 81920, 550.54'; echo 'NVIDIA A100, 81920, 550.54' ;;\n"
                   "esac\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    import onnxruntime

    adapter = OrtCudaAdapter({"device_id": "1"})
    info = adapter.device_info(onnxruntime)
    assert (info.device, info.name, info.device_count) == ("cuda:1", "NVIDIA A100", 2)
    assert info.memory_bytes == 81920 * 2**20 and info.runtime["driver"] == "550.54"
    assert adapter.device_memory() == {"device_used_bytes": 2048 * 2**20}


def test_cann_wheel_with_numpy_2_is_explained(monkeypatch):
    import portable.backends.cann as cann

    versions = {"onnxruntime-cann": "1.22.0", "numpy": "2.1.0"}
    monkeypatch.setattr(cann, "package_version", versions.get)
    with pytest.raises(BackendUnavailable, match="built against NumPy 1.x, but numpy 2.1.0") as err:
        CannAdapter().probe()
    assert "numpy<2" in err.value.hint
