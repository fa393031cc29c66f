"""Golden cases: PyTorch eager outputs of the reference model at decode and prefill shapes.

With ``T = batch × seq`` tokens, the sparse dispatch gathers per token when
``T · top_k <= num_experts`` and groups tokens by expert otherwise (an ONNX `If`), so
the decode cases (1×1, 1×4) run the per-token branch of every preset and the prefill
case (2×16) the grouped one. They are written beside the exported model
(`cases.npz`) and read back without importing torch.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from portable.errors import ModelError

from .config import MoEConfig

CASES_FILENAME = "cases.npz"
#: (name, batch, seq).
CASES: tuple[tuple[str, int, int], ...] = (
    ("decode-1x1", 1, 1), ("decode-1x4", 1, 4), ("prefill-2x16", 2, 16))
CASE_NAMES = tuple(name for name, _, _ in CASES)

Case = tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]


def case_input_ids(config: MoEConfig, index: int, batch: int, seq: int) -> np.ndarray:
    """Deterministic token ids per case, from the config's seed and the case's index."""
    rng = np.random.default_rng([config.seed, 0x601DE7, index])
    return rng.integers(0, config.vocab_size, size=(batch, seq), dtype=np.int64)


def write_cases(config: MoEConfig, path: Path) -> Path:
    """Run the reference module eagerly on every case and save them to `path` atomically."""
    import torch

    from .moe import build_model

    model = build_model(config)
    arrays: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for index, (name, batch, seq) in enumerate(CASES):
            ids = case_input_ids(config, index, batch, seq)
            logits, expert_ids = model(torch.from_numpy(ids))
            arrays[f"{name}.input.input_ids"] = ids
            arrays[f"{name}.output.logits"] = logits.numpy().astype(np.float32)
            arrays[f"{name}.output.expert_ids"] = expert_ids.numpy().astype(np.int64)
    fd, tmp = tempfile.mkstemp(prefix=".cases-", suffix=".npz", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return path


def read_cases(path: Path) -> list[Case]:
    """The cases saved in `path`, in `CASES` order."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except Exception as exc:
        raise ModelError(f"{path}: unreadable golden cases ({exc}); delete it to rebuild") from None
    cases = []
    for name in CASE_NAMES:
        parts: dict[str, dict[str, np.ndarray]] = {"input": {}, "output": {}}
        for key, value in arrays.items():
            case, kind, tensor = key.split(".", 2)
            if case == name:
                parts[kind][tensor] = value
        cases.append((name, parts["input"], parts["output"]))
    return cases
