"""What users' models are fed, and what the run says about it: issue 15, items 2, 6, 9."""

import json

import numpy as np
from click.testing import CliRunner
from onnx import TensorProto, helper
from onnx_models import image_model, multi_input_model, stored_dynamic_dims_model

from portable.cli import cli
from portable.signature import read_signature

FAST = ["--warmup", "1", "--iterations", "3", "--min-duration", "0"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_dim_stored_as_minus_one_is_dynamic_and_takes_a_shape(tmp_path):
    model = stored_dynamic_dims_model(tmp_path / "m.onnx")
    assert read_signature(model).inputs[0].shape == (None, 3, None, None)
    result = invoke("check", "--model", model, "-b", "cpu", "-b", "openvino",
                    "--shape", "x=1,3,48,192", "--no-isolate", "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["passed"] and verdict["results"][0]["inputs"]["x"]["shape"] == [1, 3, 48, 192]


def test_a_zero_dim_stays_fixed(tmp_path):
    """ONNX Runtime and OpenVINO both accept only an empty tensor where a file says 0."""
    v = helper.make_tensor_value_info
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "zero",
                              [v("x", TensorProto.FLOAT, [0, 4])],
                              [v("y", TensorProto.FLOAT, [0, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "zero.onnx"
    path.write_bytes(model.SerializeToString())
    assert read_signature(path).inputs[0].shape == (0, 4)


def test_seq_is_refused_for_a_model_without_a_sequence(tmp_path):
    model = stored_dynamic_dims_model(tmp_path / "m.onnx")
    result = invoke("bench", "-b", "cpu", "--model", model, "--shape", "x=1,3,8,8",
                    "--seq", "77", "--output", tmp_path)
    assert result.exit_code == 2
    assert "--seq" in result.output and "has no sequence dimension" in result.output
    assert not list(tmp_path.glob("*.json"))


def test_unresolved_dims_suggest_real_sizes_and_no_seq_for_an_image(tmp_path):
    model = image_model(tmp_path / "img.onnx")
    result = invoke("bench", "-b", "cpu", "--model", model, "--output", tmp_path / "r")
    assert result.exit_code == 2
    line = result.output.strip()
    assert line.endswith("--batch=1 --dim height=224 --dim width=224 --shape extra=2,128")
    assert "--seq" not in line.split("e.g.: ", 1)[1]  # the example must run as printed


def test_save_inputs_writes_what_ran_and_inputs_reads_it_back(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    saved = tmp_path / "in.npz"
    first = invoke("bench", "-b", "cpu", "--model", model, "--seq", "4", "--batch", "2",
                   "--no-isolate", *FAST, "--json", "--output", tmp_path / "a.json",
                   "--save-inputs", saved)
    assert first.exit_code == 0, first.output
    assert f"inputs: {saved}" in first.stderr
    with np.load(saved, allow_pickle=False) as data:
        assert data["x"].shape == (2, 4, 8) and data["mask"].all()  # a mask of ones
    again = invoke("bench", "-b", "cpu", "--model", model, "--inputs", saved, "--no-isolate",
                   *FAST, "--json", "--output", tmp_path / "b.json")
    assert again.exit_code == 0, again.output
    digests = [json.loads(r.stdout)["results"][0]["inputs"] for r in (first, again)]
    assert digests[0] == digests[1]  # the very arrays that ran


def test_save_inputs_on_a_sweep_writes_one_file_per_batch_and_check_takes_it(tmp_path):
    model = multi_input_model(tmp_path / "multi.onnx")
    result = invoke("bench", "-b", "null", "--model", model, "--seq", "3", "--batch", "1,2",
                    "--no-isolate", *FAST, "--output", tmp_path / "r.json",
                    "--save-inputs", tmp_path / "in.npz")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("in*.npz")) == ["in.batch1.npz", "in.batch2.npz"]
    check = invoke("check", "--model", model, "-b", "cpu", "-b", "null", "--seq", "3",
                   "--no-isolate", "--save-inputs", tmp_path / "check.txt")
    assert check.exit_code == 2 and "must end in .npz" in check.output
