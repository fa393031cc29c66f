"""Autoregressive generation with a KV cache, on any session whose model follows the
Hugging Face decoder convention.

The convention (what `DecoderSpec.detect` checks): inputs `input_ids [batch, seq]`,
optionally `attention_mask [batch, past+seq]` and `position_ids [batch, seq]` (integers),
and per layer i `past_key_values.{i}.key` / `.value` `[batch, kv_heads, past, head_dim]`;
outputs `logits [batch, seq, vocab]` and `present.{i}.key` / `.value`. Other outputs
(the reference MoE's `expert_ids`) are allowed and ignored. Prefill runs with past = 0.

One generation (`generate`) = prefill of the prompt, then gen_len - 1 decode steps, each
feeding the presents back as the past, greedy. Each step is timed with `perf_counter_ns`
around the step and `session.synchronize()`; the argmax and the next step's feeds are
computed outside the timed region. The cache lives wherever the session's `bind_cache`
hook keeps it (see `portable.adapter.Session.bind_cache`); without that hook the loop
keeps it as host arrays and goes through `Session.run`.

This module is core: it imports no backend and not the reference model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from portable.adapter import CacheStep, Session, TensorSpec
from portable.errors import InputError, ModelError
from portable.stats import summarize_ns

_PAST = re.compile(r"past_key_values\.(\d+)\.(key|value)")
_PRESENT = re.compile(r"present\.(\d+)\.(key|value)")
CACHE_DTYPES = ("float32", "float16")
_INDEX_DTYPES = ("int64", "int32")


@dataclass(frozen=True)
class DecoderSpec:
    """What the loop needs to know about a decoder, read from its signature."""

    past: tuple[tuple[str, str], ...]
    """Per layer, the (key, value) past input names."""
    present: tuple[tuple[str, str], ...]
    """Per layer, the (key, value) present output names."""
    kv_heads: int
    head_dim: int
    cache_dtype: str
    attention_mask: str | None = "attention_mask"
    mask_dtype: str = "int64"
    position_ids: str | None = "position_ids"
    position_dtype: str = "int64"
    input_ids: str = "input_ids"
    logits: str = "logits"

    @property
    def layers(self) -> int:
        return len(self.past)

    def cache_bytes(self, batch: int, length: int) -> int:
        """Bytes of keys and values for `batch` sequences of `length` cached tokens."""
        per_layer = 2 * batch * self.kv_heads * length * self.head_dim
        return self.layers * per_layer * np.dtype(self.cache_dtype).itemsize

    def present_to_past(self) -> dict[str, str]:
        return {out: inp for outs, inps in zip(self.present, self.past, strict=True)
                for out, inp in zip(outs, inps, strict=True)}

    @classmethod
    def detect(cls, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> DecoderSpec:
        """Read the spec from a session's (or a `Signature`'s) inputs and outputs.

        Raises ModelError naming what is missing or unexpected when the model does not
        follow the convention.
        """
        by_in = {t.name: t for t in inputs}
        by_out = {t.name: t for t in outputs}
        problems: list[str] = []
        if "input_ids" not in by_in:
            problems.append("no input_ids input")
        if "logits" not in by_out:
            problems.append("no logits output")
        past = _layers(by_in, _PAST, "past_key_values.*", "inputs", problems)
        present = _layers(by_out, _PRESENT, "present.*", "outputs", problems)
        if past and present and len(past) != len(present):
            problems.append(f"{len(past)} layers of past_key_values.* inputs but "
                            f"{len(present)} of present.* outputs")
        known = {"input_ids", "attention_mask", "position_ids"} | {n for p in past for n in p}
        extra = sorted(set(by_in) - known)
        if extra:
            problems.append(f"inputs the loop cannot feed: {', '.join(extra)}")
        for name in ("attention_mask", "position_ids", "input_ids"):
            if name in by_in and by_in[name].dtype not in _INDEX_DTYPES:
                problems.append(f"{name} is {by_in[name].dtype}, expected int64 or int32")
        if problems:
            raise ModelError("not a decoder with a KV cache in the Hugging Face convention: "
                             + "; ".join(problems))
        kv_heads, head_dim, dtype = _cache_layout([by_in[n] for p in past for n in p])
        mask, positions = by_in.get("attention_mask"), by_in.get("position_ids")
        return cls(
            past=past, present=present, kv_heads=kv_heads, head_dim=head_dim, cache_dtype=dtype,
            attention_mask=mask.name if mask else None,
            mask_dtype=mask.dtype if mask else "int64",
            position_ids=positions.name if positions else None,
            position_dtype=positions.dtype if positions else "int64",
        )

    @classmethod
    def of(cls, session: Session) -> DecoderSpec:
        return cls.detect(session.inputs, session.outputs)


def _layers(specs: Mapping[str, TensorSpec], pattern: re.Pattern[str], label: str, where: str,
            problems: list[str]) -> tuple[tuple[str, str], ...]:
    """Per layer 0..L-1, the (key, value) names matching `pattern`; gaps go to `problems`."""
    found: dict[int, dict[str, str]] = {}
    for name in specs:
        if m := pattern.fullmatch(name):
            found.setdefault(int(m.group(1)), {})[m.group(2)] = name
    if not found:
        problems.append(f"no {label} {where}")
        return ()
    gaps = [f"layer {i} {kind}" for i in range(max(found) + 1) for kind in ("key", "value")
            if kind not in found.get(i, {})]
    if gaps:
        problems.append(f"{label} {where} missing for {', '.join(gaps)}")
        return ()
    return tuple((found[i]["key"], found[i]["value"]) for i in range(len(found)))


def _cache_layout(specs: Sequence[TensorSpec]) -> tuple[int, int, str]:
    """(kv_heads, head_dim, dtype) shared by every past input, or ModelError."""
    layouts = set()
    for spec in specs:
        if len(spec.shape) != 4:
            raise ModelError(f"{spec.name} has rank {len(spec.shape)}, expected 4 "
                             "[batch, kv_heads, past, head_dim]")
        heads, dim = spec.shape[1], spec.shape[3]
        if not (isinstance(heads, int) and isinstance(dim, int)):
            raise ModelError(f"{spec.name} {list(spec.shape)}: kv_heads and head_dim (dims 1 "
                             "and 3) must be fixed sizes in the model")
        layouts.add((heads, dim, spec.dtype))
    if len(layouts) != 1:
        raise ModelError(f"past_key_values.* inputs disagree on [kv_heads, head_dim, dtype]: "
                         f"{sorted(layouts)}")
    heads, dim, dtype = layouts.pop()
    if dtype not in CACHE_DTYPES:
        raise ModelError(f"KV cache dtype {dtype} is not supported (float32 or float16)")
    return heads, dim, dtype


class HostCache:
    """The default `CacheStep`: the cache is host arrays, each step one `Session.run`."""

    def __init__(self, session: Session, present_to_past: Mapping[str, str],
                 fetch: Sequence[str]):
        self._run = session.run
        self._map = dict(present_to_past)
        self._fetch = tuple(fetch)
        self._past: dict[str, np.ndarray] = {}

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._run({**feeds, **self._past})
        self._past = {past: outputs[present] for present, past in self._map.items()}
        return {name: outputs[name] for name in self._fetch}


@dataclass(frozen=True)
class GenerationRun:
    """One greedy generation. Step 0 is the prefill (its time is the TTFT)."""

    prompt_ids: np.ndarray
    """int64 [batch, prompt_len]"""
    token_ids: np.ndarray
    """int64 [batch, gen_len]: the generated ids."""
    step_ns: np.ndarray
    """int64 [gen_len]: wall time of each step (run + synchronize)."""
    margins: np.ndarray
    """float32 [batch, gen_len]: top-1 minus top-2 logit at each step."""
    kv_cache_bytes: int
    """Bytes of keys and values held after the last step (prompt_len + gen_len - 1 tokens)."""

def summarize_runs(runs: Sequence[GenerationRun]) -> dict[str, Any]:
    """Figures over repeated generations of one shape: ttft_ms and tpot_ms as stats, the
    per-step inter-token latencies raw, e2e_ms and the token rates from the median e2e."""
    if not runs:
        raise ValueError("no generations to summarize")
    first = runs[0]
    e2e = np.array([int(r.step_ns.sum()) for r in runs])
    median_e2e_s = float(np.median(e2e)) / 1e9
    batch, prompt_len = first.prompt_ids.shape
    gen_len = first.token_ids.shape[1]
    median_ttft_s = float(np.median([r.step_ns[0] for r in runs])) / 1e9
    return {
        "ttft_ms": summarize_ns([int(r.step_ns[0]) for r in runs]),
        "tpot_ms": summarize_ns([int(ns) for r in runs for ns in r.step_ns[1:]]),
        "e2e_ms": summarize_ns(e2e.tolist()),
        "output_tokens_per_s": batch * gen_len / median_e2e_s,
        "prefill_tokens_per_s": batch * prompt_len / median_ttft_s,
        "kv_cache_bytes": first.kv_cache_bytes,
        "inter_token_ns": [[int(ns) for ns in r.step_ns[1:]] for r in runs],
    }


def generate(session: Session, prompt_ids: np.ndarray, gen_len: int,
             spec: DecoderSpec | None = None, device_cache: bool = True) -> GenerationRun:
    """Greedy generation of `gen_len` tokens after `prompt_ids` [batch, prompt_len].

    Uses the session's `bind_cache` hook when it has one (and `device_cache`), else
    `HostCache` (the cache as host arrays through `run()`).
    """
    spec = spec or DecoderSpec.of(session)
    prompt = np.asarray(prompt_ids)
    if prompt.ndim != 2 or prompt.shape[1] < 1 or not np.issubdtype(prompt.dtype, np.integer):
        raise InputError(f"prompt ids must be integers of shape [batch, prompt_len >= 1], "
                         f"got {prompt.dtype} {list(prompt.shape)}")
    if gen_len < 1:
        raise InputError(f"gen_len must be >= 1, got {gen_len}")
    batch, prompt_len = prompt.shape
    bound = session.bind_cache(spec.present_to_past(), (spec.logits,)) if device_cache else None
    step: CacheStep = bound or HostCache(session, spec.present_to_past(), (spec.logits,))
    feeds = prefill_feeds(spec, prompt)
    mask = np.ones((batch, prompt_len + gen_len), dtype=spec.mask_dtype)
    ids_dtype = next((t.dtype for t in session.inputs if t.name == spec.input_ids), "int64")
    tokens = np.empty((batch, gen_len), dtype=np.int64)
    margins = np.empty((batch, gen_len), dtype=np.float32)
    step_ns = np.empty(gen_len, dtype=np.int64)
    clock, sync = time.perf_counter_ns, session.synchronize
    for j in range(gen_len):
        start = clock()
        logits = step(feeds)[spec.logits]
        sync()
        step_ns[j] = clock() - start
        tokens[:, j], margins[:, j] = _greedy(logits[:, -1])
        if j + 1 < gen_len:
            feeds = _decode_feeds(spec, tokens[:, j:j + 1].astype(ids_dtype),
                                  mask[:, :prompt_len + j + 1], prompt_len + j)
    return GenerationRun(prompt, tokens, step_ns, margins,
                         spec.cache_bytes(batch, prompt_len + gen_len - 1))


def _greedy(last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmax and top-1 minus top-2 of each row of `last` [batch, vocab]."""
    top2 = np.partition(last, -2, axis=-1)[:, -2:].astype(np.float32)
    return last.argmax(axis=-1), top2[:, 1] - top2[:, 0]


