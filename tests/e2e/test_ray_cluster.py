"""The matrix on a real Ray cluster started here: placement, shipping, failures, the CLI.

A head (2 CPUs) and a second node advertising one ``NPU`` (Ray's name for an Ascend
NPU), bound to 127.0.0.2: a client given 127.0.0.1 rewrites it to the machine's
outward address, where a loopback cluster is not listening. Session files live in a
short temporary folder (Ray's socket paths must stay short). The fixture stops only
the cluster it started.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import onnx
import pytest
import ray
from helpers import add_model
from ray.cluster_utils import Cluster

from portable.modelsource import from_file
from portable.ray_launcher import RayLauncher, connect, run_task
from portable.ray_shipping import ShippedFile, receive, ship
from portable.records import Status
from portable.results import schema_error
from portable.run import RunRequest, execute, finalize, plan

pytestmark = pytest.mark.slow

IP = "127.0.0.2"
QUICK = {"warmup": 1, "iterations": 3, "min_duration_s": 0.0, "seq": 16}


class Nodes:
    """The module's cluster and its NPU node, which a test may take away and put back."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.npu = None

    @property
    def address(self) -> str:
        return self.cluster.address

    def ensure_npu(self) -> str:
        if self.npu is None:
            self.npu = self.cluster.add_node(node_ip_address=IP, num_cpus=1,
                                             resources={"NPU": 1})
        return self.npu.node_id

    def drop_npu(self) -> None:
        if self.npu is not None:
            self.cluster.remove_node(self.npu)
            self.npu = None


@pytest.fixture(scope="module")
def nodes(tiny_export):  # the moe-tiny export, made once through its fixture
    folder = tempfile.mkdtemp(prefix="ray-t-")
    env = pytest.MonkeyPatch()
    env.setenv("RAY_TMPDIR", folder)
    env.setenv("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"node_ip_address": IP, "num_cpus": 2,
                                                             "include_dashboard": False})
    try:
        found = Nodes(cluster)
        found.ensure_npu()
        yield found
    finally:
        cluster.shutdown()
        env.undo()
        shutil.rmtree(folder, ignore_errors=True)


def _bench(*args: str) -> subprocess.CompletedProcess:
    """`portable bench` in its own process, as a user runs it; never left hanging."""
    return subprocess.run([sys.executable, "-m", "portable", "bench", *args],
                          capture_output=True, text=True, timeout=120)


