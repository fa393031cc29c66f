"""Property tests of the DeepSeek-V3 gate over random shapes, scales and biases (hypothesis)."""

from __future__ import annotations

import dataclasses

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from portable.models.config import get_preset
from portable.models.moe import Router

HIDDEN = 16


@st.composite
def router_cases(draw):
    """A valid gate config, its router with random weights and bias, and tokens."""
    n_groups = draw(st.sampled_from([1, 2, 4]))
    per_group = draw(st.integers(2, 6))
    topk_groups = draw(st.integers(1, n_groups))
    top_k = draw(st.integers(1, topk_groups * per_group))
    config = dataclasses.replace(
        get_preset("moe-tiny"), hidden=HIDDEN, heads=2, num_experts=n_groups * per_group,
        n_groups=n_groups, topk_groups=topk_groups, top_k=top_k,
        route_scale=draw(st.floats(0.1, 4.0)),
    )
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    router = Router(config)
    with torch.no_grad():
        router.weight.copy_(torch.randn(router.weight.shape, generator=g))
        router.e_score_correction_bias.copy_(
            (torch.rand(config.num_experts, generator=g) - 0.5) * draw(st.floats(0.0, 1.0)))
    tokens = torch.randn(draw(st.integers(1, 40)), HIDDEN, generator=g)
    return config, router, tokens


def _kept_groups(config, router, x):
    """The topk_groups best groups per token by the sum of their top-2 biased scores."""
    biased = (x @ router.weight.T).sigmoid() + router.e_score_correction_bias
    grouped = biased.view(len(x), config.n_groups, -1)
    score = grouped.topk(min(2, grouped.shape[-1]), dim=-1).values.sum(-1)
    return score.topk(config.topk_groups, dim=-1).indices


@settings(max_examples=40, deadline=None)
@given(router_cases())
@torch.no_grad()
def test_weights_sum_to_route_scale_and_ids_are_unique(case):
    config, router, x = case
    ids, weights = router(x)
    assert ids.shape == weights.shape == (len(x), config.top_k)
    torch.testing.assert_close(weights.sum(-1), torch.full((len(x),), config.route_scale),
                               rtol=1e-5, atol=1e-6)
    assert (weights > 0).all()
    assert (ids[:, 1:] > ids[:, :-1]).all()  # unique (strictly ascending) per token
    assert ids.min() >= 0 and ids.max() < config.num_experts


@settings(max_examples=40, deadline=None)
@given(router_cases())
@torch.no_grad()
def test_only_kept_groups_are_chosen(case):
    config, router, x = case
    ids, _ = router(x)
    kept = _kept_groups(config, router, x)
    groups = ids // config.experts_per_group
    for token_groups, token_kept in zip(groups.tolist(), kept.tolist(), strict=True):
        assert set(token_groups) <= set(token_kept)


@settings(max_examples=40, deadline=None)
@given(router_cases(), st.data())
@torch.no_grad()
def test_bias_changes_selection_not_weights(case, data):
    config, router, x = case
    scores = (x @ router.weight.T).sigmoid()
    ids, weights = router(x)
    chosen = scores.gather(1, ids)
    torch.testing.assert_close(weights, chosen / chosen.sum(-1, keepdim=True)
                               * config.route_scale, rtol=1e-5, atol=1e-6)
    # A bias far above any score forces that expert in for every token (its group wins
    # too); the weights stay the normalised *unbiased* scores of whatever was chosen.
    favourite = data.draw(st.integers(0, config.num_experts - 1))
    bias = torch.zeros(config.num_experts)
    bias[favourite] = 10.0
    router.e_score_correction_bias.copy_(bias)
    forced_ids, forced_w = router(x)
    assert (forced_ids == favourite).any(dim=1).all()
    chosen = scores.gather(1, forced_ids)
    torch.testing.assert_close(forced_w, chosen / chosen.sum(-1, keepdim=True)
                               * config.route_scale, rtol=1e-5, atol=1e-6)