def prefill_feeds(spec: DecoderSpec, prompt: np.ndarray) -> dict[str, np.ndarray]:
    batch, length = prompt.shape
    ids_feeds = _decode_feeds(spec, prompt, np.ones((batch, length), spec.mask_dtype), 0)
    empty = np.zeros((batch, spec.kv_heads, 0, spec.head_dim), dtype=spec.cache_dtype)
    return {**ids_feeds, **{name: empty for pair in spec.past for name in pair}}


def _decode_feeds(spec: DecoderSpec, ids: np.ndarray, mask: np.ndarray,
                  start: int) -> dict[str, np.ndarray]:
    """input_ids, attention_mask and position_ids for `ids` at positions start, start+1..."""
    feeds = {spec.input_ids: ids}
    if spec.attention_mask:
        feeds[spec.attention_mask] = mask
    if spec.position_ids:
        positions = np.arange(start, start + ids.shape[1], dtype=spec.position_dtype)
        feeds[spec.position_ids] = np.repeat(positions[None], ids.shape[0], axis=0)
    return feeds


def token_parity(tokens: np.ndarray, reference_tokens: np.ndarray,
                 reference_margins: np.ndarray, tolerance: float) -> dict[str, Any]:
    """How generated `tokens` [batch, gen] agree with a reference greedy path.

    `token_match`: the fraction of equal ids. `first_divergence`: the first step where any
    sequence differs (None when none does), with the reference's smallest top-1/top-2
    margin among the sequences that differ there. After a divergence the paths see
    different inputs, so only the first one says anything: it is a `real` disagreement
    when that margin exceeds `tolerance` (the run's logit error tolerance), else a
    near-tie that a correct implementation may break either way.
    """
    tokens, reference = np.asarray(tokens), np.asarray(reference_tokens)
    if tokens.shape != reference.shape:
        raise InputError(f"generated ids {list(tokens.shape)} and reference ids "
                         f"{list(reference.shape)} differ in shape")
    differs = tokens != reference
    result: dict[str, Any] = {
        "token_match": float(1.0 - differs.mean()) if differs.size else 1.0,
        "first_divergence": None,
        "reference_margin": None,
        "real_disagreement": False,
        "tolerance": tolerance,
    }
    steps = np.flatnonzero(differs.any(axis=0))
    if steps.size:
        step = int(steps[0])
        margin = float(np.asarray(reference_margins)[differs[:, step], step].min())
        result.update(first_divergence=step, reference_margin=margin,
                      real_disagreement=margin > tolerance)
    return result


__all__ = [
    "CACHE_DTYPES",
    "DecoderSpec",
    "GenerationRun",
    "HostCache",
    "generate",
    "summarize_runs",
    "token_parity",
]
