"""Opening sessions under contract 1.1: shapes before `load()`, compilation per shape set.

Everything in the kit that drives an adapter (the harness, the contract suite, ONNX's
node tests) opens sessions through here, so a static-shape stack is treated the same
way everywhere:

- `session_config` tells `load()` the concrete input shapes and dtypes, the backend's
  artifact cache folder and the model's sha256;
- `ShapeSets.ensure(feeds)` asks a session whose adapter declares
  ``Capabilities.dynamic_shapes=False`` to `specialize` for each new shape set before
  feeds of that shape run, timing it as that shape set's `Compilation`. Sessions of
  dynamic-shape adapters are never asked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portable.adapter import ARTIFACT_CACHE_STATES, Adapter, Session, SessionConfig, TensorSpec
from portable.errors import PortableError
from portable.paths import cache_dir


@dataclass(frozen=True)
class Compilation:
    """One shape set compiled by `Session.specialize`."""

    shapes: dict[str, list[int]]
    compile_ms: float
    artifact_cache: str
    """``hit`` (loaded from the artifact cache), ``miss`` (compiled) or ``none`` (no cache)."""

    def to_dict(self) -> dict[str, Any]:
        return {"shapes": self.shapes, "compile_ms": self.compile_ms,
                "artifact_cache": self.artifact_cache}


def artifact_dir(backend: str) -> Path:
    """``<cache>/artifacts/<backend>/``: where a backend may keep compiled artifacts."""
    return cache_dir() / "artifacts" / backend


def input_specs(feeds: Mapping[str, np.ndarray]) -> tuple[TensorSpec, ...]:
    """The concrete shapes and dtypes of `feeds`, in their order."""
    return tuple(TensorSpec(name, tuple(int(d) for d in np.shape(value)),
                            str(np.asarray(value).dtype)) for name, value in feeds.items())


def session_config(adapter: Adapter, feeds: Mapping[str, np.ndarray], *,
                   threads: int | None = None, strict: bool = False,
                   model_sha256: str | None = None) -> SessionConfig:
    return SessionConfig(threads=threads, strict=strict, inputs=input_specs(feeds),
                         artifact_dir=artifact_dir(adapter.name), model_sha256=model_sha256)


@dataclass
class ShapeSets:
    """The shape sets a session was specialized for, and what each compilation cost."""

    session: Session
    static: bool
    """Whether the adapter declared ``dynamic_shapes=False`` (only then is `specialize` called)."""
    compilations: list[Compilation] = field(default_factory=list)

    @classmethod
    def of(cls, adapter: Adapter, session: Session) -> ShapeSets:
        return cls(session, not adapter.capabilities().dynamic_shapes)

    def ensure(self, feeds: Mapping[str, np.ndarray]) -> Compilation | None:
        """Specialize for `feeds`' shapes unless done before; the new compilation, if any."""
        if not self.static:
            return None
        specs = input_specs(feeds)
        shapes = {spec.name: list(spec.shape) for spec in specs}
        if any(done.shapes == shapes for done in self.compilations):
            return None
        t0 = time.perf_counter_ns()
        state = self.session.specialize(specs)
        elapsed_ms = (time.perf_counter_ns() - t0) / 1e6
        if state not in ARTIFACT_CACHE_STATES:
            raise PortableError(f"Session.specialize returned {state!r}; expected one of "
                                f"{', '.join(ARTIFACT_CACHE_STATES)}")
        compilation = Compilation(shapes, elapsed_ms, state)
        self.compilations.append(compilation)
        return compilation


def open_session(adapter: Adapter, model_path: Path, feeds: Mapping[str, np.ndarray], *,
                 strict: bool = False, model_sha256: str | None = None
                 ) -> tuple[Session, ShapeSets]:
    """Load `model_path` for `feeds` and specialize for their shapes (a static-shape stack).

    `UnsupportedModel` from `load()` or `specialize()` propagates; the session is closed
    when specializing raises.
    """
    session = adapter.load(model_path, session_config(adapter, feeds, strict=strict,
                                                      model_sha256=model_sha256))
    shape_sets = ShapeSets.of(adapter, session)
    try:
        shape_sets.ensure(feeds)
    except BaseException:
        session.close()
        raise
    return session, shape_sets
