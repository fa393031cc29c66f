"""Export the reference MoE model to one self-contained ONNX file, with golden outputs, cached.

`ensure_exported(config)` is the entry point: it returns the cached export for this config
and these torch/onnx/onnxscript versions, or exports it (atomically, safe against another
process exporting the same key at the same time) and writes `golden.npz` beside it with
PyTorch eager outputs on deterministic inputs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from portable.errors import ModelError

from .cache import (
    GOLDEN_FILENAME,
    MODEL_FILENAME,
    OPSET,
    ExportedModel,
    cache_target,
    default_cache_dir,
    existing_export,
    export_key,
)
from .config import (
    METADATA_CONFIG_KEY,
    METADATA_KIND_KEY,
    MODEL_KIND,
    MoEConfig,
    load_config_from_onnx,
)
from .golden import CASES_FILENAME, write_cases
from .moe import build_model

log = logging.getLogger(__name__)

GOLDEN_BATCH, GOLDEN_SEQ = 2, 16
INPUT_NAME = "input_ids"
OUTPUT_NAMES = ("logits", "expert_ids")


def golden_input_ids(config: MoEConfig) -> np.ndarray:
    """Deterministic int64 [2, 16] token ids in [0, vocab_size), derived from the seed."""
    rng = np.random.default_rng([config.seed, 0x601DE7])
    return rng.integers(0, config.vocab_size, size=(GOLDEN_BATCH, GOLDEN_SEQ), dtype=np.int64)


def export_onnx(config: MoEConfig, path: Path) -> Path:
    """Export `config`'s model to `path` (one file, dynamic batch/seq, opset 18, checked)."""
    path = Path(path)
    model = build_model(config)
    # Trace with batch and seq >= 2 and distinct: a size of 1 would be specialised away.
    example = torch.zeros(3, 5, dtype=torch.int64)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    translations = {}
    if config.dispatch == "fused":
        from .fused import TRANSLATIONS as translations
    start = time.perf_counter()
    # The exporter warns once per torchvision op when torchvision is absent: noise here.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch's own pytree deprecation noise, not actionable by users.
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"input_ids": {0: batch, 1: seq}},
                custom_translation_table=translations,
                opset_version=OPSET,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as e:
        raise ModelError(
            f"torch.onnx.export failed for the reference model ({type(e).__name__}: {e}); "
            "check the torch/onnxscript versions (torch 2.13 + onnxscript 0.7 are known good)"
        ) from e
    proto = program.model_proto
    _set_metadata(proto, config)
    _check(proto, path, allowed_domains=_allowed_domains(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    log.info("exported %s in %.1f s (%d nodes)", path, time.perf_counter() - start,
             len(proto.graph.node))
    return path


def _set_metadata(proto: onnx.ModelProto, config: MoEConfig) -> None:
    entries = {METADATA_CONFIG_KEY: config.to_json(), METADATA_KIND_KEY: MODEL_KIND}
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)


def _allowed_domains(config: MoEConfig) -> set[str]:
    """Standard ONNX only, except the `fused` variant's ORT contrib op."""
    if config.dispatch == "fused":
        from .fused import MS_DOMAIN

        return {MS_DOMAIN}
    return set()


def _check(proto: onnx.ModelProto, path: Path, allowed_domains: set[str]) -> None:
    try:
        onnx.checker.check_model(proto, full_check=False)
        onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except Exception as e:
        raise ModelError(
            f"exported model for {path} fails ONNX validation ({e}); "
            "this is a bug in the exporter or the reference model, please report it"
        ) from e
    domains = {op.domain for op in proto.opset_import} - {"", "ai.onnx"} - allowed_domains
    if domains:
        raise ModelError(
            f"exported model uses non-standard ONNX domains {sorted(domains)}; "
            "only the fused variant may use ONNX Runtime's com.microsoft ops, please report it"
        )
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer):
        raise ModelError("exported model references external data; it must be one file")


def write_golden(config: MoEConfig, path: Path) -> Path:
    """PyTorch eager outputs on `golden_input_ids(config)`, as `golden.npz`."""
    ids = golden_input_ids(config)
    model = build_model(config)
    with torch.no_grad():
        logits, expert_ids = model(torch.from_numpy(ids))
    with open(path, "wb") as f:
        np.savez(
            f,
            **{
                f"input.{INPUT_NAME}": ids,
                "output.logits": logits.numpy().astype(np.float32),
                "output.expert_ids": expert_ids.numpy().astype(np.int64),
            },
        )
    return Path(path)


# -- cache ----------------------------------------------------------------------------------
def ensure_exported(config: MoEConfig, cache_dir: Path | None = None) -> ExportedModel:
    """The exported model and golden file for `config`, exporting them on a cache miss."""
    target = cache_target(config, cache_dir)
    models_dir = target.parent
    if target.is_dir():
        return existing_export(config, target, cached=True)
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=models_dir))
    except OSError as e:
        raise ModelError(
            f"cannot create the model cache under {models_dir} ({e}); "
            "set PORTABLE_CACHE to a writable directory"
        ) from e
    try:
        export_onnx(config, tmp / MODEL_FILENAME)
        write_golden(config, tmp / GOLDEN_FILENAME)
        write_cases(config, tmp / CASES_FILENAME)
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        try:
            os.rename(tmp, target)  # atomic; fails if another process got there first
        except OSError:
            if not target.is_dir():
                raise
            log.info("another process exported %s first; using its files", target)
            return existing_export(config, target, cached=True)
    except OSError as e:
        raise ModelError(
            f"cannot write the exported model to {target} ({e}); "
            "check free space and permissions, or set PORTABLE_CACHE"
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return existing_export(config, target, cached=False)


__all__ = [
    "ExportedModel",
    "default_cache_dir",
    "ensure_exported",
    "export_key",
    "export_onnx",
    "golden_input_ids",
    "load_config_from_onnx",
    "write_golden",
]
