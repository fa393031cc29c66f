"""Shared fixtures: one moe-tiny export per test session, in a private cache."""

from __future__ import annotations

import json
import os

import pytest

from portable.models.config import MoEConfig, get_preset


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    """The session's model cache; PORTABLE_CACHE points at it so CLI runs reuse the export."""
    path = tmp_path_factory.mktemp("portable-cache")
    old = os.environ.get("PORTABLE_CACHE")
    os.environ["PORTABLE_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PORTABLE_CACHE", None)
    else:
        os.environ["PORTABLE_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_config() -> MoEConfig:
    return get_preset("moe-tiny")


@pytest.fixture(scope="session")
def tiny_export(tiny_config, tiny_cache):
    from portable.models.export import ensure_exported

    return ensure_exported(tiny_config, cache_dir=tiny_cache)


@pytest.fixture(autouse=True)
def _no_backend_filter(monkeypatch):
    """A PORTABLE_BACKENDS set in the caller's shell must not change what tests see."""
    monkeypatch.delenv("PORTABLE_BACKENDS", raising=False)


@pytest.fixture(autouse=True)
def _results_match_the_schema(monkeypatch):
    """Every result document a test writes in this process is checked against the JSON Schema."""
    from portable import results

    write = results.write_atomic

    def checked_write(path, document):
        if isinstance(document, dict) and document.get("kind") == results.KIND:
            problem = results.schema_error(json.loads(json.dumps(document)))
            assert problem is None, f"result document breaks the schema {problem}"
        return write(path, document)

    monkeypatch.setattr(results, "write_atomic", checked_write)
