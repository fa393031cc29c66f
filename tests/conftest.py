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


HW_PROVIDERS = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
                "cann": "CANNExecutionProvider"}
#: Providers that run on the host CPU, whatever the machine has.
CPU_PROVIDERS = {"CPUExecutionProvider", "AzureExecutionProvider"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires_hw(kind): runs on a host that really has this accelerator "
                   "(cuda, tensorrt, cann); elsewhere it is skipped, saying so")


def hw_present(kind: str) -> bool:
    """Whether ONNX Runtime here really offers the accelerator's provider."""
    import onnxruntime

    return HW_PROVIDERS[kind] in onnxruntime.get_available_providers()


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("requires_hw")
    if marker is not None and not hw_present(marker.args[0]):
        pytest.skip(f"needs a host with {marker.args[0]}")


@pytest.fixture(autouse=True)
def simulated_host(request, monkeypatch, tmp_path_factory):
    """Tests see a CPU-only host unless marked `requires_hw`, so the suite means the same on
    a GPU box or any Linux machine with /dev/dri: no accelerator device nodes, libraries
    or tools outside the test's own folders, and ONNX Runtime lists only CPU providers."""
    if request.node.get_closest_marker("requires_hw") is not None:
        return  # the real host (pytest_runtest_setup skipped it where the device is absent)
    import onnxruntime

    from portable.backends import cann, ort_cuda
    from portable.kit import probing

    test_root = str(tmp_path_factory.getbasetemp())
    real_nodes, real_library, real_tool = (probing.device_nodes, probing.find_library,
                                           probing.find_tool)

    def nodes(patterns):
        return [p for p in real_nodes(patterns) if p.startswith(test_root)]

    def library(names, dirs):
        found = real_library(names, [d for d in dirs if d.startswith(test_root)])
        return found

    def tool(name):
        found = real_tool(name)
        return found if found and found.startswith(test_root) else None

    for module in (probing, cann, ort_cuda):
        if hasattr(module, "device_nodes"):
            monkeypatch.setattr(module, "device_nodes", nodes)
        if hasattr(module, "find_tool"):
            monkeypatch.setattr(module, "find_tool", tool)
    monkeypatch.setattr(probing, "find_library", library)
    real_providers = onnxruntime.get_available_providers
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: [p for p in real_providers() if p in CPU_PROVIDERS])


@pytest.fixture(autouse=True)
def _no_debug_left_over(monkeypatch):
    """`--debug` in one in-process CLI test must not make the next one debug: it sets
    PORTABLE_DEBUG (for child processes) and the root logger's level."""
    import logging

    monkeypatch.delenv("PORTABLE_DEBUG", raising=False)
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
    os.environ.pop("PORTABLE_DEBUG", None)


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
