"""End to end on the reference MoE: export, bench on ort-cpu and torch, parity, dynamic shapes."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from portable import registry
from portable.adapter import SessionConfig
from portable.cli import cli


def test_bench_cpu_and_torch_isolated(tiny_export, tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        "bench", "-b", "cpu", "-b", "torch", "--model", "moe-tiny", "--batch", "2", "--seq", "16",
        "--warmup", "1", "--iterations", "5", "--min-duration", "0", "--threads", "1",
        "--output", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "ort-cpu" in result.stdout and "pass" in result.stdout
    document = json.loads(out.read_text())
    cells = {c["backend"]: c for c in document["results"]}
    assert set(cells) == {"ort-cpu", "torch"}
    for cell in cells.values():
        assert cell["status"] == "ok"
        assert cell["parity"]["passed"] and cell["parity"]["max_abs_error"] <= 1e-4
        assert cell["parity"]["outputs"]["expert_ids"]["mismatched"] == 0
        assert cell["session_create_ms"] > 0 and cell["first_inference_ms"] > 0
        assert cell["memory"]["peak_rss_bytes"] > 10 * 2**20
        moe = cell["moe"]
        assert moe["active_params_per_token"] < moe["total_params"]
        assert sum(moe["expert_load"][0]) == 2 * 16 * document["model"]["config"]["top_k"]
    # the same generated inputs went through both stacks and torch agrees with ORT on them
    assert cells["torch"]["inputs"] == cells["ort-cpu"]["inputs"]
    cross = cells["torch"]["cross_parity"]
    assert cross["reference"] == "ort-cpu outputs" and cross["passed"]
    assert cross["outputs"]["expert_ids"]["mismatched"] == 0
    # each backend ran in its own process: torch's footprint is not charged to ORT
    assert cells["ort-cpu"]["memory"]["peak_rss_bytes"] < cells["torch"]["memory"]["peak_rss_bytes"]


@pytest.mark.parametrize("batch, seq", [(3, 37), (1, 1)])
def test_dynamic_shapes_match_torch(tiny_export, batch, seq):
    feeds = {"input_ids": np.random.default_rng(7).integers(
        0, tiny_export.config.vocab_size, (batch, seq), dtype=np.int64)}
    outputs = {}
    for name in ("ort-cpu", "torch"):
        with registry.create(name).load(tiny_export.onnx_path, SessionConfig(threads=1)) as s:
            outputs[name] = s.run(feeds)
    ort, ref = outputs["ort-cpu"], outputs["torch"]
    assert ort["logits"].shape == (batch, seq, tiny_export.config.vocab_size)
    assert np.abs(ort["logits"] - ref["logits"]).max() <= 1e-4
    assert np.array_equal(ort["expert_ids"], ref["expert_ids"])


def test_torch_backend_refuses_foreign_models(tmp_path):
    from helpers import add_model

    from portable.errors import UnsupportedModel

    with pytest.raises(UnsupportedModel, match="runs only portable.s reference presets"):
        registry.create("torch").load(add_model(tmp_path / "a.onnx"), SessionConfig())


@pytest.mark.slow
def test_check_torch_against_ort_cpu(tiny_export):
    """`portable check` across two real stacks, each in its own process, on the same inputs."""
    result = CliRunner().invoke(cli, [
        "check", "--model", "moe-tiny", "-b", "cpu", "-b", "torch", "--batch", "2", "--seq", "8",
        "--seed", "5", "--json",
    ])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)
    assert verdict["passed"]
    ort_cell, torch_cell = verdict["results"]
    assert ort_cell["cross_parity"]["role"] == "reference"
    assert torch_cell["inputs"] == ort_cell["inputs"]
    outputs = torch_cell["cross_parity"]["outputs"]
    assert outputs["logits"]["passed"] and outputs["logits"]["max_abs_error"] <= 1e-4
    assert outputs["expert_ids"]["mismatched"] == 0
