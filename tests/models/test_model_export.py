"""ONNX export of moe-tiny: file format, golden outputs, ONNX Runtime parity, cache."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch

from portable.errors import ModelError
from portable.models import export as export_mod
from portable.models.config import (
    METADATA_CONFIG_KEY,
    METADATA_KIND_KEY,
    MODEL_KIND,
    load_config_from_onnx,
    moe_layer_count,
)
from portable.models.export import ensure_exported, golden_input_ids


@pytest.fixture(scope="module")
def proto(tiny_export):
    return onnx.load(str(tiny_export.onnx_path))


def _dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_export_is_valid_single_file_with_dynamic_axes(tiny_export, proto, tiny_config):
    onnx.checker.check_model(proto)
    onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    # whichever test exported first, a second call is a cache hit on the same files
    again = ensure_exported(tiny_config, cache_dir=tiny_export.onnx_path.parents[2])
    assert again.cached is True and again.onnx_path == tiny_export.onnx_path
    assert {p.name for p in tiny_export.onnx_path.parent.iterdir()} == {
        "model.onnx", "golden.npz", "cases.npz", "config.json"}
    assert all(i.data_location != onnx.TensorProto.EXTERNAL for i in proto.graph.initializer)
    assert {o.domain for o in proto.opset_import} <= {"", "ai.onnx"}
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    (inp,) = proto.graph.input
    assert inp.name == "input_ids" and inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    batch, seq = _dims(inp)
    assert isinstance(batch, str) and isinstance(seq, str) and batch != seq
    logits, expert_ids = proto.graph.output
    assert (logits.name, expert_ids.name) == ("logits", "expert_ids")
    assert _dims(logits) == [batch, seq, tiny_config.vocab_size]
    assert _dims(expert_ids) == [moe_layer_count(tiny_config), batch, seq, tiny_config.top_k]
    # sparse dispatch chooses its form inside the graph
    assert any(n.op_type == "If" for n in proto.graph.node)


def test_metadata_round_trips(tiny_export, proto, tiny_config):
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[METADATA_KIND_KEY] == MODEL_KIND
    assert json.loads(meta[METADATA_CONFIG_KEY]) == tiny_config.to_dict()
    assert load_config_from_onnx(tiny_export.onnx_path) == tiny_config


def test_load_config_from_onnx_without_metadata(tmp_path, proto):
    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    del bare.metadata_props[:]
    onnx.save(bare, tmp_path / "bare.onnx")
    assert load_config_from_onnx(tmp_path / "bare.onnx") is None
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_config_from_onnx(tmp_path / "junk.onnx")
    with pytest.raises(ModelError, match="cannot read"):
        load_config_from_onnx(tmp_path / "missing.onnx")


def test_golden_file(tiny_export, tiny_config, tiny_model):
    with np.load(tiny_export.golden_path, allow_pickle=False) as g:
        golden = dict(g)
    assert set(golden) == {"input.input_ids", "output.logits", "output.expert_ids",
                           "reference.router_scores"}
    assert golden["reference.router_scores"].shape == (1, 4, 64, tiny_config.num_experts)
    ids = golden["input.input_ids"]
    assert ids.dtype == np.int64 and ids.shape == (4, 64)
    assert ids.min() >= 0 and ids.max() < tiny_config.vocab_size
    np.testing.assert_array_equal(ids, golden_input_ids(tiny_config))
    assert golden["output.logits"].dtype == np.float32
    assert golden["output.expert_ids"].dtype == np.int64
    with torch.no_grad():
        logits, expert_ids = tiny_model(torch.from_numpy(ids))
    np.testing.assert_array_equal(golden["output.logits"], logits.numpy())
    np.testing.assert_array_equal(golden["output.expert_ids"], expert_ids.numpy())


@pytest.mark.parametrize(
    "shape",
    [None, (3, 37), (1, 1), (1, 4), (2, 3)],
    ids=["golden", "3x37-grouped", "1x1-gather", "1x4-gather-edge", "2x3-grouped-edge"],
)
def test_onnxruntime_matches_torch(tiny_export, tiny_session, tiny_model, tiny_config, shape):
    """Both branches of the in-graph dispatch choice (tokens*k <= N: gather) are exact."""
    if shape is None:
        with np.load(tiny_export.golden_path, allow_pickle=False) as g:
            ids, ref_logits, ref_ids = (g["input.input_ids"], g["output.logits"],
                                        g["output.expert_ids"])
    else:
        rng = np.random.default_rng(sum(shape))
        ids = rng.integers(0, tiny_config.vocab_size, size=shape, dtype=np.int64)
        with torch.no_grad():
            ref_logits, ref_ids = (t.numpy() for t in tiny_model(torch.from_numpy(ids)))
    logits, expert_ids = tiny_session.run(["logits", "expert_ids"], {"input_ids": ids})
    assert logits.shape == ref_logits.shape and logits.dtype == np.float32
    assert expert_ids.dtype == np.int64
    np.testing.assert_array_equal(expert_ids, ref_ids)
    assert np.abs(logits - ref_logits).max() <= 1e-4


def test_second_call_is_cached(tiny_export, tiny_config, tiny_cache):
    again = ensure_exported(tiny_config, cache_dir=tiny_cache)
    assert again.cached is True
    assert again.onnx_path == tiny_export.onnx_path
    assert again.golden_path == tiny_export.golden_path
    other = dataclasses.replace(tiny_config, seed=9)
    assert export_mod.export_key(other) != export_mod.export_key(tiny_config)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PORTABLE_CACHE", str(tmp_path / "pc"))
    assert export_mod.default_cache_dir() == tmp_path / "pc"
    monkeypatch.delenv("PORTABLE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert export_mod.default_cache_dir() == tmp_path / "xdg" / "portable"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert export_mod.default_cache_dir().parts[-2:] == (".cache", "portable")


def _fake_writers(monkeypatch, before_rename=None):
    def fake_export(config, path, with_past=False):
        path.write_bytes(b"onnx")
        if before_rename:
            before_rename(path)
        return path

    def fake_golden(config, path, with_past=False):
        path.write_bytes(b"npz")
        return path

    monkeypatch.setattr(export_mod, "export_onnx", fake_export)
    monkeypatch.setattr(export_mod, "write_golden", fake_golden)
    monkeypatch.setattr(export_mod, "write_cases", fake_golden)


def test_concurrent_export_uses_the_winner(monkeypatch, tmp_path, tiny_config):
    """If another process renames its export into place first, ours is discarded."""
    target = tmp_path / "models" / export_mod.export_key(tiny_config)

    def other_process_wins(_path):
        target.mkdir(parents=True)
        (target / "model.onnx").write_bytes(b"winner")
        (target / "golden.npz").write_bytes(b"winner")

    _fake_writers(monkeypatch, other_process_wins)
    result = ensure_exported(tiny_config, cache_dir=tmp_path)
    assert result.cached is True
    assert result.onnx_path == target / "model.onnx"
    assert result.onnx_path.read_bytes() == b"winner"
    assert [p.name for p in (tmp_path / "models").iterdir()] == [target.name]  # no temp left


def test_fresh_export_leaves_no_temp_and_incomplete_cache_is_reported(
        monkeypatch, tmp_path, tiny_config):
    _fake_writers(monkeypatch)
    result = ensure_exported(tiny_config, cache_dir=tmp_path)
    assert result.cached is False
    assert [p.name for p in (tmp_path / "models").iterdir()] == [result.onnx_path.parent.name]
    result.golden_path.unlink()
    with pytest.raises(ModelError, match="incomplete.*delete that directory"):
        ensure_exported(tiny_config, cache_dir=tmp_path)


def test_failed_export_cleans_up(monkeypatch, tmp_path, tiny_config):
    def boom(config, path, with_past=False):
        raise ModelError("export exploded")

    monkeypatch.setattr(export_mod, "export_onnx", boom)
    with pytest.raises(ModelError, match="exploded"):
        ensure_exported(tiny_config, cache_dir=tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_dense_softmax_variant_exports_and_matches(tmp_path, tiny_config):
    """The dense dispatch (and softmax gate) path exports too and agrees with torch."""
    import onnxruntime as ort

    from portable.models.moe import build_model

    config = dataclasses.replace(tiny_config, dispatch="dense", gate="softmax")
    path = export_mod.export_onnx(config, tmp_path / "dense.onnx")
    assert load_config_from_onnx(path) == config
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.random.default_rng(3).integers(0, config.vocab_size, (2, 5), dtype=np.int64)
    logits, expert_ids = session.run(None, {"input_ids": ids})
    with torch.no_grad():
        ref_logits, ref_ids = build_model(config)(torch.from_numpy(ids))
    np.testing.assert_array_equal(expert_ids, ref_ids.numpy())
    assert np.abs(logits - ref_logits.numpy()).max() <= 1e-4


def test_package_exports_lazily():
    import portable.models as pm

    assert pm.get_preset("moe-tiny") == pm.PRESETS["moe-tiny"]
    assert pm.ensure_exported is ensure_exported
    with pytest.raises(AttributeError):
        _ = pm.no_such_name
