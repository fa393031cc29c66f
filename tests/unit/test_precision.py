"""Routing-aware parity rules (portable.precision), on small hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from portable.errors import ModelError
from portable.precision import (
    compare_models,
    effective_precision,
    judge,
    routing_agreement,
    rules_for,
)

# One MoE layer, 4 tokens, 4 experts, top-2. Reference picks by these scores.
SCORES = np.array([[[
    [0.90, 0.500, 0.499, 0.10],   # token 0: experts 0, 1; expert 2 is a near-tie
    [0.90, 0.800, 0.100, 0.05],   # token 1: experts 0, 1; clear margin
    [0.10, 0.200, 0.800, 0.90],   # token 2: experts 2, 3
    [0.70, 0.100, 0.600, 0.20],   # token 3: experts 0, 2
]]])  # [layers=1, batch=1, seq=4, experts=4]
REF_IDS = np.array([[[[0, 1], [0, 1], [2, 3], [0, 2]]]])


def _logits(seed: int = 0, tokens: int = 4, vocab: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(1, tokens, vocab)).astype(np.float32) * 3


def _judge(ids: np.ndarray, logits: np.ndarray, precision: str = "bf16", **overrides: float):
    ref = {"logits": _logits(), "expert_ids": REF_IDS}
    run = {"logits": logits, "expert_ids": ids}
    return judge(run, ref, precision, {"router_scores": SCORES}, overrides=overrides)


def test_identical_run_passes_with_a_one_line_summary():
    result = _judge(REF_IDS, _logits())
    assert result["passed"]
    assert result["routing"]["expert_agreement"] == 1.0
    assert result["summary"].startswith("0/8 expert choices flipped; top-1 100.0%")
    assert result["summary"].endswith("pass (bf16)")


def test_flip_at_a_near_tie_is_explained_and_passes():
    ids = REF_IDS.copy()
    ids[0, 0, 0] = [0, 2]  # token 0 swaps expert 1 for expert 2 (gap 0.001)
    result = _judge(ids, _logits(), min_expert_agreement=0.5, max_real_flip_fraction=0.0)
    flip = result["routing"]["flips"][0]
    assert flip["reference_expert"] == 1 and flip["chosen_expert"] == 2
    assert flip["gap"] == pytest.approx(0.001) and flip["near_tie"]
    assert result["routing"]["real_flips"] == 0
    assert result["passed"], result["failures"]
    assert "1/8 expert choices flipped (1 near-ties)" in result["summary"]


def test_flip_far_from_a_tie_is_a_real_error():
    ids = REF_IDS.copy()
    ids[0, 0, 1] = [0, 3]  # token 1 swaps expert 1 (0.8) for expert 3 (0.05)
    result = _judge(ids, _logits(), min_expert_agreement=0.5, max_real_flip_fraction=0.0)
    assert result["routing"]["flips"][0]["gap"] == pytest.approx(0.75)
    assert result["routing"]["real_flips"] == 1
    assert not result["passed"]
    assert "1 flips beyond the near-tie gap" in result["summary"]


def test_expert_agreement_rule_counts_slots_per_layer():
    ids = REF_IDS.copy()
    ids[0, 0, 0] = [0, 2]
    result = _judge(ids, _logits(), min_expert_agreement=0.9)
    assert result["routing"]["expert_agreement"] == pytest.approx(7 / 8)
    assert result["routing"]["per_layer"] == [
        {"layer": 0, "expert_agreement": pytest.approx(7 / 8), "flipped": 1}]
    assert any("expert agreement 87.5% < 90%" in f for f in result["failures"])


def test_flip_after_an_earlier_layer_flipped_is_downstream():
    scores = np.concatenate([SCORES, SCORES])
    ref = np.concatenate([REF_IDS, REF_IDS])
    ids = ref.copy()
    ids[0, 0, 1] = [0, 3]  # layer 0: a real flip
    ids[1, 0, 1] = [0, 3]  # layer 1, same token: downstream of it
    routing = routing_agreement(ids, ref, scores, near_tie_gap=0.01)
    assert [f["after_earlier_flip"] for f in routing["flips"]] == [False, True]
    assert routing["real_flips"] == 1 and routing["downstream_flips"] == 1


def test_group_limited_flip_gap_is_the_group_score_gap():
    # 2 groups of 2; the reference kept group 0 (0.9 + 0.5 = 1.4 vs 0.45 + 0.44 = 0.89).
    scores = np.array([[[[0.9, 0.5, 0.45, 0.44]]]])
    routing = routing_agreement(np.array([[[[0, 2]]]]), np.array([[[[0, 1]]]]), scores,
                                groups=(2, 1), near_tie_gap=0.01)
    assert routing["flips"][0]["gap"] == pytest.approx(1.4 - 0.89)


def test_top1_rule():
    logits = _logits()
    logits[0, 0] = -logits[0, 0]  # moves the argmax of one of four positions
    result = _judge(REF_IDS, logits, min_top1_agreement=0.9, max_mean_kl=1e9,
                    agreed_tolerance=1e9)
    assert result["distribution"]["top1_agreement"] == 0.75
    assert result["failures"] == ["top-1 75.0% < 90%"]


def test_kl_rule():
    result = _judge(REF_IDS, _logits() * 1.5, max_mean_kl=1e-3, agreed_tolerance=1e9)
    assert result["distribution"]["mean_kl"] > 1e-3
    assert any(f.startswith("mean KL") for f in result["failures"])


def test_agreed_tolerance_applies_only_to_tokens_whose_routing_agrees():
    ids = REF_IDS.copy()
    ids[0, 0, 0] = [0, 2]  # token 0 flipped (near-tie)
    logits = _logits()
    logits[0, 0] += 0.5  # only the flipped token's logits moved
    loose = dict(min_expert_agreement=0.5, max_mean_kl=1e9, min_top1_agreement=0.0)
    assert _judge(ids, logits, **loose)["passed"]
    logits[0, 1, 3] += 0.5  # an agreed token moved past bf16's 1e-1
    result = _judge(ids, logits, **loose)
    assert result["agreed_logits"]["tokens"] == 3 and result["agreed_logits"]["mismatched"] == 1
    assert not result["passed"]


def test_rules_are_overridable_and_unknown_rules_are_refused():
    assert rules_for("bf16", {"min_top1_agreement": 0.5}).min_top1_agreement == 0.5
    assert rules_for("int4").agreed_tolerance > rules_for("int8").agreed_tolerance
    with pytest.raises(ModelError, match="unknown precision rule"):
        rules_for("bf16", {"top1": 0.5})
    with pytest.raises(ModelError, match="unknown precision"):
        rules_for("fp8")


def test_effective_precision_is_the_coarser_of_model_and_device():
    assert effective_precision("fp32", "bfloat16") == "bf16"
    assert effective_precision("int8", "bfloat16") == "int8"
    assert effective_precision("fp16", None) == "fp16"


def test_compare_models_judges_logits_routing_and_other_outputs():
    ref = {"logits": _logits(), "expert_ids": REF_IDS, "hidden": np.ones((2, 3), np.float32)}
    same = compare_models(ref, ref, "int8")
    assert same["passed"] and same["routing"]["flipped"] == 0
    assert same["routing"]["real_flips"] is None  # no router scores: counted, not explained
    broken = dict(ref, hidden=ref["hidden"] + 1.0)
    result = compare_models(broken, ref, "int8")
    assert not result["passed"] and result["outputs"]["hidden"]["mismatched"] == 6
    missing = compare_models({"logits": ref["logits"], "expert_ids": REF_IDS}, ref, "int8")
    assert "output 'hidden' missing" in missing["failures"]
