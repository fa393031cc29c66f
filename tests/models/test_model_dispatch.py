"""Dispatch variants on ONNX Runtime against PyTorch eager: the fused contrib-op export,
experts that receive no tokens, every preset, and how decode cost scales with N."""

from __future__ import annotations

import dataclasses
import statistics

import numpy as np
import onnx
import pytest
import torch

from portable import registry
from portable.adapter import SessionConfig
from portable.models.config import apply_overrides, get_preset
from portable.models.export import ensure_exported, export_onnx
from portable.models.fused import MS_DOMAIN, fused_moe, interleave_swiglu
from portable.models.moe import _dense, build_model
from portable.timing import BenchSettings, measure_latency

TOLERANCE = 1e-4


def _ort_session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _assert_matches_eager(session, model, ids: np.ndarray) -> None:
    logits, expert_ids = session.run(None, {"input_ids": ids})
    with torch.no_grad():
        ref_logits, ref_ids = model(torch.from_numpy(ids))
    np.testing.assert_array_equal(expert_ids, ref_ids.numpy())
    assert np.abs(logits - ref_logits.numpy()).max() <= TOLERANCE


@pytest.fixture(scope="module")
def tiny_exports(tiny_config, tiny_cache, tiny_export):
    """moe-tiny exported with each dispatch (sparse is the session-wide export)."""
    out = {"sparse": tiny_export}
    for dispatch in ("dense", "fused"):
        config = dataclasses.replace(tiny_config, dispatch=dispatch)
        out[dispatch] = ensure_exported(config, cache_dir=tiny_cache)
    return out


def test_fused_export_is_one_contrib_moe_node_per_layer(tiny_exports, tiny_config):
    proto = onnx.load(str(tiny_exports["fused"].onnx_path))
    assert {o.domain for o in proto.opset_import} >= {MS_DOMAIN}
    moe_nodes = [n for n in proto.graph.node if n.op_type == "MoE"]
    assert len(moe_nodes) == tiny_config.layers - tiny_config.dense_layers
    for node in moe_nodes:
        assert node.domain == MS_DOMAIN
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["swiglu_fusion"] == 1 and attrs["k"] == tiny_config.top_k
    # Only the fused variant leaves the standard domain.
    sparse = onnx.load(str(tiny_exports["sparse"].onnx_path))
    assert {o.domain for o in sparse.opset_import} <= {"", "ai.onnx"}


@pytest.mark.parametrize("shape", [(2, 16), (3, 37), (1, 1)])
def test_fused_matches_torch(tiny_exports, tiny_model, tiny_config, shape):
    session = _ort_session(tiny_exports["fused"].onnx_path)
    ids = np.random.default_rng(sum(shape)).integers(0, tiny_config.vocab_size, shape)
    _assert_matches_eager(session, tiny_model, ids)


@torch.no_grad()
def test_fused_op_body_matches_dense_dispatch():
    """The custom op's eager body and its weight layout agree with the reference."""
    g = torch.Generator().manual_seed(0)
    t, n, h, i, k = 9, 6, 8, 4, 2
    x = torch.randn(t, h, generator=g)
    w1, w3 = torch.randn(n, i, h, generator=g), torch.randn(n, i, h, generator=g)
    w2 = torch.randn(n, h, i, generator=g)
    ids = torch.tensor([[0, 2]] * 5 + [[2, 4]] * 4)  # experts 1, 3 and 5 get no tokens
    weights = torch.rand(t, k, generator=g)
    dense_w = torch.zeros(t, n).scatter(1, ids, weights)
    got = fused_moe(x, dense_w, interleave_swiglu(w1, w3), w2, k)
    torch.testing.assert_close(got, _dense(x, ids, weights, w1, w3, w2), rtol=1e-5, atol=1e-5)


def test_torch_backend_runs_the_fused_model_as_reference(tiny_exports):
    exported = tiny_exports["fused"]
    session = registry.create("torch").load(exported.onnx_path, SessionConfig(threads=2))
    with np.load(exported.golden_path) as golden:
        outputs = session.run({"input_ids": golden["input.input_ids"]})
        np.testing.assert_array_equal(outputs["expert_ids"], golden["output.expert_ids"])
        assert np.abs(outputs["logits"] - golden["output.logits"]).max() <= TOLERANCE


