"""The CLI as a user meets it: exit codes, one-line errors, JSON on stdout."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import add_model

from portable.cli import cli

FAST = ["--warmup", "1", "--iterations", "3", "--min-duration", "0"]


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False)


def test_unknown_backend_exits_2_listing_known_names(runner, tmp_path):
    result = invoke(runner, "bench", "--backend", "tpu9000", "--output", str(tmp_path))
    assert result.exit_code == 2
    assert "unknown backend 'tpu9000'" in result.output
    assert "ort-cpu" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("flag", ["--batch", "--seq"])
def test_non_positive_sizes_are_usage_errors(runner, flag):
    result = invoke(runner, "bench", flag, "0")
    assert result.exit_code == 2 and "0 is not in the range x>=1" in result.output


def test_missing_and_corrupt_models_exit_2_naming_the_file(runner, tmp_path):
    missing = invoke(runner, "bench", "--model", str(tmp_path / "gone.onnx"))
    assert missing.exit_code == 2 and "gone.onnx: no such file" in missing.output
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"garbage" * 100)
    result = invoke(runner, "bench", "--model", str(corrupt), "--output", str(tmp_path))
    assert result.exit_code == 2 and "corrupt.onnx: not a valid ONNX file" in result.output


def test_unavailable_backend_exits_3_with_reason_and_hint(runner, tmp_path):
    model = add_model(tmp_path / "add.onnx")
    result = invoke(runner, "bench", "--backend", "ascend", "--model", str(model),
                    "--output", str(tmp_path), "--no-isolate", *FAST)
    assert result.exit_code == 3
    assert "has no CANNExecutionProvider" in result.output and "portable[cann]" in result.output


def test_bad_backend_option_exits_2(runner, tmp_path):
    result = invoke(runner, "bench", "-o", "cpu:bogus=1", "--output", str(tmp_path))
    assert result.exit_code == 2 and "valid: " in result.output


def test_bench_json_on_stdout_and_result_file(runner, tmp_path):
    model = add_model(tmp_path / "add.onnx")
    out = tmp_path / "r.json"
    result = runner.invoke(cli, ["bench", "--backend", "cpu", "--model", str(model),
                                 "--batch", "3", "--json", "--output", str(out),
                                 "--no-isolate", *FAST])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == json.loads(out.read_text())
    cell = document["results"][0]
    assert cell["backend"] == "ort-cpu" and cell["status"] == "ok"
    assert cell["placement"]["nodes_by_device"] == {"cpu": 1}


def test_unwritable_output_fails_before_running(runner, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke(runner, "bench", "--output", str(blocker / "sub"))
    assert result.exit_code == 2 and "cannot create" in result.output


def test_backends_lists_builtin_and_known_stacks(runner):
    result = invoke(runner, "backends", "--json")
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["ort-cpu"]["available"] and rows["torch"]["available"]
    assert not rows["cann"]["available"] and rows["cann"]["hint"]
    assert "null" not in rows


@pytest.mark.parametrize("args", [["--help"], ["backends"], ["bench", "--help"]])
def test_fast_paths_do_not_import_torch_or_ray(args):
    code = (
        "import sys\n"
        "from portable.cli import cli\n"
        f"try:\n    cli({args!r})\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_backends_name_describes_options_and_capabilities(runner):
    info = json.loads(invoke(runner, "backends", "cuda", "--json").output)
    assert info["name"] == "ort-cuda" and "cuda" in info["aliases"]
    assert not info["available"] and "portable[cuda]" in info["install_hint"]
    assert info["options"]["gpu_mem_limit"]["help"]
    assert info["capabilities"]["device_resident_io"] is True
    text = invoke(runner, "backends", "openvino").output
    assert "inference_precision" in text and "f32, bf16, f16" in text
    assert "INFERENCE_PRECISION" in text
    assert invoke(runner, "backends", "cpu").output.startswith("ort-cpu (cpu): available")
