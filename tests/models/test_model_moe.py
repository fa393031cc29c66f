"""The torch module: routing, dispatch forms, determinism, output contract."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from portable.models.config import get_preset, moe_layer_count
from portable.models.moe import (
    Router,
    _dense,
    _gather_per_token,
    _grouped_by_expert,
    _init_weights,
    build_model,
)

# Grouped routing with more than one kept group, a route scale != 1, non-trivial bias.
GROUPED = dataclasses.replace(get_preset("moe-tiny"), num_experts=16, n_groups=4,
                              topk_groups=2, top_k=3, route_scale=2.5)


def _router(config, bias=None):
    model = build_model(config)
    router = next(m for m in model.modules() if isinstance(m, Router))
    if bias is not None:
        router.e_score_correction_bias.copy_(bias)
    return router


def _tokens(n, hidden, seed=0):
    return torch.randn(n, hidden, generator=torch.Generator().manual_seed(seed))


def _reference_route(router, x):
    """A per-token, loop-based transcription of DeepSeek-V3's gate."""
    c = router.c
    ids_out, w_out = [], []
    for row in x:
        logits = router.weight @ row
        scores = logits.sigmoid() if c.gate == "sigmoid" else logits.softmax(-1)
        biased = (scores + router.e_score_correction_bias).tolist()
        per = c.experts_per_group
        groups = [sum(sorted(biased[g * per:(g + 1) * per], reverse=True)[:2])
                  for g in range(c.n_groups)]
        kept = sorted(range(c.n_groups), key=lambda g: -groups[g])[:c.topk_groups]
        allowed = [e for e in range(c.num_experts) if e // per in kept]
        chosen = sorted(sorted(allowed, key=lambda e: -biased[e])[:c.top_k])
        w = scores[chosen]
        if c.gate == "sigmoid":
            w = w / w.sum()
        ids_out.append(chosen)
        w_out.append(w * c.route_scale)
    return torch.tensor(ids_out), torch.stack(w_out)


@torch.no_grad()
@pytest.mark.parametrize("config", [get_preset("moe-tiny"), GROUPED,
                                    dataclasses.replace(GROUPED, gate="softmax")],
                         ids=["tiny", "grouped", "grouped-softmax"])
def test_router_matches_reference(config):
    router = _router(config)
    x = _tokens(64, config.hidden)
    ids, weights = router(x)
    ref_ids, ref_w = _reference_route(router, x)
    assert torch.equal(ids, ref_ids)
    torch.testing.assert_close(weights, ref_w, rtol=1e-6, atol=1e-6)


@torch.no_grad()
def test_router_weights_ids_and_groups():
    c = GROUPED
    router = _router(c)
    ids, weights = router(_tokens(256, c.hidden))
    assert ids.dtype == torch.int64 and ids.shape == (256, c.top_k)
    torch.testing.assert_close(weights.sum(-1), torch.full((256,), c.route_scale))
    assert (weights > 0).all()
    # unique and ascending within each token
    assert (ids[:, 1:] > ids[:, :-1]).all()
    # at most topk_groups groups per token
    groups = ids // c.experts_per_group
    assert max(len(set(row.tolist())) for row in groups) <= c.topk_groups
    # the load spreads over experts (not degenerate)
    assert torch.bincount(ids.flatten(), minlength=c.num_experts).count_nonzero() >= 12


@torch.no_grad()
def test_bias_changes_selection_not_weights():
    c = GROUPED
    x = _tokens(128, c.hidden)
    plain = _router(c, bias=torch.zeros(c.num_experts))
    biased = _router(c)
    assert biased.e_score_correction_bias.abs().min() > 0  # non-zero from the seed
    ids0, _ = plain(x)
    ids1, w1 = biased(x)
    assert not torch.equal(ids0, ids1)  # the seeded bias matters
    # Weights always come from the unbiased scores of the chosen experts.
    scores = (x @ biased.weight.T).sigmoid()
    chosen = scores.gather(1, ids1)
    torch.testing.assert_close(w1, chosen / chosen.sum(-1, keepdim=True) * c.route_scale)
    # A huge bias on expert 5 forces it in for every token, yet its weight stays a score.
    forced = torch.zeros(c.num_experts)
    forced[5] = 100.0
    ids2, w2 = _router(c, bias=forced)(x)
    assert (ids2 == 5).any(dim=1).all()
    chosen = scores.gather(1, ids2)
    torch.testing.assert_close(w2, chosen / chosen.sum(-1, keepdim=True) * c.route_scale)
    assert w2.max() < c.route_scale  # not a weight of ~1 from the biased score


@torch.no_grad()
@pytest.mark.parametrize("tokens", [1, 2, 3, 7, 64, 300])
def test_dispatch_forms_agree(tokens):
    c = dataclasses.replace(GROUPED, expert_intermediate=24)
    model = build_model(c)
    experts = model.blocks[-1].ffn.experts
    router = model.blocks[-1].ffn.router
    x = _tokens(tokens, c.hidden, seed=tokens)
    ids, w = router(x)
    args = (x, ids, w, experts.w1, experts.w3, experts.w2)
    dense = _dense(*args)
    torch.testing.assert_close(_gather_per_token(*args), dense, rtol=0, atol=1e-5)
    torch.testing.assert_close(_grouped_by_expert(*args), dense, rtol=0, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize("shape", [(2, 16), (1, 1), (3, 37)])
def test_sparse_and_dense_models_agree(tiny_config, shape):
    sparse = build_model(tiny_config)
    dense = build_model(dataclasses.replace(tiny_config, dispatch="dense"))
    ids = torch.randint(0, tiny_config.vocab_size, shape,
                        generator=torch.Generator().manual_seed(1))
    (ls, es), (ld, ed) = sparse(ids), dense(ids)
    assert torch.equal(es, ed)
    assert (ls - ld).abs().max().item() <= 1e-5


@torch.no_grad()
def test_forward_contract(tiny_model, tiny_config):
    ids = torch.randint(0, tiny_config.vocab_size, (3, 5),
                        generator=torch.Generator().manual_seed(2))
    logits, expert_ids = tiny_model(ids)
    assert logits.dtype == torch.float32 and logits.shape == (3, 5, tiny_config.vocab_size)
    assert expert_ids.dtype == torch.int64
    assert expert_ids.shape == (moe_layer_count(tiny_config), 3, 5, tiny_config.top_k)
    assert ((expert_ids >= 0) & (expert_ids < tiny_config.num_experts)).all()
    assert torch.isfinite(logits).all()
    # activations stay O(1): logits neither vanishing nor exploding, predictions vary
    assert 0.3 < logits.std().item() < 5.0
    assert logits.argmax(-1).unique().numel() > 3
    # causal: later tokens do not change earlier logits
    longer, _ = tiny_model(torch.cat([ids, ids[:, :2]], dim=1))
    torch.testing.assert_close(longer[:, :5], logits, rtol=0, atol=1e-5)


def test_eval_mode_and_determinism(tiny_config):
    a, b = build_model(tiny_config), build_model(tiny_config)
    assert not a.training
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    other = build_model(dataclasses.replace(tiny_config, seed=tiny_config.seed + 1)).state_dict()
    for k in sa:
        if not (k.endswith("inv_freq") or sa[k].numel() == 0):
            assert not torch.equal(sa[k], other[k]), k


def test_init_does_not_touch_global_rng(tiny_config):
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    model = build_model(tiny_config)
    _init_weights(model, 5)
    assert torch.equal(torch.rand(4), expected)


def _random_experts(n, hidden, inter, seed):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=g) / shape[-1] ** 0.5
                 for shape in ((n, inter, hidden), (n, inter, hidden), (n, hidden, inter)))


