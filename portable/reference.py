"""The one hook through which the core reaches a reference model's extras.

The core (model source, harness, roofline, conformance kit) never imports
`portable.models`: a reference-model package registers an object in the
entry-point group ``portable.reference`` and the core asks it, by duck typing,
what only the model knows: its presets, parameter counts, expert load, the
vocabulary bound for generated ids, a roofline cost. A user's ONNX file never
touches this code: every call here takes the config embedded in a model file, and
a file without one has no reference extras.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

GROUP = "portable.reference"

GoldenCase = tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class ReferenceExport:
    """A preset exported to ONNX: what the model source needs to run and check it."""

    name: str
    path: Path
    golden_path: Path
    config: dict[str, Any]
    precision: str = "fp32"
    """The variant's storage precision (see `portable.precision.PRECISIONS`)."""
    generation_path: Path | None = None
    """With a KV cache: the golden greedy generation (`prompt_ids`, `token_ids`, `margins`)."""


class ReferenceModels(Protocol):
    """What a reference-model package provides (``portable.models.hook:HOOK``)."""

    presets: tuple[str, ...]
    dispatches: tuple[str, ...]
    """Variants of a preset's MoE dispatch (``--dispatch``)."""
    golden_case_names: tuple[str, ...]
    """Names of the golden cases, known without computing them (``decode-1x1``, ...)."""

    def golden_cases(self, config: Mapping[str, Any]) -> list[GoldenCase]:
        """(name, inputs, outputs) from the reference model run eagerly, at decode and
        prefill shapes, in `golden_case_names` order; cached beside the exported model."""

    def export(self, preset: str, overrides: Sequence[str], dispatch: str | None,
               progress: Callable[[str], None] | None = None, with_past: bool = False,
               precision: str = "fp32") -> ReferenceExport:
        """A preset exported on a cache miss (telling `progress` when that starts and how
        long it took); `with_past`: the decoder with a KV cache; `precision`: a variant
        converted from the fp32 export."""

    def figures(self, config: Mapping[str, Any], outputs: Mapping[str, np.ndarray]
                ) -> dict[str, Any]:
        """Model figures for a result (parameter counts, expert load from the run's outputs)."""

    def index_bounds(self, config: Mapping[str, Any]) -> dict[str, int]:
        """Exclusive upper bounds of integer inputs (token ids stay inside the vocabulary)."""

    def routing_groups(self, config: Mapping[str, Any]) -> tuple[int, int]:
        """(expert groups, groups kept per token) of the gate, for routing-aware parity."""

    def cost(self, config: Mapping[str, Any], batch: int, seq: int) -> dict[str, float]:
        """Estimated ``flops`` and weight ``bytes`` of one forward pass, for rooflines."""


@cache
def hook() -> ReferenceModels | None:
    """The installed reference-model hook (the first registered), or None when there is none."""
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        try:
            return ep.load()
        except Exception as exc:  # a broken package must not break user models
            log.warning("reference model hook %s failed to load: %s", ep.value, exc)
    return None


def presets() -> tuple[str, ...]:
    found = hook()
    return tuple(found.presets) if found else ()


def dispatches() -> tuple[str, ...]:
    found = hook()
    return tuple(found.dispatches) if found else ()


def golden_case_names() -> tuple[str, ...]:
    found = hook()
    return tuple(found.golden_case_names) if found else ()


def golden_cases(config: Mapping[str, Any] | None) -> list[GoldenCase]:
    found = hook()
    return found.golden_cases(config) if config and found else []


def figures(config: Mapping[str, Any] | None, outputs: Mapping[str, np.ndarray]
            ) -> dict[str, Any] | None:
    found = hook()
    return found.figures(config, outputs) if config and found else None


def index_bounds(config: Mapping[str, Any] | None) -> dict[str, int]:
    found = hook()
    return found.index_bounds(config) if config and found else {}


def routing_groups(config: Mapping[str, Any] | None) -> tuple[int, int]:
    """(groups, groups kept) of group-limited routing; (1, 1) when there is none."""
    found = hook()
    return found.routing_groups(config) if config and found else (1, 1)


def cost(config: Mapping[str, Any] | None, batch: int, seq: int) -> dict[str, float] | None:
    found = hook()
    return found.cost(config, batch, seq) if config and found else None
