"""Routing-aware parity for reduced precision: is this run wrong, or fine at its precision?

In a Mixture-of-Experts model a gate score that is a near-tie in fp32 can flip in fp16,
bf16 or int8, so a token goes to another expert and its logits move far more than the
precision's rounding. Comparing every logit at one tolerance then fails a port that is
fine. This module separates the two (pure numpy; the model's extras reach it as arrays):

* routing: the fraction of token x slot expert choices equal to the reference's, overall
  and per MoE layer; each flipped choice with the reference gate's score gap (how close the
  fp32 decision was), so flips at near-ties are told apart from real errors;
* distribution: top-1 agreement of the logits and the mean KL divergence (and cosine
  similarity) of the next-token distributions;
* agreed logits: the logits error on tokens whose routing agrees in every layer, against
  the precision's tolerance;
* a verdict from per-precision rules (`DEFAULT_RULES`, overridable), with a one-line summary
  such as ``2/512 expert choices flipped (2 near-ties); top-1 99.6%; KL 1.2e-04; agreed
  tokens within 5e-02: pass (bf16)``.

`judge` compares a run with golden outputs (and the reference router scores kept in the
golden file); `compare_models` compares a converted model's outputs with its original's
on the same inputs (no router scores there: flips are counted, not explained). The JSON
shape is documented in docs/results.md ("Precision parity").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from portable.parity import compare_output, tolerance_for

#: From the finest to the coarsest; a run is judged at the coarsest of its model's storage
#: precision and its device's compute precision.
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")
#: A device's compute precision (`Session.compute_precision`) as a precision name.
COMPUTE_PRECISIONS = {"float32": "fp32", "float16": "fp16", "tfloat32": "fp16",
                      "bfloat16": "bf16"}
#: How many flips a parity report lists one by one (all are counted).
MAX_LISTED_FLIPS = 50


@dataclass(frozen=True)
class PrecisionRules:
    """What a run at one precision must meet to pass. Fractions are in [0, 1]."""

    precision: str
    min_expert_agreement: float
    """Token x slot expert choices equal to the reference's, over all MoE layers."""
    near_tie_gap: float
    """A flip whose reference score gap is at most this is a near-tie (explained)."""
    max_real_flip_fraction: float
    """Flips beyond the near-tie gap, as a fraction of all choices."""
    min_top1_agreement: float
    """Positions whose argmax logit equals the reference's."""
    max_mean_kl: float
    """Mean KL(reference || run) of the next-token distributions, in nats."""
    agreed_tolerance: float
    """Logits error allowed on tokens whose routing agrees in every layer
    (|run - ref| <= tol * max(1, |ref|), as portable.parity does)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Default rules per precision. Tolerances come from the precisions' rounding and the
#: measured errors of the reference presets (docs/results.md, "Precision parity"); an
#: int4 model is expected to move more than an int8 one.
DEFAULT_RULES: Mapping[str, PrecisionRules] = {
    "fp32": PrecisionRules("fp32", 1.0, 1e-4, 0.0, 1.0, 1e-6, 1e-4),
    "fp16": PrecisionRules("fp16", 0.99, 0.01, 0.001, 0.99, 1e-3, 2e-2),
    "bf16": PrecisionRules("bf16", 0.97, 0.02, 0.002, 0.95, 2e-3, 1e-1),
    "int8": PrecisionRules("int8", 0.98, 0.02, 0.002, 0.97, 2e-3, 1e-1),
    "int4": PrecisionRules("int4", 0.85, 0.1, 0.02, 0.65, 3e-2, 1.0),
}


def split_variant_name(spec: str) -> tuple[str, str | None]:
    """`moe-small-int8` -> (`moe-small`, `int8`); no precision suffix -> (spec, None)."""
    base, _, suffix = spec.rpartition("-")
    return (base, suffix) if base and suffix in PRECISIONS else (spec, None)


def check_precision(precision: str) -> str:
    from portable.errors import ModelError

    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def effective_precision(model_precision: str = "fp32",
                        compute_precision: str | None = None) -> str:
    """The coarser of a model's storage precision and the precision its device computes in."""
    compute = COMPUTE_PRECISIONS.get(compute_precision or "float32", "fp32")
    return max(check_precision(model_precision), compute, key=PRECISIONS.index)


