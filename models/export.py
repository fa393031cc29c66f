"""Export the reference MoE model to one self-contained ONNX file, with golden outputs, cached.

`ensure_exported(config)` is the entry point: it returns the cached export for this config
and these torch/onnx/onnxscript versions, or exports it (atomically, safe against another
process exporting the same key at the same time) and writes `golden.npz` beside it with
PyTorch eager outputs on deterministic inputs.

`ensure_exported(config, with_past=True)` does the same for the decoder with a KV cache
(`kvcache.py`; cached under its own key, the no-cache export is untouched): its
`golden.npz` holds the prefill step (past length 0), and `generation.npz` the reference
greedy generation with the top-1/top-2 margin of every step.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from portable.errors import ModelError

from .cache import (
    GENERATION_FILENAME,
    GOLDEN_FILENAME,
    MODEL_FILENAME,
    OPSET,
    ROUTER_SCORES_KEY,
    ExportedModel,
    build_atomically,
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
from .kvcache import GOLDEN_GEN_LEN, greedy_generate, input_names, output_names, prefill_feeds
from .moe import KVCacheDecoder, Router, build_model

log = logging.getLogger(__name__)

GOLDEN_BATCH, GOLDEN_SEQ = 4, 64
GENERATION_PROMPT = (2, 16)
INPUT_NAME = "input_ids"
OUTPUT_NAMES = ("logits", "expert_ids")


def golden_input_ids(config: MoEConfig, batch: int = GOLDEN_BATCH,
                     seq: int = GOLDEN_SEQ) -> np.ndarray:
    """Deterministic int64 [4, 64] token ids in [0, vocab_size), derived from the seed.

    256 positions, so agreement fractions in reduced-precision parity mean something."""
    rng = np.random.default_rng([config.seed, 0x601DE7])
    return rng.integers(0, config.vocab_size, size=(batch, seq), dtype=np.int64)


def generation_prompt_ids(config: MoEConfig) -> np.ndarray:
    """The golden generation's prompt, int64 [2, 16] from the same seed: the preset seeds
    were chosen for a clear top-1/top-2 margin at every greedy step after this prompt."""
    return golden_input_ids(config, *GENERATION_PROMPT)


def _no_cache_program(config: MoEConfig) -> tuple[torch.nn.Module, tuple, dict]:
    """The module, example inputs and export arguments of the no-cache forward."""
    # Trace with batch and seq >= 2 and distinct: a size of 1 would be specialised away.
    example = torch.zeros(3, 5, dtype=torch.int64)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    return build_model(config), (example,), {
        "input_names": [INPUT_NAME],
        "output_names": list(OUTPUT_NAMES),
        "dynamic_shapes": {"input_ids": {0: batch, 1: seq}},
    }


def _with_past_program(config: MoEConfig) -> tuple[torch.nn.Module, tuple, dict]:
    """The same for the KV-cache decoder: batch, seq and past length all dynamic.

    Traced with past 7 (the exported graph concatenates along it, so past 0 runs too);
    the mask's length is left to the exporter, which derives it as past + seq.
    """
    b, s, past = 3, 5, 7
    ids = torch.zeros(b, s, dtype=torch.int64)
    mask = torch.ones(b, past + s, dtype=torch.int64)
    positions = torch.arange(past, past + s).expand(b, s).contiguous()
    cache = [torch.zeros(b, config.heads, past, config.head_dim) for _ in range(2 * config.layers)]
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    past_seq = torch.export.Dim("past_seq")
    shapes = (
        {0: batch, 1: seq},
        {0: batch, 1: torch.export.Dim.AUTO},
        {0: batch, 1: seq},
        tuple({0: batch, 2: past_seq} for _ in cache),  # the *past varargs, as one entry
    )
    return KVCacheDecoder(build_model(config)).eval(), (ids, mask, positions, *cache), {
        "input_names": input_names(config),
        "output_names": output_names(config),
        "dynamic_shapes": shapes,
    }


def export_onnx(config: MoEConfig, path: Path, with_past: bool = False) -> Path:
    """Export `config`'s model to `path` (one file, dynamic axes, opset 18, checked);
    `with_past` exports the decoder with a KV cache (`kvcache.py`)."""
    path = Path(path)
    model, example, names = (_with_past_program if with_past else _no_cache_program)(config)
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
            # One Dim shared by several inputs (batch, past_seq) is named once: as intended.
            warnings.filterwarnings("ignore", message="# The axis name: .* will not be used")
            program = torch.onnx.export(
                model,
                example,
                dynamo=True,
                **names,
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
    if with_past:
        _name_mask_length(proto)
    _set_metadata(proto, config)
    _check(proto, path, allowed_domains=_allowed_domains(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    log.info("exported %s in %.1f s (%d nodes)", path, time.perf_counter() - start,
             len(proto.graph.node))
    return path


def _name_mask_length(proto: onnx.ModelProto) -> None:
    """Give attention_mask's length the presents' dim name (`past_seq + seq`), not the
    exporter's internal symbol, so the signature says how the two relate."""
    present = next(o for o in proto.graph.output if o.name.startswith("present."))
    total = present.type.tensor_type.shape.dim[2].dim_param
    mask = next(i for i in proto.graph.input if i.name == "attention_mask")
    mask.type.tensor_type.shape.dim[1].dim_param = total


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


