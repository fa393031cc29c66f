"""Result documents of the generate, server and precision kinds, for report and compare tests."""

from __future__ import annotations

from typing import Any

from helpers import latencies, result_document

from portable.stats import summarize_ns


def _ms(median_ms: float, seed: int = 0) -> dict[str, Any]:
    return summarize_ns([int(v) for v in latencies(median_ms, n=50, seed=seed)])


def generate_document(cells: dict, model: str = "moe-tiny", **token_match: float) -> dict:
    """`cells`: (backend, batch) -> (TTFT ms, TPOT ms); a string makes a failed cell."""
    raw = {key: value if isinstance(value, str) else latencies(value[0] + 31 * value[1], seed=1)
           for key, value in cells.items()}
    document = result_document(raw, model=model, config={"name": model})
    document["settings"].update(scenario="generate", prompt_len=64, gen_len=32)
    for cell in document["results"]:
        cell["scenario"] = "generate"
        if cell["status"] != "ok":
            continue
        ttft, tpot = cells[(cell["backend"], cell["batch"])]
        match = token_match.get(cell["backend"].replace("-", "_"), 1.0)
        cell["generate"] = {
            "ttft_ms": _ms(ttft), "tpot_ms": _ms(tpot, seed=2), "e2e_ms": _ms(ttft + 31 * tpot),
            "output_tokens_per_s": cell["batch"] * 32_000 / (ttft + 31 * tpot),
            "prefill_tokens_per_s": cell["batch"] * 64_000 / ttft, "kv_cache_bytes": 4096,
            "prompt_len": 64, "gen_len": 32, "prompt_ids": [[1] * 64], "token_ids": [[2] * 32],
            "token_parity": {"token_match": match,
                             "first_divergence": None if match == 1.0 else 7,
                             "reference_margin": None if match == 1.0 else 0.4,
                             "real_disagreement": match != 1.0, "tolerance": 1e-4,
                             "reference": "golden", "passed": match == 1.0}}
    return document


def precision_verdict(precision: str, expert: float, top1: float, passed: bool = True) -> dict:
    summary = f"expert agreement {expert:.1%}; top-1 {top1:.1%}: {'pass' if passed else 'FAIL'}"
    return {"precision": precision, "rules": {}, "passed": passed, "failures": [],
            "routing": {"expert_agreement": expert}, "distribution": {"top1_agreement": top1},
            "agreed_logits": None, "summary": summary}


def precision_document(precision: str, median_ms: float, size_bytes: int,
                       expert: float = 0.99, top1: float = 0.995, seed: int = 0) -> dict:
    """moe-small at `precision` on ort-cpu, with golden parity and (below fp32) a verdict."""
    name = "moe-small" if precision == "fp32" else f"moe-small-{precision}"
    document = result_document({("ort-cpu", 1): latencies(median_ms, seed=seed)}, model=name,
                               config={"name": "moe-small"})
    document["model"].update(precision=precision, size_bytes=size_bytes)
    cell = document["results"][0]
    cell["parity"] = {"reference": "golden", "passed": True, "max_abs_error": 1e-2,
                      "outputs": {"logits": {"dtype": "float32", "max_abs_error": 1e-2,
                                             "max_rel_error": 1e-2, "tolerance": 0.1,
                                             "mismatched": 0, "passed": True}}}
    if precision != "fp32":
        cell["parity"]["precision"] = precision_verdict(precision, expert, top1)
    return document
