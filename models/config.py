"""Configuration of the reference MoE model: a frozen dataclass, presets, overrides.

This module never imports torch, so listing presets, parsing overrides and reading
a model's embedded config stay cheap. The module itself lives in `moe.py`, the
exporter in `export.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from portable.errors import ModelError

GATES = ("sigmoid", "softmax")
DISPATCHES = ("sparse", "dense", "fused")

#: `metadata_props` keys written by the exporter and read by `load_config_from_onnx`.
METADATA_CONFIG_KEY = "portable.config"
METADATA_KIND_KEY = "portable.kind"
MODEL_KIND = "reference-moe"


@dataclass(frozen=True, kw_only=True)
class MoEConfig:
    """A DeepSeek-V3-style decoder: `dense_layers` dense-FFN layers, then MoE layers.

    Each MoE layer has `num_shared_experts` always-on experts plus `num_experts` routed
    SwiGLU experts of width `expert_intermediate`, of which `top_k` run per token,
    chosen inside `topk_groups` of `n_groups` expert groups.
    """

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    dense_layers: int = 1
    dense_intermediate: int
    num_experts: int
    num_shared_experts: int
    expert_intermediate: int
    top_k: int
    n_groups: int = 1
    topk_groups: int = 1
    route_scale: float = 1.0
    gate: str = "sigmoid"
    dispatch: str = "sparse"
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    seed: int = 0

    def __post_init__(self) -> None:
        problems = _validate(self)
        if problems:
            raise ModelError(
                "invalid MoE config: " + "; ".join(problems)
                + " (fix these fields, e.g. with --set key=value)"
            )

    # -- derived sizes -------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def experts_per_group(self) -> int:
        return self.num_experts // self.n_groups

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MoEConfig:
        if not isinstance(data, Mapping):
            raise ModelError(
                f"MoE config must be a JSON object, got {type(data).__name__}; "
                "regenerate it with `portable export`"
            )
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown keys {unknown}")
            if missing:
                parts.append(f"missing keys {missing}")
            raise ModelError(
                f"MoE config has {' and '.join(parts)}; valid keys: {', '.join(names)}. "
                "It was probably written by another version of portable: re-export the model."
            )
        values = {f.name: _coerce(f.name, _field_type(f), data[f.name]) for f in fields(cls)}
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def cache_key(self) -> str:
        """A short stable hash of the config (16 hex digits)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _field_type(f: dataclasses.Field) -> type:
    # `from __future__ import annotations` makes f.type a string.
    return {"int": int, "float": float, "str": str}[str(f.type)]


def _coerce(name: str, typ: type, value: Any) -> Any:
    """Check a JSON value against the field type (ints accepted for floats)."""
    if typ is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ is str and isinstance(value, str):
        return value
    raise ModelError(
        f"MoE config field {name!r} must be {typ.__name__}, got {value!r}; "
        "re-export the model or fix the value"
    )


def _validate(c: MoEConfig) -> list[str]:
    p: list[str] = []
    for name in ("vocab_size", "hidden", "layers", "heads", "dense_intermediate",
                 "num_experts", "expert_intermediate", "top_k", "n_groups", "topk_groups"):
        if getattr(c, name) < 1:
            p.append(f"{name}={getattr(c, name)} must be >= 1")
    for name in ("dense_layers", "num_shared_experts", "seed"):
        if getattr(c, name) < 0:
            p.append(f"{name}={getattr(c, name)} must be >= 0")
    if p:
        return p  # the checks below divide by these
    if c.gate not in GATES:
        p.append(f"gate={c.gate!r} must be one of {', '.join(GATES)}")
    if c.dispatch not in DISPATCHES:
        p.append(f"dispatch={c.dispatch!r} must be one of {', '.join(DISPATCHES)}")
    if c.hidden % c.heads:
        p.append(f"hidden={c.hidden} must be divisible by heads={c.heads}")
    elif c.head_dim % 2:
        p.append(f"head dim hidden/heads={c.head_dim} must be even for RoPE")
    if c.layers <= c.dense_layers:
        p.append(f"layers={c.layers} must exceed dense_layers={c.dense_layers} "
                 "(at least one MoE layer)")
    if c.top_k > c.num_experts:
        p.append(f"top_k={c.top_k} must be <= num_experts={c.num_experts}")
    if c.num_experts % c.n_groups:
        p.append(f"num_experts={c.num_experts} must be divisible by n_groups={c.n_groups}")
    elif c.topk_groups > c.n_groups:
        p.append(f"topk_groups={c.topk_groups} must be <= n_groups={c.n_groups}")
    elif c.top_k > c.topk_groups * c.experts_per_group:
        p.append(f"top_k={c.top_k} must be <= topk_groups * experts per group "
                 f"= {c.topk_groups} * {c.experts_per_group}")
    if not c.route_scale > 0:
        p.append(f"route_scale={c.route_scale} must be > 0")
    if not c.rope_theta > 0:
        p.append(f"rope_theta={c.rope_theta} must be > 0")
    if not c.norm_eps > 0:
        p.append(f"norm_eps={c.norm_eps} must be > 0")
    return p