def write_golden(config: MoEConfig, path: Path, with_past: bool = False) -> Path:
    """PyTorch eager outputs on `golden_input_ids(config)`, as `golden.npz`.

    Beside the outputs, `reference.router_scores` float32 [moe_layers, batch, seq, experts]
    holds each MoE layer's selection scores (gate scores plus the selection-only bias, the
    values top-k chose by), so reduced-precision parity can tell a routing flip at a near-tie
    from a real error. It is not a model output: `ModelSource.golden()` ignores it. With
    past: the prefill step of the generation prompt (past length 0), inputs and outputs.
    """
    ids = generation_prompt_ids(config) if with_past else golden_input_ids(config)
    model = build_model(config)
    if with_past:
        feeds = prefill_feeds(config, ids)
        with torch.no_grad():
            values = KVCacheDecoder(model)(*(torch.from_numpy(v) for v in feeds.values()))
        outputs = dict(zip(output_names(config), (v.numpy() for v in values), strict=True))
        with open(path, "wb") as f:
            np.savez(f, **{f"input.{k}": v for k, v in feeds.items()},
                     **{f"output.{k}": v for k, v in outputs.items()})
        return Path(path)
    captured: list[torch.Tensor] = []

    def capture(router: torch.nn.Module, args: tuple[torch.Tensor, ...], _out: object) -> None:
        logits = torch.nn.functional.linear(args[0], router.weight)
        scores = logits.sigmoid() if config.gate == "sigmoid" else logits.softmax(dim=-1)
        captured.append(scores + router.e_score_correction_bias)

    hooks = [m.register_forward_hook(capture) for m in model.modules()
             if isinstance(m, Router)]
    try:
        with torch.no_grad():
            logits, expert_ids = model(torch.from_numpy(ids))
    finally:
        for hook in hooks:
            hook.remove()
    scores = torch.stack(captured).reshape(len(captured), *ids.shape, config.num_experts)
    with open(path, "wb") as f:
        np.savez(
            f,
            **{
                f"input.{INPUT_NAME}": ids,
                "output.logits": logits.numpy().astype(np.float32),
                "output.expert_ids": expert_ids.numpy().astype(np.int64),
                ROUTER_SCORES_KEY: scores.numpy().astype(np.float32),
            },
        )
    return Path(path)


def write_generation(config: MoEConfig, path: Path) -> Path:
    """The golden greedy generation as `generation.npz`: `prompt_ids` [2, 16]
    (`generation_prompt_ids`), `token_ids` and `margins` [2, GOLDEN_GEN_LEN], `min_margin`."""
    prompt = generation_prompt_ids(config)
    tokens, margins = greedy_generate(build_model(config), prompt, GOLDEN_GEN_LEN)
    with open(path, "wb") as f:
        np.savez(f, prompt_ids=prompt, token_ids=tokens, margins=margins,
                 min_margin=np.float32(margins.min()))
    return Path(path)


def load_generation(exported: ExportedModel) -> dict[str, np.ndarray]:
    """The golden generation of a with-past export (see `write_generation`)."""
    if exported.generation_path is None:
        raise ModelError("this export has no KV cache and no golden generation; "
                         "export it with with_past=True")
    with np.load(exported.generation_path, allow_pickle=False) as data:
        return dict(data)


# -- cache ----------------------------------------------------------------------------------
def ensure_exported(config: MoEConfig, cache_dir: Path | None = None,
                    with_past: bool = False) -> ExportedModel:
    """The exported model and golden file for `config`, exporting them on a cache miss.

    `with_past=True`: the decoder with a KV cache, with its golden generation too.
    """
    target = cache_target(config, cache_dir, with_past)

    def build(tmp: Path) -> None:
        export_onnx(config, tmp / MODEL_FILENAME, with_past=with_past)
        write_golden(config, tmp / GOLDEN_FILENAME, with_past=with_past)
        if with_past:
            write_generation(config, tmp / GENERATION_FILENAME)
        else:
            write_cases(config, tmp / CASES_FILENAME)
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    cached = build_atomically(target, build)
    return existing_export(config, target, cached, with_past)


__all__ = [
    "ExportedModel",
    "default_cache_dir",
    "ensure_exported",
    "export_key",
    "export_onnx",
    "generation_prompt_ids",
    "golden_input_ids",
    "load_config_from_onnx",
    "load_generation",
    "write_generation",
    "write_golden",
]
