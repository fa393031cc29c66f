"""Precision variants of the reference presets: fp16, bf16, int8, int4, made from the fp32 export.

`ensure_variant(config, precision)` returns the variant's ONNX file and the golden file it is
judged against: the fp32 export's own (PyTorch eager in float32, with the reference router
scores), because the question a reduced-precision port asks is how far it is from the real
model. Variants are cached beside the fp32 export (`<key>-int8/`), made on first use, and
carry their precision in the ONNX metadata (`portable.precision`). A cache hit imports
neither torch nor onnxruntime.

What each variant needs from a runtime, beyond the fp32 graph's standard ONNX ops:

* fp16 / bf16: float16 / bfloat16 kernels for the graph's ops (`MatMul`, `Softmax`,
  `Sigmoid`, `Pow`, `ReduceMean`, `GatherND`, ...); ops whose ONNX schema has no such type
  run in float32 between `Cast`s (see `float_cast.py`).
* int8 / int4: `com.microsoft::MatMulNBits` (bits 8 / 4, symmetric, blocks of 64 / 32;
  int8 with accuracy_level 4, i.e. int8 activations inside the op) for the 2-D matmuls;
  standard `Gather`, `Cast`, `Mul`, `Shape`, `Concat`, `Reshape` for the gathered expert
  and embedding weights; int4 also `BitwiseAnd` and `BitShift` (opset 18).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from portable.errors import ModelError
from portable.modelsource import PRECISION_KEY
from portable.precision import check_precision

from .cache import (
    GOLDEN_FILENAME,
    MODEL_FILENAME,
    ExportedModel,
    build_atomically,
    cache_target,
    cached_export,
    existing_export,
)
from .config import MoEConfig

#: Bump when a conversion changes for the same fp32 export.
VARIANT_FORMAT_VERSION = 4


def variant_name(name: str, precision: str) -> str:
    """`moe-small` at int8 is `moe-small-int8`; fp32 keeps the plain name."""
    return name if precision == "fp32" else f"{name}-{precision}"




def variant_target(config: MoEConfig, precision: str, cache_dir: Path | None = None) -> Path:
    base = cache_target(config, cache_dir)
    return base.with_name(f"{base.name}-{precision}-v{VARIANT_FORMAT_VERSION}")


def cached_variant(config: MoEConfig, precision: str,
                   cache_dir: Path | None = None) -> ExportedModel | None:
    """The cached variant, or None when it (or the fp32 export) has not been made yet."""
    if check_precision(precision) == "fp32":
        return cached_export(config, cache_dir)
    target = variant_target(config, precision, cache_dir)
    return existing_export(config, target, cached=True) if target.is_dir() else None


def ensure_variant(config: MoEConfig, precision: str,
                   cache_dir: Path | None = None) -> ExportedModel:
    """The `precision` variant of `config`'s export and its golden file, made on a miss."""
    if (hit := cached_variant(config, precision, cache_dir)) is not None:
        return hit
    base = cached_export(config, cache_dir)
    if base is None:
        from .export import ensure_exported  # imports torch

        base = ensure_exported(config, cache_dir)
    if precision == "fp32":
        return base
    target = variant_target(config, precision, cache_dir)

    def build(tmp: Path) -> None:
        convert_file(base.onnx_path, tmp / MODEL_FILENAME, precision)
        shutil.copyfile(base.golden_path, tmp / GOLDEN_FILENAME)

    cached = build_atomically(target, build)
    return existing_export(config, target, cached=cached)


def convert_file(source: Path, destination: Path, precision: str) -> Path:
    """Write the `precision` variant of the fp32 ONNX file `source` to `destination`."""
    import onnx

    model = onnx.load(str(source))
    converted = convert(model, check_precision(precision))
    entries = {p.key: p.value for p in converted.metadata_props}
    entries[PRECISION_KEY] = precision
    del converted.metadata_props[:]
    for key, value in entries.items():
        converted.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(converted, full_check=False)
        onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    except Exception as e:
        raise ModelError(f"the {precision} variant of {source} fails ONNX validation ({e}); "
                         "this is a bug in the conversion, please report it") from e
    onnx.save_model(converted, str(destination))
    return destination


def convert(model: object, precision: str) -> object:
    """The `precision` variant of an fp32 `onnx.ModelProto`."""
    if precision == "fp32":
        return model
    if precision in ("fp16", "bf16"):
        from .float_cast import cast_model

        return cast_model(model, {"fp16": "float16", "bf16": "bfloat16"}[precision])
    from .quantize import quantize_model

    return quantize_model(model, {"int8": 8, "int4": 4}[precision])
