"""A decoder built with `transformers` (Llama config, GQA, random weights, no downloads),
exported with past and driven by the core generation loop on two stacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers  # `make test` installs the hf extra: missing, it fails, never skips

from portable import registry
from portable.adapter import SessionConfig
from portable.generation import DecoderSpec, generate

# The exporter warns that batch/seq/past_seq, shared by several inputs, are named once.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:# The axis name")]

LAYERS, HEADS, KV_HEADS, HIDDEN, VOCAB = 2, 4, 2, 64, 256


def _config():
    return transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256,
        initializer_range=0.2,
    )


class WithPast(torch.nn.Module):
    """Flat tensors in and out (HF names), a DynamicCache inside."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = transformers.DynamicCache(config=self.model.config)
        for i in range(LAYERS):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         position_ids=position_ids, past_key_values=cache, use_cache=True)
        presents = [t for layer in out.past_key_values.layers for t in (layer.keys, layer.values)]
        return (out.logits, *presents)


def _names(prefix):
    return [f"{prefix}.{i}.{kind}" for i in range(LAYERS) for kind in ("key", "value")]


@pytest.fixture(scope="module")
def hf_decoder(tiny_cache):
    """(the eager model, its ONNX export with past), exported once per test cache."""
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(_config()).eval()
    path = tiny_cache / "hf-llama-gqa" / "model.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        b, s, p = 2, 3, 5
        head_dim = HIDDEN // HEADS
        past = [torch.zeros(b, KV_HEADS, p, head_dim) for _ in range(2 * LAYERS)]
        args = (torch.zeros(b, s, dtype=torch.int64), torch.ones(b, p + s, dtype=torch.int64),
                torch.arange(p, p + s).expand(b, s).contiguous(), *past)
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
        past_seq = torch.export.Dim("past_seq")
        shapes = ({0: batch, 1: seq}, {0: batch, 1: torch.export.Dim.AUTO}, {0: batch, 1: seq},
                  tuple({0: batch, 2: past_seq} for _ in past))
        program = torch.onnx.export(
            WithPast(model).eval(), args, dynamo=True, dynamic_shapes=shapes, opset_version=18,
            input_names=["input_ids", "attention_mask", "position_ids", *_names("past_key_values")],
            output_names=["logits", *_names("present")], verbose=False,
        )
        program.save(str(path))
    return model, path


def test_cpu_and_openvino_generate_transformers_greedy_tokens(hf_decoder):
    model, path = hf_decoder
    prompt = np.random.default_rng(0).integers(0, VOCAB, size=(2, 8), dtype=np.int64)
    tokens = {}
    for backend in ("ort-cpu", "openvino"):
        with registry.create(backend).load(path, SessionConfig(threads=2)) as session:
            spec = DecoderSpec.of(session)
            assert (spec.layers, spec.kv_heads, spec.head_dim) == (LAYERS, KV_HEADS, 16)
            tokens[backend] = generate(session, prompt, 12, spec).token_ids
    np.testing.assert_array_equal(tokens["ort-cpu"], tokens["openvino"])
    ids = torch.from_numpy(prompt)
    expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                              max_new_tokens=12, min_new_tokens=12)[:, 8:]
    np.testing.assert_array_equal(tokens["ort-cpu"], expected.numpy())