def rules_for(precision: str, overrides: Mapping[str, float] | None = None) -> PrecisionRules:
    """The default rules of `precision`, with some fields overridden (`{"near_tie_gap": 0.1}`)."""
    from portable.errors import ModelError

    rules = DEFAULT_RULES[check_precision(precision)]
    fields = {f.name for f in dataclasses.fields(PrecisionRules)} - {"precision"}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise ModelError(f"unknown precision rule(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(sorted(fields))}")
    return dataclasses.replace(rules, **{k: float(v) for k, v in (overrides or {}).items()})


# -- routing ---------------------------------------------------------------------------------
def routing_agreement(
    expert_ids: np.ndarray,
    reference_ids: np.ndarray,
    router_scores: np.ndarray | None = None,
    groups: tuple[int, int] = (1, 1),
    near_tie_gap: float = 0.0,
) -> dict[str, Any]:
    """Expert choices [layers, ..., k] of a run against the reference's.

    A token's choices are compared as sets, so one flip costs one slot whatever the order.
    With the reference's selection scores [layers, ..., experts] (what top-k chose by),
    each flip gets a gap: for a dropped expert d paired with a picked expert p (both by
    descending reference score), s[d] - s[p]; when p's expert group was not among the
    groups the reference kept (`groups` = (n_groups, topk_groups)), the group-score gap
    between the last kept group and p's group, since that decision flipped first. A flip
    with gap <= `near_tie_gap` is a near-tie; a flip of a token whose routing already
    flipped in an earlier layer is downstream of that flip (its input changed). Both are
    explained; the rest are real flips.
    """
    run = np.asarray(expert_ids)
    ref = np.asarray(reference_ids)
    if run.shape != ref.shape:
        return {"passed": False, "note": f"expert_ids shape {run.shape} != {ref.shape}"}
    layers, k = ref.shape[0], ref.shape[-1]
    run2 = run.reshape(layers, -1, k)
    ref2 = ref.reshape(layers, -1, k)
    scores = None
    if router_scores is not None:
        scores = np.asarray(router_scores, dtype=np.float64).reshape(layers, ref2.shape[1], -1)
    token_shape = ref.shape[1:-1]
    flips: list[dict[str, Any]] = []
    per_layer = []
    agreed_tokens = np.ones(ref2.shape[1], dtype=bool)
    for layer in range(layers):
        same = (run2[layer][:, :, None] == ref2[layer][:, None, :]).any(axis=1)  # [T, k]
        flipped_before = ~agreed_tokens
        agreed_tokens &= same.all(axis=1)
        flipped = int((~same).sum())
        per_layer.append({"layer": layer, "expert_agreement": float(same.mean()),
                          "flipped": flipped})
        for token in np.flatnonzero(~same.all(axis=1)):
            s = scores[layer, token] if scores is not None else None
            for flip in _token_flips(run2[layer, token], ref2[layer, token], s, groups):
                flip.update(layer=layer,
                            token=[int(i) for i in np.unravel_index(token, token_shape)],
                            near_tie=flip["gap"] is not None and flip["gap"] <= near_tie_gap,
                            after_earlier_flip=bool(flipped_before[token]))
                flips.append(flip)
    figures = _flip_counts(flips, int(ref2.size), near_tie_gap if scores is not None else None)
    return {**figures, "per_layer": per_layer,
            "agreed_tokens": agreed_tokens.reshape(token_shape)}


def _flip_counts(flips: list[dict[str, Any]], choices: int,
                 near_tie_gap: float | None) -> dict[str, Any]:
    """Agreement and flip counts; real flips only when gaps are known (`near_tie_gap`)."""
    near = sum(f["near_tie"] for f in flips)
    downstream = sum(f["after_earlier_flip"] and not f["near_tie"] for f in flips)
    return {
        "expert_agreement": 1.0 - len(flips) / choices if choices else 1.0,
        "choices": choices,
        "flipped": len(flips),
        "near_tie_flips": near,
        "downstream_flips": downstream,
        "real_flips": len(flips) - near - downstream if near_tie_gap is not None else None,
        "near_tie_gap": near_tie_gap,
        "max_flip_gap": max((f["gap"] for f in flips if f["gap"] is not None), default=None),
        "flips": flips[:MAX_LISTED_FLIPS],
        "flips_listed": min(len(flips), MAX_LISTED_FLIPS),
    }


def _token_flips(run: np.ndarray, ref: np.ndarray, s: np.ndarray | None,
                 groups: tuple[int, int]) -> list[dict[str, Any]]:
    """One token's flipped choices: dropped reference experts paired with picked ones (both
    by descending reference score), each with its gap when the scores are known."""
    dropped = [int(e) for e in ref if e not in run]
    picked = [int(e) for e in run if e not in ref]
    if s is not None:
        dropped.sort(key=lambda e: -s[e])
        picked.sort(key=lambda e: -s[e])
    return [{"reference_expert": d, "chosen_expert": p,
             "gap": _gap(s, d, p, ref, groups) if s is not None else None}
            for d, p in zip(dropped, picked, strict=False)]


