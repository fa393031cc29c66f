"""The generate scenario's work around the loop in `portable.generation`: which prompt runs,
how generations repeat under the stop rules, and whose tokens each result is checked against.

A prompt is `input_ids [batch, prompt_len]` from ``--inputs`` or seeded ids inside the
vocabulary. Generations repeat like any timed run (warm-up, then until ``--iterations``
and ``--min-duration``). Tokens are checked against the preset's golden greedy path
from PyTorch when the prompt is the golden one, else against the first backend that ran;
a divergence fails the check only where the reference's top-1/top-2 margin exceeds the
run's tolerance (a near-tie may break either way and is reported, not failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from portable import reference
from portable.adapter import Session, TensorSpec
from portable.errors import InputError
from portable.feeds import ResolvedInputs
from portable.generation import (
    DecoderSpec,
    GenerationRun,
    generate,
    prefill_feeds,
    summarize_runs,
    token_parity,
)
from portable.inputs import InputSpec, load_npz
from portable.modelsource import ModelSource
from portable.parity import tolerance_for
from portable.records import CellResult
from portable.signature import read_signature
from portable.timing import BenchSettings, ScenarioRun, measure_latency

_DEFAULT_VOCAB = 100


def decoder_of(model: ModelSource) -> DecoderSpec:
    signature = read_signature(model.path)
    return DecoderSpec.detect(signature.inputs, signature.outputs)


def check_decoder(model: ModelSource, settings: BenchSettings, given: InputSpec) -> None:
    """ModelError (exit 2) naming what a model lacks to be generated from; InputError for a
    supplied prompt of the wrong shape."""
    spec = decoder_of(model)
    _prompt(model, spec, settings, given)


def _vocab(model: ModelSource, spec: DecoderSpec) -> int:
    bound = reference.index_bounds(model.reference_config).get(spec.input_ids)
    if bound:
        return bound
    logits = next((t for t in read_signature(model.path).outputs if t.name == spec.logits), None)
    last = logits.shape[-1] if logits is not None and logits.shape else None
    return last if isinstance(last, int) and last > 0 else _DEFAULT_VOCAB


def _prompt(model: ModelSource, spec: DecoderSpec, settings: BenchSettings,
            given: InputSpec) -> np.ndarray:
    if given.npz is not None:
        ids = TensorSpec(spec.input_ids, ("batch", "prompt_len"), "int64")
        supplied = load_npz(given.npz, [ids]).get(spec.input_ids)
        if supplied is None:
            raise InputError(f"--inputs {given.npz}: no {spec.input_ids} array for the prompt")
        if supplied.ndim != 2 or supplied.shape[1] < 1:
            raise InputError(f"--inputs {given.npz}: {spec.input_ids} must be "
                             f"[batch, prompt_len], got {list(supplied.shape)}")
        return supplied.astype(np.int64)
    rng = np.random.default_rng(settings.seed)
    return rng.integers(0, _vocab(model, spec), size=(settings.batch, settings.prompt_len),
                        dtype=np.int64)


def prompt_inputs(model: ModelSource, settings: BenchSettings,
                  given: InputSpec) -> ResolvedInputs:
    """The prefill feeds of the prompt (past length 0): what the first inference runs."""
    spec = decoder_of(model)
    prompt = _prompt(model, spec, settings, given)
    ids = TensorSpec(spec.input_ids, ("batch", "sequence"), "int64")  # batch × prompt_len
    return ResolvedInputs(specs=(ids,), feeds=prefill_feeds(spec, prompt))


def measure(session: Session, feeds: Mapping[str, np.ndarray],
            settings: BenchSettings) -> ScenarioRun:
    """Repeated greedy generations of the prompt in `feeds` under the stop rules."""
    spec = DecoderSpec.of(session)
    prompt = np.asarray(feeds[spec.input_ids])
    runs: list[GenerationRun] = []

    def one() -> None:
        runs.append(generate(session, prompt, settings.gen_len, spec))

    timed = measure_latency(one, lambda: None, settings)
    runs = runs[settings.warmup:]
    figures = summarize_runs(runs)
    first = runs[0]
    figures.update(prompt_len=int(prompt.shape[1]), gen_len=settings.gen_len,
                   prompt_ids=first.prompt_ids.tolist(), token_ids=first.token_ids.tolist(),
                   margins=[[round(float(m), 6) for m in row] for row in first.margins])
    sequences_per_s = prompt.shape[0] * 1000.0 / figures["e2e_ms"]["p50"]
    timed.extras["generate"] = figures
    timed.throughput = (sequences_per_s, figures["output_tokens_per_s"])
    return timed


def _golden_reference(model: ModelSource, prompt: np.ndarray, gen_len: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    golden = model.golden_generation()
    if golden is None or golden["prompt_ids"].shape != prompt.shape:
        return None
    if not np.array_equal(golden["prompt_ids"], prompt) or golden["token_ids"].shape[1] < gen_len:
        return None
    return golden["token_ids"][:, :gen_len], golden["margins"][:, :gen_len]


def check_tokens(model: ModelSource, results: Sequence[CellResult]) -> None:
    """Token parity of each generate result against the golden path or the first backend."""
    ran = [r for r in results if r.ok and "generate" in r.extras]
    for batch in dict.fromkeys(r.batch for r in ran):
        group = [r for r in ran if r.batch == batch]
        first = group[0].extras["generate"]
        prompt = np.asarray(first["prompt_ids"])
        golden = _golden_reference(model, prompt, first["gen_len"])
        if golden is not None:
            label, (tokens, margins), compared = "golden greedy path from PyTorch", golden, group
        else:
            label = f"{group[0].backend} (first backend)"
            tokens, margins = np.asarray(first["token_ids"]), np.asarray(first["margins"])
            compared = group
        for result in compared:
            figures = result.extras["generate"]
            tolerance = tolerance_for("float32", result.compute_precision)
            report: dict[str, Any] = token_parity(np.asarray(figures["token_ids"]), tokens,
                                                  margins, tolerance)
            report.update(reference=label, passed=not report["real_disagreement"])
            figures["token_parity"] = report
