"""The reference DeepSeek-style MoE model; installed as `portable.models`.

Importing this package does not import torch: configs and presets live in
`portable.models.config`; the module and exporter import torch when used.

    from portable.models import get_preset, ensure_exported
    exported = ensure_exported(get_preset("moe-tiny"))   # imports torch here
"""

from __future__ import annotations

from typing import Any

from .config import (
    PRESETS,
    MoEConfig,
    active_params_per_token,
    apply_overrides,
    get_preset,
    load_config_from_onnx,
    moe_layer_count,
    total_params,
)

# Torch-dependent names, imported on first use.
_LAZY = {
    "build_model": ".moe",
    "MoETransformer": ".moe",
    "ExportedModel": ".export",
    "ensure_exported": ".export",
    "export_onnx": ".export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "ExportedModel",
    "MoEConfig",
    "MoETransformer",
    "active_params_per_token",
    "apply_overrides",
    "build_model",
    "ensure_exported",
    "export_onnx",
    "get_preset",
    "load_config_from_onnx",
    "moe_layer_count",
    "total_params",
]
