"""Where exported reference models live, and how a cache hit is found without torch.

`export.ensure_exported` writes the cache; `cached_export` only reads it, so resolving a
preset that was exported before (`portable bench -b cpu --model moe-small`) never imports
torch. Versions come from package metadata for the same reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from portable.errors import ModelError
from portable.paths import cache_dir

from .config import MoEConfig

log = logging.getLogger(__name__)

#: Bump when the exported graph or the golden file changes for the same config and versions.
EXPORT_FORMAT_VERSION = 4
OPSET = 18
MODEL_FILENAME = "model.onnx"
GOLDEN_FILENAME = "golden.npz"
#: With-past exports only: the reference greedy generation (see `kvcache.greedy_generate`).
GENERATION_FILENAME = "generation.npz"
#: Golden-file key of the reference selection scores (see `export.write_golden`).
ROUTER_SCORES_KEY = "reference.router_scores"


@dataclass(frozen=True)
class ExportedModel:
    config: MoEConfig
    onnx_path: Path
    golden_path: Path
    cached: bool
    generation_path: Path | None = None
    """With-past exports: prompt_ids, token_ids, margins and min_margin of the golden
    greedy generation; None for the no-cache export."""

    @property
    def with_past(self) -> bool:
        return self.generation_path is not None


def default_cache_dir() -> Path:
    """The cache folder of `portable.paths.cache_dir` (`$PORTABLE_CACHE`, ...)."""
    return cache_dir()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def export_key(config: MoEConfig, with_past: bool = False) -> str:
    """Cache key: the config plus everything that changes the exported bytes.

    The with-past (KV cache) export adds a `variant` entry, so the no-cache key is the
    one it always was.
    """
    payload: dict[str, object] = {
        "config": config.to_dict(),
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "format": EXPORT_FORMAT_VERSION,
        "opset": OPSET,
    }
    if with_past:
        payload["variant"] = "with-past"
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_target(config: MoEConfig, cache_dir: Path | None = None,
                 with_past: bool = False) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "models" / export_key(config, with_past)


def cached_export(config: MoEConfig, cache_dir: Path | None = None,
                  with_past: bool = False) -> ExportedModel | None:
    """The cached export of `config`, or None when it has not been exported yet."""
    target = cache_target(config, cache_dir, with_past)
    return existing_export(config, target, True, with_past) if target.is_dir() else None


def existing_export(config: MoEConfig, target: Path, cached: bool,
                    with_past: bool = False) -> ExportedModel:
    onnx_path, golden_path = target / MODEL_FILENAME, target / GOLDEN_FILENAME
    generation_path = target / GENERATION_FILENAME if with_past else None
    expected = (onnx_path, golden_path) + ((generation_path,) if generation_path else ())
    missing = [p.name for p in expected if not p.is_file()]
    if missing:
        raise ModelError(
            f"cached export {target} is incomplete (missing {', '.join(missing)}); "
            "delete that directory and run again"
        )
    return ExportedModel(config=config, onnx_path=onnx_path, golden_path=golden_path,
                         cached=cached, generation_path=generation_path)


def build_atomically(target: Path, build: Callable[[Path], None]) -> bool:
    """Fill the cache directory `target` with `build(tmp)` unless it exists; True on a hit.

    Safe against another process building the same target at the same time: the files are
    written into a temporary sibling that is renamed into place.
    """
    if target.is_dir():
        return True
    models_dir = target.parent
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=models_dir))
    except OSError as e:
        raise ModelError(
            f"cannot create the model cache under {models_dir} ({e}); "
            "set PORTABLE_CACHE to a writable directory"
        ) from e
    try:
        build(tmp)
        try:
            os.rename(tmp, target)  # atomic; fails if another process got there first
        except OSError:
            if not target.is_dir():
                raise
            log.info("another process built %s first; using its files", target)
            return True
    except OSError as e:
        raise ModelError(
            f"cannot write the exported model to {target} ({e}); "
            "check free space and permissions, or set PORTABLE_CACHE"
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return False
