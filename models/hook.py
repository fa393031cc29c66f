"""The reference MoE's side of `portable.reference`: what the core may ask of the model.

Registered as ``portable.models.hook:HOOK`` in the ``portable.reference`` entry-point
group. Importing it does not import torch; only exporting a preset on a cache miss does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from portable.errors import ModelError
from portable.reference import ReferenceExport

from .config import (
    DISPATCHES,
    PRESETS,
    MoEConfig,
    active_params_per_token,
    apply_overrides,
    get_preset,
    total_params,
)
from .golden import CASE_NAMES, CASES_FILENAME, read_cases, write_cases

BYTES_PER_PARAM = 4  # float32 weights, as exported


class MoEReference:
    presets = tuple(PRESETS)
    dispatches = DISPATCHES
    golden_case_names = CASE_NAMES

    def export(self, preset: str, overrides: Sequence[str], dispatch: str | None,
               progress: Callable[[str], None] | None = None, with_past: bool = False,
               precision: str = "fp32") -> ReferenceExport:
        from .cache import cached_export
        from .variants import cached_variant, variant_name

        config = apply_overrides(get_preset(preset), overrides)
        if dispatch:
            config = apply_overrides(config, [f"dispatch={dispatch}"])
        if with_past and precision != "fp32":
            raise ModelError("the decoder with a KV cache is exported at fp32 only; "
                             "drop --precision for the generate scenario")
        variant = precision != "fp32"
        exported = (cached_variant(config, precision) if variant
                    else cached_export(config, with_past=with_past))
        if exported is None:  # only a cache miss pays for importing torch or converters
            say = progress or (lambda message: None)
            say(f"exporting {variant_name(preset, precision)} to ONNX with golden outputs "
                "(first use; cached afterwards)")
            started = time.monotonic()
            exported = self._build(config, with_past, precision)
            say(f"exported {preset} in {time.monotonic() - started:.1f}s")
        name = preset if config == get_preset(preset) else f"{preset}+{config.cache_key()}"
        return ReferenceExport(variant_name(name, precision), exported.onnx_path,
                               exported.golden_path, exported.config.to_dict(), precision,
                               exported.generation_path)

    @staticmethod
    def _build(config: MoEConfig, with_past: bool, precision: str) -> Any:
        if precision != "fp32":
            from .variants import ensure_variant

            return ensure_variant(config, precision)
        from .export import ensure_exported

        return ensure_exported(config, with_past=with_past)

    def golden_cases(self, config: Mapping[str, Any]
                     ) -> list[tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Decode and prefill cases from PyTorch eager, read from beside the exported model;
        only an export made before they existed pays for torch here (once)."""
        from .cache import cache_target

        cfg = MoEConfig.from_dict(dict(config))
        path = cache_target(cfg) / CASES_FILENAME
        if not path.is_file():
            from .export import ensure_exported

            ensure_exported(cfg)
            if not path.is_file():
                write_cases(cfg, path)
        return read_cases(path)

    def figures(self, config: Mapping[str, Any], outputs: Mapping[str, np.ndarray]
                ) -> dict[str, Any]:
        """Total and active parameters and, from the run's routing output, the expert load."""
        cfg = MoEConfig.from_dict(dict(config))
        figures: dict[str, Any] = {
            "total_params": total_params(cfg),
            "active_params_per_token": active_params_per_token(cfg),
        }
        expert_ids = outputs.get("expert_ids")
        if expert_ids is not None and expert_ids.size:
            per_layer = np.asarray(expert_ids).reshape(expert_ids.shape[0], -1)
            figures["expert_load"] = [
                np.bincount(layer, minlength=cfg.num_experts).tolist() for layer in per_layer
            ]
        return figures

    def index_bounds(self, config: Mapping[str, Any]) -> dict[str, int]:
        return {"input_ids": int(config["vocab_size"])}

    def routing_groups(self, config: Mapping[str, Any]) -> tuple[int, int]:
        cfg = MoEConfig.from_dict(dict(config))
        return cfg.n_groups, cfg.topk_groups

    def cost(self, config: Mapping[str, Any], batch: int, seq: int) -> dict[str, float]:
        """FLOPs: 2 per active parameter per token plus attention's ``4 · seq² · hidden`` per
        layer and sample; bytes: the float32 weights a run must read at least once."""
        cfg = MoEConfig.from_dict(dict(config))
        tokens = batch * seq
        flops = (2 * active_params_per_token(cfg) * tokens
                 + 4 * cfg.layers * batch * seq**2 * cfg.hidden)
        params_read = min(total_params(cfg), active_params_per_token(cfg) * tokens)
        return {"flops": float(flops), "bytes": float(params_read * BYTES_PER_PARAM)}


HOOK = MoEReference()
