"""`portable check --model converted.onnx --reference-model original.onnx`: the everyday
question of a port ("I quantized it: does it still agree?"), by the precision's rules."""

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from portable.cli import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_cache):
    folder = tmp_path_factory.mktemp("port")
    runner = CliRunner()
    for name, extra in (("f.onnx", []), ("q.onnx", ["--precision", "int8"])):
        result = runner.invoke(cli, ["export", "--model", "moe-tiny", *extra,
                                     "--output", str(folder / name)])
        assert result.exit_code == 0, result.output
    return folder


def _check(*args):
    return CliRunner().invoke(cli, ["check", *args, "-b", "cpu", "--seq", "16"])


@pytest.mark.slow
def test_a_quantized_model_agrees_with_its_original_by_int8_rules(files):
    result = _check("--model", str(files / "q.onnx"), "--reference-model", str(files / "f.onnx"),
                    "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    report = verdict["results"][0]["cross_parity"]
    assert verdict["passed"] and report["precision"]["precision"] == "int8"
    assert report["precision"]["passed"] and "(int8)" in report["precision"]["summary"]
    assert report["reference"].startswith("ort-cpu · f")


@pytest.mark.slow
def test_a_broken_conversion_fails(files):
    model = onnx.load(str(files / "f.onnx"))
    biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    broken = numpy_helper.to_array(biggest) * 1.5  # a bad conversion of the largest weight
    biggest.CopyFrom(numpy_helper.from_array(broken.astype(np.float32), biggest.name))
    onnx.save(model, str(files / "bad.onnx"))
    result = _check("--model", str(files / "bad.onnx"), "--reference-model",
                    str(files / "f.onnx"))
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output


def test_one_backend_needs_a_reference_model(files):
    result = _check("--model", str(files / "q.onnx"))
    assert result.exit_code == 2 and "--reference-model" in result.output
