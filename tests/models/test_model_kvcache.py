"""The reference MoE with a KV cache: export, golden generation, cache correctness, and
greedy parity of every CPU stack through the core generation loop."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from portable import registry
from portable.adapter import SessionConfig
from portable.generation import DecoderSpec, generate, token_parity
from portable.kit.ort import CPU_PROVIDER, IoDevice, OrtSession
from portable.models import get_preset
from portable.models.cache import export_key
from portable.models.export import ensure_exported, generation_prompt_ids, load_generation
from portable.models.kvcache import GOLDEN_GEN_LEN, greedy_generate, prefill_feeds
from portable.models.moe import build_model

#: The smallest top-1/top-2 margin of every preset's golden greedy path is above this
#: (moe-tiny 0.018, moe-small 0.019, moe-base 0.016): far above float32 error (~1e-6).
CLEAR_MARGIN = 0.01


@pytest.fixture(scope="module")
def past_export(tiny_config, tiny_cache):
    return ensure_exported(tiny_config, cache_dir=tiny_cache, with_past=True)


@pytest.fixture(scope="module")
def golden(past_export):
    return load_generation(past_export)


def _ort(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def test_with_past_export_is_cached_apart_and_follows_the_convention(
        past_export, tiny_export, tiny_config):
    assert past_export.onnx_path.parent != tiny_export.onnx_path.parent
    assert export_key(tiny_config) == export_key(tiny_config, with_past=False)
    assert [i.name for i in onnx.load(str(tiny_export.onnx_path)).graph.input] == ["input_ids"]
    proto = onnx.load(str(past_export.onnx_path))
    onnx.checker.check_model(proto)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*proto.graph.input, *proto.graph.output)}
    heads, head_dim = tiny_config.heads, tiny_config.head_dim
    assert dims["input_ids"] == dims["position_ids"] == ["batch", "seq"]
    assert dims["past_key_values.1.value"] == ["batch", heads, "past_seq", head_dim]
    assert dims["present.0.key"] == ["batch", heads, "past_seq + seq", head_dim]
    assert dims["attention_mask"] == ["batch", "past_seq + seq"]
    assert [o.name for o in proto.graph.output][-1] == "expert_ids"
    spec = DecoderSpec.detect(*_signature(past_export))
    assert (spec.layers, spec.kv_heads, spec.head_dim) == (tiny_config.layers, heads, head_dim)


def _signature(exported):
    from portable.signature import read_signature

    sig = read_signature(exported.onnx_path)
    return sig.inputs, sig.outputs


def test_golden_generation_is_eager_greedy_with_a_clear_margin(golden, tiny_config):
    np.testing.assert_array_equal(golden["prompt_ids"], generation_prompt_ids(tiny_config))
    assert golden["token_ids"].shape == golden["margins"].shape == (2, GOLDEN_GEN_LEN)
    assert float(golden["min_margin"]) == pytest.approx(golden["margins"].min())
    assert golden["min_margin"] > CLEAR_MARGIN


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["moe-small", "moe-base"])
def test_larger_presets_have_a_clear_greedy_margin(preset):
    config = get_preset(preset)
    _, margins = greedy_generate(build_model(config), generation_prompt_ids(config), GOLDEN_GEN_LEN)
    assert margins.min() > CLEAR_MARGIN


def test_decode_step_matches_the_no_cache_forward(past_export, tiny_session, golden, tiny_config):
    """Prefill 16 tokens, decode the 17th with the cache: its logits equal the no-cache
    forward's last position on all 17 (and the experts it routes to are the same)."""
    cached = _ort(past_export.onnx_path)
    names = [o.name for o in cached.get_outputs()]
    prompt = golden["prompt_ids"]
    feeds = prefill_feeds(tiny_config, prompt)
    prefill = dict(zip(names, cached.run(None, feeds), strict=True))
    token = golden["token_ids"][:, :1]
    step = {"input_ids": token, "attention_mask": np.ones((2, 17), np.int64),
            "position_ids": np.full((2, 1), 16, np.int64)}
    step.update({n.replace("present", "past_key_values"): v
                 for n, v in prefill.items() if n.startswith("present.")})
    decoded = dict(zip(names, cached.run(None, step), strict=True))
    full_logits, full_experts = tiny_session.run(None, {"input_ids": np.hstack([prompt, token])})
    np.testing.assert_allclose(prefill["logits"], full_logits[:, :16], atol=1e-4)
    np.testing.assert_allclose(decoded["logits"][:, 0], full_logits[:, 16], atol=1e-4)
    np.testing.assert_array_equal(decoded["expert_ids"][:, :, 0], full_experts[:, :, 16])
    assert decoded["present.1.key"].shape == (2, tiny_config.heads, 17, tiny_config.head_dim)


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino", "torch"])
def test_every_cpu_stack_generates_the_golden_tokens(backend, past_export, golden):
    with registry.create(backend).load(past_export.onnx_path, SessionConfig(threads=2)) as s:
        run = generate(s, golden["prompt_ids"], GOLDEN_GEN_LEN)
    parity = token_parity(run.token_ids, golden["token_ids"], golden["margins"], 1e-4)
    assert parity["token_match"] == 1.0 and parity["first_divergence"] is None
    np.testing.assert_allclose(run.margins, golden["margins"], atol=1e-4)


def test_ort_io_binding_cache_matches_the_host_loop(past_export, golden):
    """With an IO device, OrtSession.bind_cache keeps the presents as OrtValues there (here
    CPU memory standing in for a device); same tokens and margins as plain run()."""
    with OrtSession(_ort(past_export.onnx_path), "cpu", (CPU_PROVIDER,), IoDevice("cpu"),
                    ort) as s:
        spec = DecoderSpec.of(s)
        assert s.bind_cache(spec.present_to_past(), ("logits",)) is not None
        bound = generate(s, golden["prompt_ids"], GOLDEN_GEN_LEN, spec)
        plain = generate(s, golden["prompt_ids"], GOLDEN_GEN_LEN, spec, device_cache=False)
    np.testing.assert_array_equal(bound.token_ids, plain.token_ids)
    np.testing.assert_allclose(bound.margins, plain.margins, atol=1e-6)
