"""The reference MoE as a decoder with a KV cache, in the Hugging Face convention.

Inputs `input_ids [b, s]`, `attention_mask [b, past+s]`, `position_ids [b, s]` (int64) and,
per layer i, `past_key_values.{i}.key` / `.value` `[b, heads, past, head_dim]`; outputs
`logits`, `present.{i}.key` / `.value` `[b, heads, past+s, head_dim]` and `expert_ids`.
Prefill runs with past = 0.

`greedy_generate` is the reference generation: PyTorch eager with its own cache, greedy,
recording the top-1/top-2 logit margin of every step so a divergence elsewhere can be
told apart from a near-tie.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .config import MoEConfig
from .moe import MoETransformer

INPUT_NAMES = ("input_ids", "attention_mask", "position_ids")
#: The golden generation: the golden prompt ([2, 16] from the seed), then this many tokens.
GOLDEN_GEN_LEN = 16


def past_names(layers: int) -> list[str]:
    return [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def present_names(layers: int) -> list[str]:
    return [f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]


def input_names(config: MoEConfig) -> list[str]:
    return [*INPUT_NAMES, *past_names(config.layers)]


def output_names(config: MoEConfig) -> list[str]:
    return ["logits", *present_names(config.layers), "expert_ids"]


def empty_past(config: MoEConfig, batch: int, length: int = 0) -> list[Tensor]:
    """Zero keys and values [batch, heads, length, head_dim] for every layer, flat."""
    shape = (batch, config.heads, length, config.head_dim)
    return [torch.zeros(shape) for _ in range(2 * config.layers)]


def prefill_feeds(config: MoEConfig, prompt_ids: np.ndarray) -> dict[str, np.ndarray]:
    """The first step's inputs for `prompt_ids` [b, P]: full mask, positions 0..P-1, no past."""
    b, p = prompt_ids.shape
    feeds = {
        "input_ids": prompt_ids.astype(np.int64),
        "attention_mask": np.ones((b, p), dtype=np.int64),
        "position_ids": np.broadcast_to(np.arange(p, dtype=np.int64), (b, p)).copy(),
    }
    empty = np.zeros((b, config.heads, 0, config.head_dim), dtype=np.float32)
    feeds.update({name: empty for name in past_names(config.layers)})
    return feeds


def greedy_generate(model: MoETransformer, prompt_ids: np.ndarray,
                    gen_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy generation in eager PyTorch with the module's own cache.

    Returns the generated ids int64 [b, gen_len] and, per step and sequence, the margin
    between the largest and second-largest logit, float32 [b, gen_len].
    """
    ids = torch.from_numpy(np.ascontiguousarray(prompt_ids, dtype=np.int64))
    b, p = ids.shape
    flat = empty_past(model.config, b)
    past = list(zip(flat[0::2], flat[1::2], strict=True))
    mask = torch.ones(b, p + gen_len, dtype=torch.int64)
    tokens, margins = [], []
    step = ids
    with torch.inference_mode():
        for _ in range(gen_len):
            start, length = past[0][0].shape[2], step.shape[1]
            positions = torch.arange(start, start + length).expand(b, length)
            logits, past, _ = model.forward_with_past(
                step, mask[:, :start + length], positions, past)
            top = logits[:, -1].topk(2, dim=-1).values
            margins.append(top[:, 0] - top[:, 1])
            step = logits[:, -1].argmax(dim=-1, keepdim=True)
            tokens.append(step[:, 0])
    return torch.stack(tokens, 1).numpy(), torch.stack(margins, 1).numpy()


__all__ = [
    "GOLDEN_GEN_LEN",
    "empty_past",
    "greedy_generate",
    "input_names",
    "output_names",
    "past_names",
    "prefill_feeds",
    "present_names",
]