def _input_leaving_an_expert_idle(model, config) -> np.ndarray:
    """Five tokens (more assignments than experts: the grouped branch) where some expert of
    the MoE layer receives no token."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        ids = rng.integers(0, config.vocab_size, (1, 5))
        with torch.no_grad():
            _, expert_ids = model(torch.from_numpy(ids))
        if np.bincount(expert_ids.numpy().ravel(), minlength=config.num_experts).min() == 0:
            return ids
    raise AssertionError("no input left an expert idle; the search needs a wider net")


@pytest.mark.parametrize("dispatch", ["sparse", "dense", "fused"])
def test_an_expert_with_zero_tokens(tiny_exports, tiny_model, tiny_config, dispatch):
    ids = _input_leaving_an_expert_idle(tiny_model, tiny_config)
    assert ids.size * tiny_config.top_k > tiny_config.num_experts
    _assert_matches_eager(_ort_session(tiny_exports[dispatch].onnx_path), tiny_model, ids)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["moe-small", "moe-base"])
def test_every_variant_of_the_larger_presets_matches_torch(tmp_path, preset):
    """moe-base exports take ~30 s each, so both presets' variants share one slow test."""
    base = get_preset(preset)
    model = build_model(base)  # dispatch does not change eager outputs
    ids = np.random.default_rng(1).integers(0, base.vocab_size, (3, 37))
    for dispatch in ("sparse", "dense", "fused"):
        path = export_onnx(dataclasses.replace(base, dispatch=dispatch),
                           tmp_path / f"{dispatch}.onnx")
        _assert_matches_eager(_ort_session(path), model, ids)
        path.unlink()


def _decode_burst_ns(session) -> float:
    """Median of one burst of decode-shaped runs, timed by portable's harness."""
    step = session.prepare({"input_ids": np.zeros((1, 1), np.int64)})
    settings = BenchSettings(warmup=2, iterations=30, min_duration_s=0.0, max_duration_s=20.0)
    return statistics.median(measure_latency(step, session.synchronize, settings).samples_ns)


@pytest.mark.slow
def test_sparse_decode_cost_does_not_grow_like_dense(tmp_path):
    """Within one run: from N=8 to N=64 experts (top_k=2), dense decode-shaped latency grows
    with N, sparse stays nearly flat. Ratios only, with a generous margin."""
    base = apply_overrides(get_preset("moe-small"), ["layers=2", "vocab_size=256", "top_k=2",
                                                     "n_groups=1", "topk_groups=1"])
    paths = {}
    for dispatch in ("sparse", "dense"):
        for n in (8, 64):
            config = dataclasses.replace(base, num_experts=n, dispatch=dispatch)
            paths[(dispatch, n)] = export_onnx(config, tmp_path / f"{dispatch}{n}.onnx")
    adapter = registry.create("ort-cpu")
    # One thread: a busy second core (CI, other jobs) then slows every case alike.
    sessions = {key: adapter.load(path, SessionConfig(threads=1)) for key, path in paths.items()}
    samples: dict = {key: [] for key in paths}
    for _ in range(9):  # interleaved rounds: load bursts hit every case alike
        for key, session in sessions.items():
            samples[key].append(_decode_burst_ns(session))
    p50 = {key: statistics.median(values) for key, values in samples.items()}
    sparse_growth = p50[("sparse", 64)] / p50[("sparse", 8)]
    dense_growth = p50[("dense", 64)] / p50[("dense", 8)]
    # Measured quiet: sparse ~1.0-1.3x, dense ~9x. The margins absorb a noisy machine.
    assert sparse_growth < 2.5, p50
    assert sparse_growth * 2 < dense_growth, p50


def _node_count(graph) -> int:
    """Nodes of a graph and, recursively, of its subgraphs (the `If` branches)."""
    return sum(1 + sum(_node_count(a.g) for a in node.attribute
                       if a.type == onnx.AttributeProto.GRAPH)
               for node in graph.node)


@pytest.mark.slow
def test_sparse_node_count_does_not_depend_on_the_number_of_experts(tmp_path, tiny_config):
    """Sparse dispatch (both `If` branches, overflow tier included) is O(1) nodes in N."""
    counts = set()
    for n in (8, 64):
        config = dataclasses.replace(tiny_config, num_experts=n, n_groups=1, topk_groups=1)
        counts.add(_node_count(onnx.load(str(export_onnx(config, tmp_path / f"{n}.onnx"))).graph))
    assert len(counts) == 1, counts