def _gap(s: np.ndarray, dropped: int, picked: int, reference: np.ndarray,
         groups: tuple[int, int]) -> float:
    n_groups, topk_groups = groups
    if n_groups > 1:
        per_group = s.reshape(n_groups, -1)
        top = min(2, per_group.shape[1])
        group_scores = np.sort(per_group, axis=1)[:, -top:].sum(axis=1)
        kept = {int(e) // per_group.shape[1] for e in reference}
        picked_group = picked // per_group.shape[1]
        if picked_group not in kept:
            last_kept = min(group_scores[g] for g in kept)
            return float(max(0.0, last_kept - group_scores[picked_group]))
    return float(max(0.0, s[dropped] - s[picked]))


# -- logits ----------------------------------------------------------------------------------
def distribution_agreement(logits: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Top-1 agreement, KL(reference || run) and cosine similarity over the last axis."""
    a = np.asarray(logits, dtype=np.float64).reshape(-1, reference.shape[-1])
    e = np.asarray(reference, dtype=np.float64).reshape(-1, reference.shape[-1])
    if not (np.isfinite(a).all()):
        return {"top1_agreement": float((a.argmax(-1) == e.argmax(-1)).mean()),
                "mean_kl": float("inf"), "max_kl": float("inf"), "mean_cosine": float("nan"),
                "positions": len(e)}
    log_p = _log_softmax(e)
    log_q = _log_softmax(a)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(e, axis=-1)
    cosine = (a * e).sum(axis=-1) / np.maximum(norms, 1e-30)
    return {
        "top1_agreement": float((a.argmax(-1) == e.argmax(-1)).mean()),
        "mean_kl": float(kl.mean()),
        "max_kl": float(kl.max()),
        "mean_cosine": float(cosine.mean()),
        "positions": len(e),
    }


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# -- verdict ---------------------------------------------------------------------------------
def judge(
    outputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    precision: str,
    reference_extras: Mapping[str, np.ndarray] | None = None,
    groups: tuple[int, int] = (1, 1),
    overrides: Mapping[str, float] | None = None,
    logits_name: str = "logits",
    routing_name: str = "expert_ids",
) -> dict[str, Any]:
    """Routing-aware parity of a run's `outputs` against `reference` outputs, by the rules of
    `precision` (with `overrides`). `reference_extras["router_scores"]` explains flips.

    Returns ``{"precision", "rules", "routing", "distribution", "agreed_logits", "passed",
    "failures", "summary"}``; "routing" is None without expert ids on both sides.
    """
    rules = rules_for(precision, overrides)
    failures: list[str] = []
    routing = None
    agreed = None
    if routing_name in outputs and routing_name in reference:
        scores = (reference_extras or {}).get("router_scores")
        routing = routing_agreement(outputs[routing_name], reference[routing_name], scores,
                                    groups, rules.near_tie_gap)
        if "note" in routing:
            failures.append(routing["note"])
            routing, agreed = None, None
        else:
            agreed = routing.pop("agreed_tokens")
            _check_routing(routing, rules, failures)
    distribution = None
    agreed_logits = None
    if logits_name in outputs and logits_name in reference:
        run, ref = np.asarray(outputs[logits_name]), np.asarray(reference[logits_name])
        if run.shape != ref.shape:
            failures.append(f"{logits_name} shape {run.shape} != reference {ref.shape}")
        else:
            distribution = distribution_agreement(run, ref)
            if distribution["top1_agreement"] < rules.min_top1_agreement:
                failures.append(f"top-1 {distribution['top1_agreement']:.1%} < "
                                f"{rules.min_top1_agreement:.0%}")
            if not distribution["mean_kl"] <= rules.max_mean_kl:
                failures.append(f"mean KL {distribution['mean_kl']:.1e} > {rules.max_mean_kl:g}")
            agreed_logits = _agreed_logits(run, ref, agreed, rules.agreed_tolerance)
            if not agreed_logits["passed"]:
                failures.append(f"{agreed_logits['mismatched']} logits of agreed tokens beyond "
                                f"{rules.agreed_tolerance:g}")
    elif logits_name in reference:
        failures.append(f"output {logits_name!r} missing")
    result = {
        "precision": precision,
        "rules": rules.to_dict(),
        "routing": routing,
        "distribution": distribution,
        "agreed_logits": agreed_logits,
        "passed": not failures,
        "failures": failures,
    }
    result["summary"] = summary(result)
    return result


def _check_routing(routing: dict[str, Any], rules: PrecisionRules, failures: list[str]) -> None:
    if routing["expert_agreement"] < rules.min_expert_agreement:
        failures.append(f"expert agreement {routing['expert_agreement']:.1%} < "
                        f"{rules.min_expert_agreement:.0%}")
    real = routing["real_flips"]
    if real is not None and real > rules.max_real_flip_fraction * routing["choices"]:
        failures.append(f"{real} flips beyond the near-tie gap {rules.near_tie_gap:g}")


def _agreed_logits(run: np.ndarray, ref: np.ndarray, agreed: np.ndarray | None,
                   tolerance: float) -> dict[str, Any]:
    """Logits error on the tokens whose routing agreed in every layer (all tokens without
    routing), at `tolerance` relative to max(1, |reference|)."""
    tokens = ref.shape[:-1]
    mask = np.ones(tokens, dtype=bool) if agreed is None or agreed.shape != tokens else agreed
    report = compare_output("logits", run[mask], ref[mask], tolerance)
    return {
        "tokens": int(mask.sum()),
        "of_tokens": int(mask.size),
        "max_abs_error": report.max_abs,
        "tolerance": tolerance,
        "mismatched": report.mismatched,
        "passed": report.passed,
    }


def summary(result: Mapping[str, Any]) -> str:
    """One line: flips (near-ties), top-1, KL, agreed-token tolerance, verdict (precision)."""
    parts = []
    routing = result.get("routing")
    if routing:
        flips = f"{routing['flipped']}/{routing['choices']} expert choices flipped"
        if routing["flipped"] and routing["real_flips"] is not None:
            kinds = [f"{routing['near_tie_flips']} near-ties"]
            if routing["downstream_flips"]:
                kinds.append(f"{routing['downstream_flips']} after an earlier flip")
            if routing["real_flips"]:
                kinds.append(f"{routing['real_flips']} beyond the gap")
            flips += f" ({', '.join(kinds)})"
        parts.append(flips)
    distribution = result.get("distribution")
    if distribution:
        parts.append(f"top-1 {distribution['top1_agreement']:.1%}")
        parts.append(f"KL {distribution['mean_kl']:.1e}")
    agreed = result.get("agreed_logits")
    if agreed:
        which = "agreed tokens" if routing else "logits"
        parts.append(f"{which} within {agreed['tolerance']:.0e}"
                     + ("" if agreed["passed"] else f": {agreed['mismatched']} beyond"))
    verdict = "pass" if result["passed"] else "FAIL: " + "; ".join(result["failures"])
    return "; ".join(parts) + f": {verdict} ({result['precision']})"


# -- a converted model against its original ----------------------------------------------------
def compare_models(
    outputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    precision: str,
    overrides: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A converted model's outputs against its original's on the same inputs.

    Outputs named like logits (``*logits*``) get top-1 agreement, KL and the agreed-token
    error; ``expert_ids`` on both sides get routing agreement (flips counted, unexplained:
    no router scores); every other output is compared at its dtype's tolerance, loosened to
    the precision's agreed-token tolerance below fp32. Returns `judge`'s shape plus
    ``outputs`` (per other output, `portable.parity` fields).
    """
    logit_names = [n for n in reference if "logits" in n.lower()]
    result = judge(outputs, reference, precision, None, overrides=overrides,
                   logits_name=logit_names[0] if logit_names else "logits")
    rules = rules_for(precision, overrides)
    others = {}
    for name, expected in reference.items():
        if name in logit_names[:1] or name == "expert_ids":
            continue
        expected = np.asarray(expected)
        tol = tolerance_for(str(expected.dtype))
        if expected.dtype.kind == "f" and precision != "fp32":
            tol = max(tol, rules.agreed_tolerance)
        if name not in outputs:
            others[name] = {"passed": False, "note": "output missing"}
            result["failures"].append(f"output {name!r} missing")
            continue
        report = compare_output(name, np.asarray(outputs[name]), expected, tol)
        others[name] = report.to_dict()
        if not report.passed:
            result["failures"].append(f"{name}: {report.mismatched} values beyond {tol:g}")
    result["outputs"] = others
    result["passed"] = not result["failures"]
    result["summary"] = summary(result)
    return result
