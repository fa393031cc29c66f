"""The same checks on real accelerators: skipped (saying why) on a host without them.

Everywhere else the suite runs on a simulated CPU-only host (tests/conftest.py), so a
GPU or NPU machine runs these in addition, and the rest still means what it says.
"""

import os

import pytest

from portable.harness import WorkItem, run_work_item
from portable.kit import probing
from portable.modelsource import resolve
from portable.timing import BenchSettings

FAST = BenchSettings(warmup=1, iterations=3, min_duration_s=0.0)


def test_the_simulated_host_has_no_accelerator_whatever_the_machine_has():
    assert os.path.exists("/dev/null")
    assert probing.device_nodes(["/dev/*"]) == []  # /dev/dri, /dev/nvidia0 ... are hidden
    assert probing.find_tool("sh") is None


@pytest.mark.requires_hw("cuda")
@pytest.mark.parametrize("backend", ["ort-cuda", "ort-tensorrt"])
def test_cuda_runs_the_reference_with_parity_and_no_fallback(tiny_export, backend):
    result = run_work_item(WorkItem(backend, {}, resolve("moe-tiny"), FAST))
    assert result.ok, result.error
    assert result.parity.passed and not result.placement.has_fallback
    assert result.device.device.startswith("cuda")


@pytest.mark.requires_hw("cann")
def test_cann_runs_the_reference_with_parity_at_its_precision(tiny_export):
    result = run_work_item(WorkItem("cann", {}, resolve("moe-tiny"), FAST))
    assert result.ok, result.error
    assert result.compute_precision == "float16" and result.parity.passed
    assert not result.placement.has_fallback
