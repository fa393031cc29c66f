"""`portable inspect`: OpenVINO's own op coverage, short listings (issue 15, item 11)."""

import json

from click.testing import CliRunner
from helpers import contrib_op_model
from onnx_models import many_defaults_model, multi_input_model

from portable.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_openvino_coverage_comes_from_query_model(tmp_path):
    info = json.loads(invoke("inspect", multi_input_model(tmp_path / "m.onnx"), "-b", "openvino",
                             "--json").stdout)
    (row,) = info["backends"]
    assert row["verdict"] == "yes" and row["detail"].startswith("openvino query_model on CPU: all")
    fused = json.loads(invoke("inspect", contrib_op_model(tmp_path / "f.onnx"), "-b", "openvino",
                              "--json").stdout)
    assert fused["backends"][0]["verdict"] == "no"
    assert "com.microsoft.MoE" in fused["backends"][0]["detail"]


def test_torch_says_it_runs_only_the_reference_presets(tmp_path):
    info = json.loads(invoke("inspect", multi_input_model(tmp_path / "m.onnx"), "-b", "torch",
                             "--json").stdout)
    (row,) = info["backends"]
    assert row["verdict"] == "no" and "only portable's reference presets" in row["detail"]


def test_unavailable_backends_share_one_line_unless_named(tmp_path):
    model = multi_input_model(tmp_path / "m.onnx")
    table = invoke("inspect", model).stdout
    (line,) = [line for line in table.splitlines() if "│ unavailable" in line]
    assert "cann" in line and "ort-cuda" in line and "portable backends" in line
    named = invoke("inspect", model, "-b", "cann", "-b", "cpu").stdout
    assert "CANNExecutionProvider" in named  # asked for by name: the reason is shown


def test_long_optional_input_listings_are_capped(tmp_path):
    model = many_defaults_model(tmp_path / "d.onnx", count=25)
    table = invoke("inspect", model, "-b", "cpu").stdout
    assert table.count("optional input") == 21 and "… 5 more (--json lists all)" in table
    info = json.loads(invoke("inspect", model, "-b", "cpu", "--json").stdout)
    assert len(info["optional_inputs"]) == 25