@torch.no_grad()
@pytest.mark.parametrize(("n", "k", "tokens", "load"), [
    (64, 2, 128, "skewed"),   # a few experts take most tokens: every tier is used
    (64, 2, 128, "uniform"),  # equal loads: the overflow tiers are one padding row deep
    (64, 2, 128, "one-hot"),  # every token picks experts 0 and 1
    (16, 3, 9, "random"),
    (8, 2, 5, "random"),
    (3, 2, 4, "random"),      # the tiers hold one expert each
    (2, 1, 6, "random"),
    (1, 1, 3, "random"),      # a single expert: no expert below the tiers to bound them
])
def test_grouped_tiers_match_dense(n, k, tokens, load):
    """The tiered grouped buffers compute the same sum as dense for any load shape."""
    hidden, inter = 32, 16
    g = torch.Generator().manual_seed(n * 100 + tokens)
    x = torch.randn(tokens, hidden, generator=g)
    if load == "skewed":
        # Zipf-like preferences: expert e is drawn with weight 1 / (e + 1).
        p = 1.0 / torch.arange(1, n + 1, dtype=torch.float64)
        ids = torch.stack([torch.multinomial(p, k, generator=g) for _ in range(tokens)])
    elif load == "uniform":
        ids = (torch.arange(tokens * k) % n).view(tokens, k)
    elif load == "one-hot":
        ids = torch.arange(k).expand(tokens, k)
    else:
        ids = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(tokens)])
    ids = ids.sort(dim=-1).values
    weights = torch.rand(tokens, k, generator=g)
    args = (x, ids, weights, *_random_experts(n, hidden, inter, seed=n))
    torch.testing.assert_close(_grouped_by_expert(*args), _dense(*args), rtol=0, atol=1e-5)
