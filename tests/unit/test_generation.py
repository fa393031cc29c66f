"""The generation loop on a fake decoder: signature detection, cache feeding, parity."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from portable.adapter import Placement, Session, TensorSpec
from portable.errors import InputError, ModelError
from portable.generation import DecoderSpec, generate, summarize_runs, token_parity

VOCAB, KV_HEADS, HEAD_DIM, LAYERS = 32, 2, 4, 2


def _signature(layers: int = LAYERS, kv_heads: int = KV_HEADS, dtype: str = "float32"):
    cache = ("batch", kv_heads, "past", HEAD_DIM)
    inputs = [TensorSpec("input_ids", ("batch", "seq"), "int64"),
              TensorSpec("attention_mask", ("batch", "total"), "int64"),
              TensorSpec("position_ids", ("batch", "seq"), "int64")]
    outputs = [TensorSpec("logits", ("batch", "seq", VOCAB), "float32")]
    for i in range(layers):
        for kind in ("key", "value"):
            inputs.append(TensorSpec(f"past_key_values.{i}.{kind}", cache, dtype))
            outputs.append(TensorSpec(f"present.{i}.{kind}", cache, dtype))
    return tuple(inputs), tuple(outputs)


class FakeDecoder(Session):
    """Next token = (sum of every token in the cache + the last position) % VOCAB.

    The cache stores each token id in its keys, so a loop that does not feed the presents
    back as the past generates other tokens.
    """

    def __init__(self, dtype: str = "float32"):
        self.inputs, self.outputs = _signature(dtype=dtype)
        self.calls: list[dict[str, tuple[int, ...]]] = []

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append({k: v.shape for k, v in feeds.items()})
        ids, positions = feeds["input_ids"], feeds["position_ids"]
        b, s = ids.shape
        assert feeds["attention_mask"].shape == (b, feeds["past_key_values.0.key"].shape[2] + s)
        new = np.broadcast_to(ids[:, None, :, None], (b, KV_HEADS, s, HEAD_DIM))
        out = {}
        for i in range(LAYERS):
            for kind in ("key", "value"):
                past = feeds[f"past_key_values.{i}.{kind}"]
                out[f"present.{i}.{kind}"] = np.concatenate([past, new.astype(past.dtype)], 2)
        total = out["present.0.key"][:, 0, :, 0].sum(axis=1).astype(np.int64)
        nxt = (total + positions[:, -1]) % VOCAB
        logits = np.zeros((b, s, VOCAB), np.float32)
        logits[np.arange(b), -1, nxt] = 2.0
        logits[np.arange(b), -1, (nxt + 1) % VOCAB] = 0.5
        out["logits"] = logits
        return out

    def placement(self) -> Placement:
        return Placement("cpu", {})


def _expected(prompt: np.ndarray, gen_len: int) -> np.ndarray:
    tokens, seqs = [], [list(row) for row in prompt]
    for _ in range(gen_len):
        step = [(sum(seq) + len(seq) - 1) % VOCAB for seq in seqs]
        tokens.append(step)
        for seq, t in zip(seqs, step, strict=True):
            seq.append(t)
    return np.array(tokens).T


def test_detects_the_convention_with_gqa_and_fp16():
    spec = DecoderSpec.detect(*_signature(layers=3, kv_heads=1, dtype="float16"))
    assert (spec.layers, spec.kv_heads, spec.head_dim, spec.cache_dtype) == (3, 1, 4, "float16")
    assert spec.present_to_past()["present.2.value"] == "past_key_values.2.value"
    assert spec.cache_bytes(batch=2, length=10) == 3 * 2 * 2 * 1 * 10 * 4 * 2


@pytest.mark.parametrize(("drop", "message"), [
    ("present.", "no present.* outputs"),
    ("past_key_values.1.value", "past_key_values.* inputs missing for layer 1 value"),
    ("logits", "no logits output"),
])
def test_a_model_off_the_convention_says_what_is_missing(drop, message):
    inputs, outputs = _signature()
    inputs = tuple(t for t in inputs if not t.name.startswith(drop))
    outputs = tuple(t for t in outputs if not t.name.startswith(drop))
    with pytest.raises(ModelError, match=message):
        DecoderSpec.detect(inputs, outputs)


def test_unknown_inputs_and_symbolic_heads_are_refused():
    inputs, outputs = _signature()
    with pytest.raises(ModelError, match="cannot feed: token_type_ids"):
        DecoderSpec.detect((*inputs, TensorSpec("token_type_ids", ("b", "s"), "int64")), outputs)
    symbolic = tuple(TensorSpec(t.name, ("b", "heads", "p", HEAD_DIM), t.dtype)
                     if t.name.startswith("past") else t for t in inputs)
    with pytest.raises(ModelError, match="must be fixed sizes"):
        DecoderSpec.detect(symbolic, outputs)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_generate_feeds_the_cache_back_and_times_every_step(dtype):
    session = FakeDecoder(dtype)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    run = generate(session, prompt, 5)
    np.testing.assert_array_equal(run.token_ids, _expected(prompt, 5))
    assert run.step_ns.shape == (5,) and (run.step_ns > 0).all()
    np.testing.assert_allclose(run.margins, 1.5)
    # prefill with an empty past, then one token per step against a growing cache
    assert session.calls[0]["past_key_values.0.key"] == (2, KV_HEADS, 0, HEAD_DIM)
    assert session.calls[0]["input_ids"] == (2, 3)
    assert session.calls[4]["input_ids"] == (2, 1)
    assert session.calls[4]["past_key_values.1.value"] == (2, KV_HEADS, 6, HEAD_DIM)
    itemsize = np.dtype(dtype).itemsize
    assert run.kv_cache_bytes == LAYERS * 2 * 2 * KV_HEADS * 7 * HEAD_DIM * itemsize
    summary = summarize_runs([run, run])
    assert summary["tpot_ms"]["count"] == 8 and summary["ttft_ms"]["count"] == 2
    assert summary["output_tokens_per_s"] > 0 and len(summary["inter_token_ns"][0]) == 4


def test_generate_rejects_bad_prompts():
    with pytest.raises(InputError, match="prompt ids"):
        generate(FakeDecoder(), np.zeros((2, 0), np.int64), 3)
    with pytest.raises(InputError, match="gen_len"):
        generate(FakeDecoder(), np.ones((1, 2), np.int64), 0)


def test_token_parity_tells_a_near_tie_from_a_real_disagreement():
    reference = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    margins = np.array([[1.0, 1.0, 0.001, 1.0], [1.0, 0.5, 2.0, 1.0]])
    same = token_parity(reference, reference, margins, 0.01)
    assert same["token_match"] == 1.0 and same["first_divergence"] is None
    tie = token_parity(np.array([[1, 2, 9, 9], [5, 6, 7, 8]]), reference, margins, 0.01)
    assert tie["token_match"] == 0.75 and tie["first_divergence"] == 2
    assert tie["reference_margin"] == pytest.approx(0.001) and not tie["real_disagreement"]
    real = token_parity(np.array([[1, 2, 3, 4], [5, 0, 7, 8]]), reference, margins, 0.01)
    assert real["first_divergence"] == 1 and real["real_disagreement"]
    with pytest.raises(InputError, match="differ in shape"):
        token_parity(reference[:, :2], reference, margins, 0.01)
