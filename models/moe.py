"""The reference DeepSeek-V3-style MoE decoder in PyTorch, written to export cleanly to ONNX.

`build_model(config)` returns an eval-mode module whose `forward(input_ids)` returns
`(logits, expert_ids)`:

* `logits`: float32 `[batch, seq, vocab]`;
* `expert_ids`: int64 `[num_moe_layers, batch, seq, top_k]`, the routed experts chosen for
  each token in each MoE layer, sorted ascending within a token so runtimes compare exactly.

Everything uses standard ONNX-exportable ops with dynamic batch and sequence sizes. Sparse
dispatch picks, inside the graph (`torch.cond` -> ONNX `If`), between gathering the chosen
experts' weights per token (cheap when tokens * top_k <= num_experts, i.e. decode) and
grouping tokens by expert into padded buffers (prefill): every expert padded to a common
depth, plus an overflow tier for the most loaded experts' extra tokens; see
/work/shared/notes/moe-dispatch-measurements.md for the measurements behind that choice.
`dense` runs every expert (the baseline); `fused` exports the routed experts as ONNX Runtime's
`com.microsoft::MoE` contrib op (see `fused.py`) and runs the sparse path in eager mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MoEConfig, moe_layer_count


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _linear_weight(out_features: int, in_features: int) -> nn.Parameter:
    """An uninitialised [out, in] weight; `_init_weights` fills it from the seed."""
    return nn.Parameter(torch.empty(out_features, in_features))


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary position embeddings (rotate-half form)."""

    def __init__(self, c: MoEConfig):
        super().__init__()
        self.heads, self.head_dim = c.heads, c.head_dim
        self.q_proj = _linear_weight(c.hidden, c.hidden)
        self.k_proj = _linear_weight(c.hidden, c.hidden)
        self.v_proj = _linear_weight(c.hidden, c.hidden)
        self.o_proj = _linear_weight(c.hidden, c.hidden)
        inv_freq = 1.0 / (
            c.rope_theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float64) / c.head_dim)
        )
        self.register_buffer("inv_freq", inv_freq.to(torch.float32), persistent=False)

    def _rope(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = self.head_dim // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [b, s, hidden] -> q, k, v, each [b, heads, s, head_dim]."""
        b, s, _ = x.shape

        def split(w: Tensor) -> Tensor:
            return F.linear(x, w).view(b, s, self.heads, self.head_dim).transpose(1, 2)

        return split(self.q_proj), split(self.k_proj), split(self.v_proj)

    def rope_tables(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos, sin [..., head_dim/2] for float32 `positions` of any shape."""
        freqs = positions.unsqueeze(-1) * self.inv_freq
        return freqs.cos(), freqs.sin()

    def _output(self, scores: Tensor, v: Tensor) -> Tensor:
        out = torch.matmul(scores.softmax(dim=-1), v)  # [b, heads, s, head_dim]
        b, _, s, _ = out.shape
        return F.linear(out.transpose(1, 2).reshape(b, s, -1), self.o_proj)

    def forward(self, x: Tensor) -> Tensor:
        s = x.shape[1]
        q, k, v = self._qkv(x)
        cos, sin = self.rope_tables(torch.arange(s, dtype=torch.float32, device=x.device))
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        causal = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
        return self._output(scores.masked_fill(~causal, float("-inf")), v)

    def forward_with_past(self, x: Tensor, cos: Tensor, sin: Tensor, keep: Tensor,
                          past_k: Tensor, past_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Attend over the cached keys/values and these tokens'.

        cos/sin [b, 1, s, head_dim/2] come from the tokens' position ids; `keep` [b, 1, s,
        past+s] is True where a query may see a key (causal and not padding). Masked scores
        get the dtype's lowest finite value, not -inf, so a padded query row stays finite.
        Returns (output, present keys, present values), the presents [b, heads, past+s, d].
        """
        q, k, v = self._qkv(x)
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        k, v = torch.cat((past_k, k), dim=2), torch.cat((past_v, v), dim=2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
        return self._output(scores, v), k, v


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.w1 = _linear_weight(intermediate, hidden)  # gate projection
        self.w3 = _linear_weight(intermediate, hidden)  # up projection
        self.w2 = _linear_weight(hidden, intermediate)  # down projection

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(F.silu(F.linear(x, self.w1)) * F.linear(x, self.w3), self.w2)


class Router(nn.Module):
    """DeepSeek-V3 gate: bias-corrected, group-limited top-k over sigmoid (or softmax) scores."""

    def __init__(self, c: MoEConfig):
        super().__init__()
        self.c = c
        self.weight = _linear_weight(c.num_experts, c.hidden)
        # Load-balancing bias: used only to choose experts, never to weight them.
        self.register_buffer("e_score_correction_bias", torch.zeros(c.num_experts))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: [T, H] -> (expert ids [T, k] int64 ascending, routing weights [T, k] float32)."""
        c = self.c
        logits = F.linear(x, self.weight)
        scores = logits.sigmoid() if c.gate == "sigmoid" else logits.softmax(dim=-1)
        biased = scores + self.e_score_correction_bias
        if c.n_groups > 1:
            t = biased.shape[0]
            grouped = biased.view(t, c.n_groups, c.experts_per_group)
            group_scores = grouped.topk(min(2, c.experts_per_group), dim=-1).values.sum(-1)
            kept = group_scores.topk(c.topk_groups, dim=-1).indices  # [T, topk_groups]
            group_mask = torch.zeros_like(group_scores).scatter(1, kept, 1.0)
            expert_mask = group_mask.unsqueeze(-1).expand(t, c.n_groups, c.experts_per_group)
            biased = biased.masked_fill(expert_mask.reshape(t, c.num_experts) == 0,
                                        float("-inf"))
        chosen = biased.topk(c.top_k, dim=-1).indices
        # Sort ascending so every runtime reports the same order; weights follow the ids.
        ids = chosen.sort(dim=-1).values
        weights = scores.gather(1, ids)
        if c.gate == "sigmoid":
            weights = weights / weights.sum(dim=-1, keepdim=True)
        return ids, weights * c.route_scale


class RoutedExperts(nn.Module):
    """`num_experts` SwiGLU experts stored stacked: w1, w3 [N, I, H]; w2 [N, H, I]."""

    def __init__(self, c: MoEConfig):
        super().__init__()
        n, h, i = c.num_experts, c.hidden, c.expert_intermediate
        self.num_experts, self.top_k, self.dispatch = n, c.top_k, c.dispatch
        self.w1 = nn.Parameter(torch.empty(n, i, h))
        self.w3 = nn.Parameter(torch.empty(n, i, h))
        self.w2 = nn.Parameter(torch.empty(n, h, i))

    def forward(self, x: Tensor, ids: Tensor, weights: Tensor) -> Tensor:
        """x [T, H], ids/weights [T, k] -> weighted sum of the chosen experts' outputs [T, H]."""
        if self.dispatch == "dense":
            return _dense(x, ids, weights, self.w1, self.w3, self.w2)
        operands = (x, ids, weights, self.w1, self.w3, self.w2)
        traced = torch.compiler.is_compiling() or torch.compiler.is_exporting()
        if self.dispatch == "fused" and traced:
            # One ORT `com.microsoft::MoE` node; eager computes the same sum the sparse way.
            from .fused import fused_dispatch

            return fused_dispatch(*operands)
        # Gather per token when the per-token weight copies are fewer than all experts.
        small = x.shape[0] * self.top_k <= self.num_experts
        if traced:
            # Traced: keep both forms in the graph (ONNX `If`), chosen at run time.
            tiers = _tiers(self.num_experts)

            def grouped(*args: Tensor) -> Tensor:
                return _grouped_by_expert(*args, tiers=tiers)

            return torch.cond(small, _gather_per_token, grouped, operands)
        # Eager: torch.cond would compile; a plain branch computes the same thing.
        return _gather_per_token(*operands) if small else _grouped_by_expert(*operands)


def _swiglu_batched(x: Tensor, w1: Tensor, w3: Tensor, w2: Tensor) -> Tensor:
    """x [B, M, H] with per-batch weights w1/w3 [B, I, H], w2 [B, H, I] -> [B, M, H]."""
    gate = torch.matmul(x, w1.transpose(1, 2))
    up = torch.matmul(x, w3.transpose(1, 2))
    return torch.matmul(F.silu(gate) * up, w2.transpose(1, 2))


def _gather_per_token(x: Tensor, ids: Tensor, weights: Tensor,
                      w1: Tensor, w3: Tensor, w2: Tensor) -> Tensor:
    """Copy each token's k chosen experts' weights and run them as one batched matmul."""
    t, h = x.shape
    k = ids.shape[1]
    flat = ids.reshape(-1)  # [T*k], token-major
    xs = x.unsqueeze(1).expand(t, k, h).reshape(t * k, 1, h)
    y = _swiglu_batched(xs, w1[flat], w3[flat], w2[flat])  # [T*k, 1, H]
    return (y.reshape(t, k, h) * weights.unsqueeze(-1)).sum(dim=1)


#: Overflow tiers above the all-expert tier hold the n // d most loaded experts, per d here.
_TIER_DIVISORS = (16,)


def _tiers(n: int) -> tuple[tuple[int, int], ...]:
    """Per overflow tier, (m, i): it holds the m most loaded experts, and the load at
    by-load position i bounds the tier below it (the largest load of an expert left out;
    the smallest when there is one expert). m >= 2 when n allows: with m = 1 the exporter
    folds a few size-1 ops away and the node count would depend on N."""
    sizes = [min(n, max(2, n // d)) for d in _TIER_DIVISORS]
    return tuple((m, min(m, n - 1)) for m in sizes)


def _grouped_by_expert(x: Tensor, ids: Tensor, weights: Tensor,
                       w1: Tensor, w3: Tensor, w2: Tensor,
                       tiers: tuple[tuple[int, int], ...] | None = None) -> Tensor:
    """Group tokens by expert into padded buffers, one batched matmul per projection and
    tier, gather the results back in token order.

    Padding every expert to the largest group wastes most of the work when the load is
    skewed, so the sorted load curve is covered by a staircase: tier 0 holds every expert
    (weights used in place) padded to the load of the (m + 1)-th most loaded expert; the
    overflow tier holds the rows beyond that of the m most loaded experts (weights
    gathered: m = n/16 experts), padded to the largest load. Each tier is at least one row
    deep, so no buffer is empty. Row counts are data-dependent; the node count is not.
    """
    t, h = x.shape
    k = ids.shape[1]
    n = w1.shape[0]
    # Inside torch.cond the branch is traced with a symbolic n: the tiers come in as ints.
    tiers = tiers if tiers is not None else _tiers(n)
    flat = ids.reshape(-1)  # [A = T*k], assignment a belongs to token a // k
    arange_n = torch.arange(n, device=x.device)
    one_hot = (flat.unsqueeze(1) == arange_n.unsqueeze(0)).to(torch.int64)
    rank = ((one_hot.cumsum(dim=0) - 1) * one_hot).sum(dim=1)  # position within its expert
    load, order = one_hot.sum(dim=0).topk(n)  # experts by load, descending
    by_load = torch.zeros_like(order).scatter(0, order, arange_n)[flat]  # [A]
    # Tier boundaries in rows, strictly increasing, the last >= the largest load.
    bounds = [load[i] for _, i in tiers] + [load[0]]
    tops, depths = [load.new_zeros(())], []
    for bound in bounds:
        tops.append(torch.maximum(bound, tops[-1] + 1))
        depth = (tops[-1] - tops[-2]).item()
        torch._check(depth >= 1)
        torch._check(depth <= t + 1)
        depths.append(depth)
    # Each assignment's row in the tiers' buffers, stacked: tier 0 by expert id, the
    # overflow tiers by load order.
    slot = flat * depths[0] + rank
    offset = n * depths[0]
    for (m, _), top, depth in zip(tiers, tops[1:-1], depths[1:], strict=True):
        slot = torch.where(rank >= top, offset + by_load * depth + (rank - top), slot)
        offset = offset + m * depth
    xs = x.unsqueeze(1).expand(t, k, h).reshape(t * k, h)
    buf = x.new_zeros(offset, h).index_put((slot,), xs)
    rows = n * depths[0]
    ys = [_swiglu_batched(buf[:rows].reshape(n, depths[0], h), w1, w3, w2).reshape(rows, h)]
    for (m, _), depth in zip(tiers, depths[1:], strict=True):
        top = order[:m]
        part = buf[rows:rows + m * depth].reshape(m, depth, h)
        rows = rows + m * depth
        y = _swiglu_batched(part, w1.index_select(0, top), w3.index_select(0, top),
                            w2.index_select(0, top))
        ys.append(y.reshape(m * depth, h))
    y = torch.cat(ys)[slot]  # [A, H] in token-major order
    return (y.reshape(t, k, h) * weights.unsqueeze(-1)).sum(dim=1)


def _dense(x: Tensor, ids: Tensor, weights: Tensor,
           w1: Tensor, w3: Tensor, w2: Tensor) -> Tensor:
    """Every expert on every token, weighted by a dense [T, N] matrix (zero where unchosen).

    The input is expanded to [N, T, H] explicitly: OpenVINO rejects the broadcast
    [1, T, H] x [N, H, I] MatMul under dynamic shapes.
    """
    t, h = x.shape
    n = w1.shape[0]
    dense_w = torch.zeros(t, n, dtype=weights.dtype, device=x.device).scatter(1, ids, weights)
    y = _swiglu_batched(x.unsqueeze(0).expand(n, t, h), w1, w3, w2)  # [N, T, H]
    return (y * dense_w.transpose(0, 1).unsqueeze(-1)).sum(dim=0)


class MoE(nn.Module):
    def __init__(self, c: MoEConfig):
        super().__init__()
        self.router = Router(c)
        self.experts = RoutedExperts(c)
        self.shared = (
            SwiGLU(c.hidden, c.num_shared_experts * c.expert_intermediate)
            if c.num_shared_experts else None
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, s, h = x.shape
        flat = x.reshape(b * s, h)
        ids, weights = self.router(flat)
        out = self.experts(flat, ids, weights)
        if self.shared is not None:
            out = out + self.shared(flat)
        return out.view(b, s, h), ids.view(b, s, -1)


class Block(nn.Module):
    def __init__(self, c: MoEConfig, moe: bool):
        super().__init__()
        self.attn_norm = RMSNorm(c.hidden, c.norm_eps)
        self.attn = Attention(c)
        self.ffn_norm = RMSNorm(c.hidden, c.norm_eps)
        self.ffn: nn.Module = MoE(c) if moe else SwiGLU(c.hidden, c.dense_intermediate)
        self.is_moe = moe

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self._ffn(x + self.attn(self.attn_norm(x)))

    def _ffn(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.is_moe:
            y, ids = self.ffn(self.ffn_norm(x))
            return x + y, ids
        return x + self.ffn(self.ffn_norm(x)), None

    def forward_with_past(
        self, x: Tensor, cos: Tensor, sin: Tensor, keep: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
        """(output, expert ids or None, present keys, present values); see Attention."""
        y, k, v = self.attn.forward_with_past(self.attn_norm(x), cos, sin, keep, past_k, past_v)
        x, ids = self._ffn(x + y)
        return x, ids, k, v


class MoETransformer(nn.Module):
    def __init__(self, config: MoEConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Parameter(torch.empty(config.vocab_size, config.hidden))
        self.blocks = nn.ModuleList(
            Block(config, moe=i >= config.dense_layers) for i in range(config.layers)
        )
        self.norm = RMSNorm(config.hidden, config.norm_eps)
        self.lm_head = _linear_weight(config.vocab_size, config.hidden)

    def forward(self, input_ids: Tensor) -> tuple[Tensor, Tensor]:
        x = F.embedding(input_ids, self.embed)
        expert_ids = []
        for block in self.blocks:
            x, ids = block(x)
            if ids is not None:
                expert_ids.append(ids)
        logits = F.linear(self.norm(x), self.lm_head)
        return logits, torch.stack(expert_ids, dim=0)

    def forward_with_past(
        self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
        past: Sequence[tuple[Tensor, Tensor]],
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]], Tensor]:
        """One step of generation with a KV cache, in the Hugging Face convention.

        input_ids/position_ids [b, s] int64; attention_mask [b, past+s] (1 = attend);
        past: per layer (keys, values) [b, heads, past, head_dim], past may be 0.
        Returns (logits [b, s, vocab], per layer present (keys, values) [b, heads,
        past+s, head_dim], expert_ids [moe layers, b, s, k]). RoPE angles come from
        position_ids; causality from each query's index in the cache (past + i).
        """
        x = F.embedding(input_ids, self.embed)
        s, past_len = input_ids.shape[1], past[0][0].shape[2]
        cos, sin = self.blocks[0].attn.rope_tables(position_ids.to(torch.float32).unsqueeze(1))
        keys = torch.arange(attention_mask.shape[1], device=x.device)
        queries = torch.arange(s, device=x.device) + past_len
        causal = keys.unsqueeze(0) <= queries.unsqueeze(1)  # [s, past+s]
        keep = causal & attention_mask.to(torch.bool)[:, None, None, :]  # [b, 1, s, past+s]
        presents, expert_ids = [], []
        for block, (past_k, past_v) in zip(self.blocks, past, strict=True):
            x, ids, k, v = block.forward_with_past(x, cos, sin, keep, past_k, past_v)
            presents.append((k, v))
            if ids is not None:
                expert_ids.append(ids)
        logits = F.linear(self.norm(x), self.lm_head)
        return logits, presents, torch.stack(expert_ids, dim=0)


class KVCacheDecoder(nn.Module):
    """`MoETransformer.forward_with_past` with flat tensors, as the ONNX graph sees it.

    forward(input_ids, attention_mask, position_ids, past_0_key, past_0_value, ...) ->
    (logits, present_0_key, present_0_value, ..., expert_ids): the order of the exported
    inputs and outputs, so a session can call it positionally.
    """

    def __init__(self, model: MoETransformer):
        super().__init__()
        self.model = model

    def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor,
                *past: Tensor) -> tuple[Tensor, ...]:
        pairs = list(zip(past[0::2], past[1::2], strict=True))
        logits, presents, expert_ids = self.model.forward_with_past(
            input_ids, attention_mask, position_ids, pairs)
        return (logits, *(t for pair in presents for t in pair), expert_ids)


def _init_weights(model: MoETransformer, seed: int) -> None:
    """Fill every parameter and the router biases from a local generator seeded by `seed`.

    Scales keep the residual stream O(1): fan-in scaled projections, output projections
    further scaled by 1/sqrt(2 * layers), unit-variance embeddings, lm head giving logits of
    unit-ish spread. Norm weights are 1 + small noise so they matter in parity checks.
    """
    c = model.config
    g = torch.Generator(device="cpu").manual_seed(seed)
    residual_scale = 1.0 / math.sqrt(2 * c.layers)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name == "embed":
                p.copy_(noise)
            else:
                std = 1.0 / math.sqrt(p.shape[-1])
                if name.endswith(("o_proj", "w2")):
                    std *= residual_scale
                p.copy_(noise * std)
        for name, buf in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                # DeepSeek-V3 learns this bias to balance the load; a random one can only
                # skew it. +-0.01 is small next to the spread of sigmoid scores (~0.2 with
                # these weights), so it changes some choices without dominating them: at
                # +-0.1, 46 of 64 experts got tokens at prefill and the largest group was 23.
                buf.copy_((torch.rand(buf.shape, generator=g) - 0.5) * 0.02)


def build_model(config: MoEConfig) -> MoETransformer:
    """The reference model in eval mode, weights deterministic from `config.seed`."""
    model = MoETransformer(config)
    _init_weights(model, config.seed)
    return model.eval()


__all__ = ["KVCacheDecoder", "MoETransformer", "build_model", "moe_layer_count"]
