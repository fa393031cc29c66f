"""What each backend asks a Ray cluster for, and whether a cluster's nodes can give it."""

from __future__ import annotations

import pytest

from portable import registry
from portable.ray_launcher import missing_resources, resources_for, task_options

CPU_NODE = {"Resources": {"CPU": 8.0, "memory": 1e9}}
GPU_NODE = {"Resources": {"CPU": 4.0, "GPU": 2.0}}
NPU_NODE_NO_CPU = {"Resources": {"NPU": 8.0}}


@pytest.mark.parametrize(("backend", "extra"), [
    ("ort-cpu", {}), ("openvino", {}), ("torch", {}),
    ("ort-cuda", {"GPU": 1.0}), ("ort-tensorrt", {"GPU": 1.0}), ("cann", {"NPU": 1.0}),
    ("musa", {"MUSA": 1.0}), ("dcu", {"DCU": 1.0}), ("xpu", {"XPU": 1.0}), ("gcu", {"GCU": 1.0}),
])
def test_each_backend_asks_for_one_cpu_and_its_accelerator(backend, extra):
    assert resources_for(backend, {}) == {"CPU": 1.0, **extra}


def test_an_override_replaces_what_the_adapter_declares():
    assert resources_for("cann", {"cann": {"Ascend910B": 1}}) == {"CPU": 1.0, "Ascend910B": 1.0}
    assert resources_for("null", {"null": {}}) == {"CPU": 1.0}


def test_every_registered_adapter_declares_amounts():
    for name in registry.installed_names():
        declared = registry.load_adapter_class(name).ray_resources
        assert all(isinstance(v, int | float) and v > 0 for v in declared.values()), name


def test_a_task_runs_where_one_node_has_everything_it_needs():
    assert missing_resources({"CPU": 1, "GPU": 1}, [CPU_NODE, GPU_NODE]) == []
    assert missing_resources({"CPU": 1, "GPU": 3}, [CPU_NODE, GPU_NODE]) == ["GPU"]
    assert missing_resources({"CPU": 1, "NPU": 1}, [CPU_NODE, GPU_NODE]) == ["NPU"]
    # CPU here and NPU there is no node for a task that needs both
    assert missing_resources({"CPU": 1, "NPU": 1}, [CPU_NODE, NPU_NODE_NO_CPU]) == ["CPU", "NPU"]
    assert missing_resources({"CPU": 1}, []) == ["CPU"]


def test_gpus_and_cpus_go_to_rays_own_options():
    options = task_options({"CPU": 1.0, "GPU": 1.0, "NPU": 2.0})
    assert options["num_cpus"] == 1.0 and options["num_gpus"] == 1.0
    assert options["resources"] == {"NPU": 2.0}
    assert options["max_retries"] == 0  # a lost node costs its items; no silent re-run