def test_cpu_and_openvino_cells_carry_the_node_they_ran_on(nodes, tmp_path):
    out = tmp_path / "r.json"
    proc = _bench("--cluster", nodes.address, "-b", "cpu", "-b", "openvino", "--model", "moe-tiny",
                  "--seq", "16", "--warmup", "1", "--iterations", "3", "--min-duration", "0",
                  "--json", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert schema_error(document) is None
    live = {node["NodeID"] for node in _nodes(nodes)}
    cells = {cell["backend"]: cell for cell in document["results"]}
    assert set(cells) == {"ort-cpu", "openvino"}
    for cell in cells.values():
        assert cell["status"] == "ok" and cell["parity"]["passed"]
        assert cell["node"]["node_id"] in live
        environment = cell["node"]["environment"]
        assert environment["cpu"] and environment["cores"] >= 1
        assert "hostname" not in json.dumps(cell["node"]) and IP not in json.dumps(cell["node"])
    assert cells["openvino"]["node"]["environment"]["packages"]["openvino"]


def _nodes(nodes: Nodes) -> list[dict]:
    connect(nodes.address)
    try:
        return [node for node in ray.nodes() if node["Alive"]]
    finally:
        ray.shutdown()


def test_an_item_needing_npu_runs_on_the_npu_node(nodes):
    npu_node = nodes.ensure_npu()
    request = RunRequest.build("moe-tiny", ["null"], batches=(1, 2), **QUICK)
    execution = execute(plan(request), RayLauncher(nodes.address, 60, {"null": {"NPU": 1}}))
    assert [r.status for r in execution.results] == [Status.OK, Status.OK]
    assert {r.node["node_id"] for r in execution.results} == {npu_node}


def test_an_item_whose_resource_no_node_has_is_unavailable_naming_it(nodes):
    request = RunRequest.build("moe-tiny", ["null"], **QUICK)
    execution = execute(plan(request), RayLauncher(nodes.address, 60, {"null": {"TPU": 1}}))
    [result] = execution.results
    assert result.status is Status.UNAVAILABLE
    assert "TPU" in result.error.message and "--cluster-resources" in result.error.hint


def test_cann_without_an_npu_node_exits_3_naming_npu(nodes, tmp_path):
    nodes.drop_npu()
    proc = _bench("--cluster", nodes.address, "-b", "cann", "--output", str(tmp_path / "r.json"))
    assert proc.returncode == 3, proc.stderr
    assert "NPU" in proc.stderr


def test_a_node_lost_mid_run_costs_only_its_items(nodes):
    npu_node = nodes.ensure_npu()
    removed = threading.Event()

    def on_progress(line: str) -> None:
        # the first NPU item is running on its node: take the node away under it
        if f"node {npu_node[:8]}: 1 running" in line and not removed.is_set():
            nodes.drop_npu()
            removed.set()

    request = RunRequest.build("moe-tiny", [("null", {"delay_ms": "200"}), "cpu"],
                               batches=(1, 2), **{**QUICK, "min_duration_s": 4.0})
    launcher = RayLauncher(nodes.address, 60, {"null": {"NPU": 1}}, on_progress)
    execution = execute(plan(request), launcher)
    assert removed.is_set()
    by_key = {(r.backend, r.batch): r for r in execution.results}
    assert len(by_key) == 4
    assert by_key["ort-cpu", 1].ok and by_key["ort-cpu", 2].ok
    null_statuses = {by_key["null", 1].status, by_key["null", 2].status}
    # the running one crashed with its node; the queued one has no NPU node left to go to
    assert null_statuses == {Status.CRASHED, Status.UNAVAILABLE}
    crashed = next(r for r in execution.results if r.status is Status.CRASHED)
    assert crashed.node == {"node_id": npu_node}
    assert schema_error(finalize(request, execution).document) is None


def test_a_tampered_model_transfer_is_refused(nodes, tmp_path):
    request = RunRequest.build("moe-tiny", ["null"], **QUICK)
    [item] = plan(request)
    connect(nodes.address)
    try:
        shipment = ship(item.model)
        # what arrives intact is byte for byte what was sent
        arrived = receive(shipment, tmp_path, item.model)
        assert arrived.path.read_bytes() == item.model.path.read_bytes()
        assert arrived.sha256() == item.model.sha256()
        assert arrived.golden_path.read_bytes() == item.model.golden_path.read_bytes()
        # bytes changed in transit: the node refuses to run them
        model_file = next(f for f in shipment.files if f.name == shipment.model)
        tampered = dataclasses.replace(shipment, files=tuple(
            ShippedFile(f.name, f.sha256, ray.put(b"not the model")) if f is model_file else f
            for f in shipment.files))
        result = ray.get(run_task.options(num_cpus=1).remote(item, tampered, 60),
                         timeout=60)
    finally:
        ray.shutdown()
    assert result.status is Status.INVALID
    assert "sha256" in result.error.message and "refusing" in result.error.message
    assert result.node["node_id"]


def test_a_wrong_address_is_one_line_and_exit_3(tmp_path):
    proc = _bench("--cluster", f"{IP}:1", "-b", "cpu", "--output", str(tmp_path / "r.json"))
    assert proc.returncode == 3
    assert proc.stderr.strip().count("\n") == 0 and "no Ray cluster answers" in proc.stderr


def test_ctrl_c_cancels_outstanding_tasks_and_keeps_finished_cells(nodes, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "portable", "bench", "--cluster", nodes.address, "-b", "null",
         "-o", "null:delay_ms=50", "--scenario", "throughput", "--batch", "1,2,3,4,5,6",
         "--warmup", "0", "--iterations", "3", "--min-duration", "2", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # wait until some cells are done and others still run
            if line.startswith("cluster: ") and not line.startswith("cluster: 0/"):
                break
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    document = json.loads(out.read_text())
    assert document["interrupted"] is True
    assert 1 <= len(document["results"]) < 6
    assert all(cell["node"]["node_id"] for cell in document["results"])


def test_a_model_with_external_data_arrives_whole(nodes, tmp_path):
    sent = tmp_path / "sent"
    sent.mkdir()
    model = onnx.load(str(add_model(sent / "add.onnx")))
    onnx.save(model, str(sent / "add.onnx"), save_as_external_data=True,
              location="add.bin", size_threshold=0)
    source = from_file(sent / "add.onnx")
    connect(nodes.address)
    try:
        arrived = receive(ship(source), tmp_path / "arrived", source)
    finally:
        ray.shutdown()
    assert (tmp_path / "arrived" / "add.bin").read_bytes() == (
        sent / "add.bin").read_bytes()
    assert from_file(arrived.path).sha256() == source.sha256()  # parses, data in place
