"""Figures mean what their labels say: batch, seq and throughput come from the inputs that ran."""

import json

import numpy as np
from click.testing import CliRunner
from onnx_models import embedding_model, image_model

from portable.cli import cli

FAST = ["--warmup", "0", "--iterations", "3", "--min-duration", "0", "--no-isolate"]


def _cell(tmp_path, *args):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, ["bench", "-b", "cpu", *args, "--output", str(out), *FAST])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["results"][0], result.output


def test_a_whole_shape_sets_the_batch_and_an_image_model_has_no_sequence(tmp_path):
    model = image_model(tmp_path / "image.onnx")
    cell, table = _cell(tmp_path, "--model", str(model), "--shape", "images=4,3,32,32",
                        "--shape", "extra=2,5")
    assert cell["batch"] == 4 and cell["seq"] is None
    assert cell["throughput"]["tokens_per_s"] is None
    assert cell["throughput"]["samples_per_s"] > 0
    assert "batch 4" in table and "4×128" not in table


def test_supplied_arrays_set_batch_and_sequence(tmp_path):
    model = embedding_model(tmp_path / "emb.onnx")
    data = tmp_path / "real.npz"
    np.savez(data, ids=np.zeros((2, 64), np.int64), pos=np.zeros((2, 64), np.int32))
    cell, table = _cell(tmp_path, "--model", str(model), "--inputs", str(data))
    assert (cell["batch"], cell["seq"]) == (2, 64)
    tokens = cell["throughput"]["tokens_per_s"]
    assert tokens == cell["throughput"]["samples_per_s"] * 64
    assert "2×64" in table
