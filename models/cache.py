"""Where exported reference models live, and how a cache hit is found without torch.

`export.ensure_exported` writes the cache; `cached_export` only reads it, so resolving a
preset that was exported before (`portable bench -b cpu --model moe-small`) never imports
torch. Versions come from package metadata for the same reason.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from portable.errors import ModelError
from portable.paths import cache_dir

from .config import MoEConfig

#: Bump when the exported graph or the golden file changes for the same config and versions.
EXPORT_FORMAT_VERSION = 2
OPSET = 18
MODEL_FILENAME = "model.onnx"
GOLDEN_FILENAME = "golden.npz"


@dataclass(frozen=True)
class ExportedModel:
    config: MoEConfig
    onnx_path: Path
    golden_path: Path
    cached: bool


def default_cache_dir() -> Path:
    """The cache folder of `portable.paths.cache_dir` (`$PORTABLE_CACHE`, ...)."""
    return cache_dir()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def export_key(config: MoEConfig) -> str:
    """Cache key: the config plus everything that changes the exported bytes."""
    payload = {
        "config": config.to_dict(),
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "format": EXPORT_FORMAT_VERSION,
        "opset": OPSET,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_target(config: MoEConfig, cache_dir: Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / export_key(config)


def cached_export(config: MoEConfig, cache_dir: Path | None = None) -> ExportedModel | None:
    """The cached export of `config`, or None when it has not been exported yet."""
    target = cache_target(config, cache_dir)
    return existing_export(config, target, cached=True) if target.is_dir() else None


def existing_export(config: MoEConfig, target: Path, cached: bool) -> ExportedModel:
    onnx_path, golden_path = target / MODEL_FILENAME, target / GOLDEN_FILENAME
    missing = [p.name for p in (onnx_path, golden_path) if not p.is_file()]
    if missing:
        raise ModelError(
            f"cached export {target} is incomplete (missing {', '.join(missing)}); "
            "delete that directory and run again"
        )
    return ExportedModel(config=config, onnx_path=onnx_path, golden_path=golden_path,
                         cached=cached)
