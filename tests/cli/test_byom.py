"""Bring your own ONNX model: bench, check and inspect on models built with onnx.helper."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto
from onnx_models import (
    custom_op_model,
    embedding_model,
    identity_model,
    image_model,
    loop_gru_model,
    multi_input_model,
)

from portable import registry
from portable.cli import cli
from portable.feeds import make_feeds
from portable.harness import WorkItem, run_work_item
from portable.inputs import InputSpec
from portable.modelsource import resolve
from portable.signature import read_signature
from portable.timing import BenchSettings

FAST = ["--warmup", "1", "--iterations", "3", "--min-duration", "0"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def bench_json(tmp_path, *args):
    result = invoke("bench", *args, *FAST, "--json", "--output", tmp_path / "r.json")
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return result, document


def test_multi_input_model_benches_with_overrides(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    result, document = bench_json(tmp_path, "-b", "cpu", "--model", model, "--no-isolate",
                                  "--batch", "3", "--dim", "seq=5", "--input", "scale=7")
    assert result.exit_code == 0, result.output
    cell = document["results"][0]
    assert cell["status"] == "ok"
    inputs = cell["inputs"]
    assert inputs["x"]["shape"] == [3, 5, 8] and inputs["mask"] == {**inputs["mask"],
                                                                    "shape": [3, 5],
                                                                    "dtype": "bool"}
    assert inputs["scale"]["shape"] == [] and inputs["h"]["dtype"] == "float16"
    assert inputs["pixels"]["dtype"] == "uint8" and "bias" not in inputs  # has an initializer


def test_an_input_with_an_initializer_keeps_its_default_unless_given(tmp_path):
    source = resolve(str(multi_input_model(tmp_path / "multi.onnx")))
    settings = BenchSettings(batch=1, seq=2, warmup=0, iterations=1, min_duration_s=0.0)

    def run(given):
        result = run_work_item(WorkItem("ort-cpu", {}, source, settings, inputs=given,
                                        keep_outputs=True))
        assert result.ok, result.error
        return {**result.to_dict(), "outputs": result.outputs}

    default = run(InputSpec(values={"scale": ("5",)}))
    zeros = run(InputSpec(values={"scale": ("5",), "bias": ("0",)}))
    assert "bias" not in default["inputs"] and zeros["inputs"]["bias"]["shape"] == [8]
    bias = np.linspace(-1, 1, 8, dtype=np.float32)
    mask = default["outputs"]["y"] != 0
    delta = (default["outputs"]["y"] - zeros["outputs"]["y"])[mask]
    assert mask.any() and np.allclose(delta, np.broadcast_to(bias * 5, mask.shape)[mask])


def test_external_data_loads_on_ort_cpu(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    model = loop_gru_model(folder / "rnn.onnx", external=True)
    assert (folder / "rnn.data").is_file()
    result, document = bench_json(tmp_path, "-b", "cpu", "--model", model, "--no-isolate",
                                  "--seq", "6", "--input", "steps=3")
    assert result.exit_code == 0, result.output
    assert document["results"][0]["inputs"]["x"]["shape"] == [6, 1, 4]


def test_generated_indices_stay_inside_the_tables_they_index(tmp_path):
    model = embedding_model(tmp_path / "emb.onnx", rows=7)
    assert read_signature(model).index_bounds == {"ids": 7, "pos": 9}
    feeds = make_feeds(read_signature(model).inputs, 4, 64, index_bounds={"ids": 7, "pos": 9})
    assert feeds["ids"].max() == 6 and feeds["pos"].max() == 8
    result, _ = bench_json(tmp_path, "-b", "cpu", "--model", model, "--no-isolate",
                           "--batch", "4", "--seq", "64")
    assert result.exit_code == 0, result.output  # ids up to 99 would fail the Gather


def test_string_inputs_run_and_bfloat16_is_refused_clearly_on_ort_cpu(tmp_path):
    strings = identity_model(tmp_path / "s.onnx", TensorProto.STRING)
    result, document = bench_json(tmp_path, "-b", "cpu", "--model", strings, "--no-isolate")
    assert result.exit_code == 0, result.output
    assert document["results"][0]["inputs"]["x"]["dtype"] == "object"
    bf16 = identity_model(tmp_path / "b.onnx", TensorProto.BFLOAT16)
    result, document = bench_json(tmp_path, "-b", "cpu", "--model", bf16, "--no-isolate")
    assert result.exit_code == 3 and document["results"][0]["status"] == "unsupported"
    message = document["results"][0]["error"]["message"]
    assert "cannot pass these values as numpy arrays: x (bfloat16), y (bfloat16)" in message


def test_unresolved_dims_exit_2_before_anything_runs(tmp_path):
    model = image_model(tmp_path / "img.onnx")
    out = tmp_path / "results"
    result = invoke("bench", "-b", "cpu", "--model", model, "--output", out)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "(height)" in lines[0] and "(width)" in lines[0] and "'extra'" in lines[0]
    assert "--dim height=224 --dim width=224 --shape extra=2,128" in lines[0]
    assert not list(out.glob("*.json"))
    example = lines[0].split("e.g.: ", 1)[1].split()[1:]  # the suggested command, runnable
    again = invoke(*example, *FAST, "--output", out, "--no-isolate")
    assert again.exit_code == 0, again.output


def test_wrong_dtype_in_npz_exits_2_naming_input_expected_given(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((1, 2, 8), np.float64))
    result = invoke("bench", "-b", "cpu", "--model", model, "--inputs", data,
                    "--output", tmp_path)
    assert result.exit_code == 2
    assert "input 'x': expected dtype float32" in result.output and "float64" in result.output


def test_npz_reports_generated_inputs_and_uses_its_data(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.ones((2, 3, 8), np.float32), scale=np.array(5, np.int64))
    result, document = bench_json(tmp_path, "-b", "cpu", "--model", model, "--inputs", data,
                                  "--no-isolate")
    assert result.exit_code == 0, result.output
    assert "no arrays for mask, pixels, h; generating them" in result.stderr
    assert document["results"][0]["inputs"]["mask"]["shape"] == [2, 3]  # dims from the file


@pytest.mark.slow
def test_bench_on_two_backends_checks_parity_automatically(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    result, document = bench_json(tmp_path, "-b", "cpu", "-b", "null", "--model", model,
                                  "--seq", "4")
    assert result.exit_code == 1  # null returns zeros: a real mismatch
    ref, other = document["results"]
    assert ref["cross_parity"]["role"] == "reference"
    assert not other["cross_parity"]["passed"]
    assert other["cross_parity"]["outputs"]["y"]["mismatched"] > 0
    saved = json.loads((tmp_path / "r.json").read_text())
    assert "outputs" not in saved["results"][0] and "cross_parity" in saved["results"][1]


def test_check_exits_1_on_mismatch_with_a_table(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    result = invoke("check", "--model", model, "-b", "cpu", "-b", "null", "--seq", "4",
                    "--no-isolate")
    assert result.exit_code == 1
    assert "reference" in result.stdout and "FAIL" in result.stdout
    as_json = invoke("check", "--model", model, "-b", "cpu", "-b", "null", "--seq", "4",
                     "--no-isolate", "--json")
    verdict = json.loads(as_json.stdout)
    assert verdict["passed"] is False
    assert verdict["results"][1]["cross_parity"]["outputs"]["count"]["dtype"] == "int64"


def test_check_takes_the_first_backend_that_ran_as_reference(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    result = invoke("check", "--model", model, "-b", "ascend", "-b", "cpu", "-b", "null",
                    "--seq", "4", "--no-isolate")
    assert result.exit_code == 3  # a backend is unavailable: that outranks the mismatch
    assert "reference: ort-cpu" in result.stdout and "CANNExecutionProvider" in result.stdout
    assert "FAIL" in result.stdout


def test_check_needs_two_backends(tmp_path):
    result = invoke("check", "--model", multi_input_model(tmp_path / "m.onnx"), "-b", "cpu")
    assert result.exit_code == 2 and "at least two --backend" in result.output


def test_inspect_shows_signature_ops_size_and_backends(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    result = invoke("inspect", model, "-b", "cpu", "-b", "null", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert [i["name"] for i in info["inputs"]] == ["x", "mask", "scale", "pixels", "h"]
    assert info["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["batch", "seq", 8]}
    assert [i["name"] for i in info["optional_inputs"]] == ["bias"]
    assert info["opsets"] == {"ai.onnx": 17}
    assert info["ops"]["If"] == 1 and info["ops"]["Neg"] == 1  # subgraphs are counted
    assert info["parameters"] == 8 + 1 + 1 + 1 and info["parameter_bytes"] == 32 + 8 + 8 + 4
    verdicts = {b["backend"]: b["verdict"] for b in info["backends"]}
    assert verdicts == {"ort-cpu": "yes", "null": "unknown"}
    table = invoke("inspect", model, "-b", "cpu")
    assert table.exit_code == 0 and "If" in table.stdout and "optional input" in table.stdout


def test_inspect_says_which_op_a_backend_lacks(tmp_path):
    result = invoke("inspect", custom_op_model(tmp_path / "c.onnx"), "-b", "cpu", "--json")
    (row,) = json.loads(result.stdout)["backends"]
    assert row["verdict"] == "no" and "com.example.FancyOp" in row["detail"]
    assert "Relu" not in row["detail"]


def test_inspect_external_data_sizes_without_loading(tmp_path):
    model = loop_gru_model(tmp_path / "rnn.onnx", external=True)
    info = json.loads(invoke("inspect", model, "-b", "cpu", "--json").stdout)
    assert info["external_data"] and info["parameters"] == 60 + 75 + 30 + 1
    assert {b["backend"]: b["verdict"] for b in info["backends"]} == {"ort-cpu": "yes"}


@pytest.mark.slow
@pytest.mark.skipif("openvino" not in registry.installed_names(),
                    reason="the OpenVINO adapter is not installed on this branch")
@pytest.mark.parametrize("build, extra", [(multi_input_model, ()),
                                          (loop_gru_model, ("--input", "steps=4"))])
def test_openvino_agrees_with_ort_cpu(tmp_path, build, extra):
    """Two real stacks on If, Loop, GRU, float16, bool and uint8 inputs.

    OpenVINO's CPU plugin runs float32 models in bfloat16 on CPUs that have it
    unless INFERENCE_PRECISION_HINT=f32 is set; the GRU then misses float32
    tolerance by ~1e-2, which is exactly what this check must catch.
    """
    model = build(tmp_path / "m.onnx")
    result = invoke("check", "--model", model, "-b", "cpu", "-b", "openvino", "--seq", "5",
                    "--batch", "2", *extra, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["passed"]
