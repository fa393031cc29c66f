"""`fused` dispatch: the routed experts as one ONNX Runtime `com.microsoft::MoE` node.

ORT's CPU MoE kernel does its own routing: it takes a softmax over `router_probs` (treated
as logits), keeps the top-k and (with `normalize_routing_weights=1`) divides by their sum.
DeepSeek's gate (sigmoid, selection-only bias, group-limited top-k, `route_scale`) cannot
be expressed that way, so the gate runs outside the op and the op is fed
`log(dense_weights)`: the softmax of that is `w / sum(w)` on the chosen experts and exactly 0
elsewhere, so the op picks the same experts with the same relative weights; multiplying its
output by `sum(w)` per token restores the absolute weights (route_scale, softmax gating).

The op is traced as the custom torch op `portable::fused_moe` and translated to ONNX by
`TRANSLATIONS` (passed to `torch.onnx.export(custom_translation_table=...)`). The op takes
fc1 in ORT's interleaved SwiGLU layout `[N, 2I, H]` (row 2i = gate i, row 2i+1 = up i; the
only layout the CPU kernel accepts, `swiglu_fusion=1`) and fc2 as `[N, H, I]`. The file
keeps w1 and w3 as they are and interleaves them in the graph; ONNX Runtime folds that
into one constant when the session is created (any optimisation level but `disable`).
"""

from __future__ import annotations

import onnx
import onnxscript
import torch
import torch.nn.functional as F
from onnxscript import FLOAT
from onnxscript import opset18 as op
from torch import Tensor

#: The domain of ORT's contrib ops; a fused export declares it in `opset_import`.
MS_DOMAIN = "com.microsoft"


def _moe_schema() -> onnx.defs.OpSchema:
    """The subset of ORT's MoE schema used here (ORT's contrib schemas are not in onnx's
    registry, and the exporter needs one to lay out optional inputs and attributes)."""
    fp, attr = onnx.defs.OpSchema.FormalParameter, onnx.defs.OpSchema.Attribute
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    at = onnx.defs.OpSchema.AttrType
    return onnx.defs.OpSchema(
        "MoE", MS_DOMAIN, 1,
        inputs=[
            fp("input", "T"), fp("router_probs", "T"), fp("fc1_experts_weights", "T"),
            fp("fc1_experts_bias", "T", param_option=optional),
            fp("fc2_experts_weights", "T"),
        ],
        outputs=[fp("output", "T")],
        type_constraints=[("T", ["tensor(float)"], "float32 only here")],
        attributes=[
            attr("k", at.INT, "experts per token"),
            attr("activation_type", at.STRING, "swiglu"),
            attr("swiglu_fusion", at.INT, "1 = interleaved gate/up rows"),
            attr("normalize_routing_weights", at.INT, "divide top-k probs by their sum"),
            attr("activation_alpha", at.FLOAT, "sigmoid scale in SwiGLU"),
            attr("activation_beta", at.FLOAT, "offset added to the up projection"),
        ],
    )


_MOE = onnxscript.values.Op(onnxscript.values.Opset(MS_DOMAIN, 1), "MoE", _moe_schema())


def interleave_swiglu(w1: Tensor, w3: Tensor) -> Tensor:
    """Gate w1 and up w3 [N, I, H] -> ORT's interleaved fc1 [N, 2I, H]."""
    n, i, h = w1.shape
    return torch.stack((w1, w3), dim=2).reshape(n, 2 * i, h)


@torch.library.custom_op("portable::fused_moe", mutates_args=())
def fused_moe(x: Tensor, dense_weights: Tensor, fc1: Tensor, fc2: Tensor, top_k: int) -> Tensor:
    """sum over experts e with dense_weights[t, e] != 0 of dense_weights[t, e] * expert_e(x[t]).

    x [T, H]; dense_weights [T, N] (at most top_k non-zero per row); fc1 [N, 2I, H]
    interleaved; fc2 [N, H, I]. This eager body documents the semantics; the model itself
    calls the op only while exporting (eager runs the sparse path).
    """
    out = torch.zeros_like(x)
    for e in range(fc1.shape[0]):
        rows = dense_weights[:, e].nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        h1 = F.linear(x[rows], fc1[e])
        act = F.silu(h1[:, 0::2]) * h1[:, 1::2]
        out.index_add_(0, rows, F.linear(act, fc2[e]) * dense_weights[rows, e, None])
    return out


@fused_moe.register_fake
def _(x: Tensor, dense_weights: Tensor, fc1: Tensor, fc2: Tensor, top_k: int) -> Tensor:
    return torch.empty_like(x)


def _onnx_fused_moe(x: FLOAT, dense_weights: FLOAT, fc1: FLOAT, fc2: FLOAT,
                    top_k: int) -> FLOAT:
    total = op.ReduceSum(dense_weights, op.Constant(value_ints=[-1]), keepdims=1)  # [T, 1]
    y = _MOE(
        x, op.Log(dense_weights), fc1, None, fc2,
        k=top_k, activation_type="swiglu", swiglu_fusion=1, normalize_routing_weights=1,
        activation_alpha=1.0, activation_beta=0.0,
    )
    return op.Mul(y, total)


#: For `torch.onnx.export(custom_translation_table=...)`.
TRANSLATIONS = {torch.ops.portable.fused_moe.default: _onnx_fused_moe}


def fused_dispatch(x: Tensor, ids: Tensor, weights: Tensor,
                   w1: Tensor, w3: Tensor, w2: Tensor) -> Tensor:
    """The routed experts' weighted sum through `portable::fused_moe` (for export)."""
    t, n = x.shape[0], w1.shape[0]
    dense_w = torch.zeros(t, n, dtype=weights.dtype, device=x.device).scatter(1, ids, weights)
    return fused_moe(x, dense_w, interleave_swiglu(w1, w3), w2, ids.shape[1])