PRESETS: dict[str, MoEConfig] = {
    # CI-sized: ~0.2 M parameters, < 1 MB of weights.
    "moe-tiny": MoEConfig(
        vocab_size=512, hidden=64, layers=2, heads=4, dense_layers=1, dense_intermediate=128,
        num_experts=8, num_shared_experts=1, expert_intermediate=32, top_k=2,
        n_groups=2, topk_groups=1, route_scale=1.0,
    ),
    # The shape the dispatch measurements used, with group-limited routing.
    "moe-small": MoEConfig(
        vocab_size=1024, hidden=256, layers=3, heads=4, dense_layers=1, dense_intermediate=512,
        num_experts=32, num_shared_experts=1, expert_intermediate=128, top_k=4,
        n_groups=4, topk_groups=2, route_scale=1.0,
    ),
    # DeepSeek-V3's routing shape (64 routed + 2 shared, top-6, 8 groups / 4 kept), scaled down.
    "moe-base": MoEConfig(
        vocab_size=4096, hidden=512, layers=4, heads=8, dense_layers=1, dense_intermediate=1408,
        num_experts=64, num_shared_experts=2, expert_intermediate=256, top_k=6,
        n_groups=8, topk_groups=4, route_scale=2.5,
    ),
}


def get_preset(name: str) -> MoEConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelError(
            f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}"
        ) from None


def apply_overrides(config: MoEConfig, items: Sequence[str]) -> MoEConfig:
    """Return `config` with `"key=value"` overrides applied, values parsed by field type."""
    by_name = {f.name: f for f in fields(MoEConfig)}
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ModelError(f"override {item!r} is not of the form key=value (e.g. top_k=4)")
        if key not in by_name:
            raise ModelError(
                f"unknown model config key {key!r} in override {item!r}; "
                f"valid keys: {', '.join(by_name)}"
            )
        typ = _field_type(by_name[key])
        try:
            changes[key] = typ(raw)
        except ValueError:
            raise ModelError(
                f"bad value {raw!r} for model config key {key!r}: expected {typ.__name__}"
            ) from None
    return dataclasses.replace(config, **changes)


# -- parameter counts (for reports) --------------------------------------------------------
def moe_layer_count(config: MoEConfig) -> int:
    return config.layers - config.dense_layers


def _swiglu_params(hidden: int, intermediate: int) -> int:
    return 3 * hidden * intermediate


def _shared_params(c: MoEConfig) -> int:
    """Everything but the routed experts: embeddings, attention, norms, dense/shared FFNs, gates."""
    h = c.hidden
    per_layer = 4 * h * h + 2 * h  # q, k, v, o projections + two RMSNorm weights
    n = c.vocab_size * h  # embedding
    n += c.layers * per_layer
    n += c.dense_layers * _swiglu_params(h, c.dense_intermediate)
    moe = moe_layer_count(c)
    n += moe * c.num_shared_experts * _swiglu_params(h, c.expert_intermediate)
    n += moe * c.num_experts * h  # router weights (the bias is a buffer, not counted)
    n += h + c.vocab_size * h  # final norm + untied lm head
    return n


def total_params(config: MoEConfig) -> int:
    routed = config.num_experts * _swiglu_params(config.hidden, config.expert_intermediate)
    return _shared_params(config) + moe_layer_count(config) * routed


def active_params_per_token(config: MoEConfig) -> int:
    routed = config.top_k * _swiglu_params(config.hidden, config.expert_intermediate)
    return _shared_params(config) + moe_layer_count(config) * routed


def load_config_from_onnx(path: str | Path) -> MoEConfig | None:
    """The config embedded in an exported reference model, or None if it carries none.

    Reads only the graph protobuf (external data is never followed).
    """
    import onnx  # local: keeps `import portable.models.config` light

    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError as e:
        raise ModelError(f"cannot read ONNX model {path}: {e}; check the path") from e
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelError(f"{path} is not a valid ONNX model ({e}); re-export it") from e
    meta = {p.key: p.value for p in model.metadata_props}
    raw = meta.get(METADATA_CONFIG_KEY)
    if raw is None:
        return None
    kind = meta.get(METADATA_KIND_KEY)
    if kind != MODEL_KIND:
        raise ModelError(
            f"{path} has a {METADATA_CONFIG_KEY!r} entry but {METADATA_KIND_KEY!r} is {kind!r}, "
            f"not {MODEL_KIND!r}; re-export it with `portable export`"
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ModelError(
            f"{path}: metadata {METADATA_CONFIG_KEY!r} is not valid JSON ({e}); re-export it"
        ) from e
    return MoEConfig.from_dict(data)
