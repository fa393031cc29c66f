"""Work items as Ray tasks across a cluster: `portable bench --cluster ADDRESS`.

Only imported with ``--cluster`` (it imports Ray). Each item becomes a task that asks
for one CPU plus its adapter's `Adapter.ray_resources` (or the user's override), so
Ray places it on a node that has the accelerator. On that node the item still runs
in its own child process with the timeout (`portable.launchers.run_in_child`).

The model travels through Ray's object store (`portable.ray_shipping`; no shared
filesystem), checked by sha256 on the node before anything loads it.

Failure is a result, never a hang: an item whose resources no live node has comes
back as ``unavailable`` naming them (before submission, and again if the node that
had them leaves); a node that dies costs its running items (``crashed``); a wrong
address is an error within the connection timeout; Ctrl-C cancels what is left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from portable import environment, registry
from portable.errors import EXIT_UNAVAILABLE, ModelError, PortableError
from portable.harness import WorkItem
from portable.launchers import Launcher, run_in_child
from portable.ray_shipping import Shipment, receive, ship
from portable.records import CellResult, ErrorInfo, Status

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0
POLL_S = 0.5
STALL_GRACE_S = 60.0
"""A task still unfinished this long after its item's own timeout is given up (``timeout``)."""
HEAD_RESOURCE = "node:__internal_head__"


class ClusterUnavailable(PortableError):
    """The Ray cluster cannot be reached (or was never there)."""

    exit_code = EXIT_UNAVAILABLE


# --- connection -------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__



def _check_reachable(address: str, timeout_s: float) -> None:
    """A wrong HOST:PORT fails here in seconds, before Ray's client could wait on it."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PortableError(f"--cluster {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterUnavailable(f"no Ray cluster answers at {address}: {exc}") from None


class _DropRecord(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Join the cluster at `address` as a driver within `timeout_s`, or raise ClusterUnavailable.

    `ray.init` can wait forever on an address that accepts connections but is not the
    cluster it names, so it runs in a daemon thread that is given up after the timeout.
    """
    _check_reachable(address, min(timeout_s, 5.0))
    failure: list[BaseException] = []

    def join() -> None:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=join, name="ray-connect", daemon=True)
    quiet = _DropRecord("SIGTERM handler is not set")  # true of a thread, and harmless here
    logging.getLogger("ray._private.worker").addFilter(quiet)
    try:
        thread.start()
        thread.join(timeout_s)
    finally:
        logging.getLogger("ray._private.worker").removeFilter(quiet)
    if thread.is_alive():
        raise ClusterUnavailable(
            f"the Ray cluster at {address} did not accept this client within {timeout_s:g}s")
    if failure:
        raise ClusterUnavailable(f"cannot join the Ray cluster at {address}: "
                                 f"{_first_line(failure[0])}")


# --- resources ----------------------------------------------------------------------


def resources_for(backend: str, overrides: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """One CPU plus what the backend's adapter declares, or the user's override of it."""
    declared = overrides.get(backend)
    if declared is None:
        declared = registry.load_adapter_class(backend).ray_resources
    return {"CPU": 1.0, **{name: float(amount) for name, amount in declared.items()}}


def alive_nodes() -> list[dict[str, Any]]:
    return [node for node in ray.nodes() if node.get("Alive")]


def missing_resources(need: Mapping[str, float], nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Resources no single live node has enough of (empty: some node can run the task)."""
    nodes = list(nodes)
    if any(all(node["Resources"].get(k, 0) >= v for k, v in need.items()) for node in nodes):
        return []
    best = [k for k, v in need.items() if not any(n["Resources"].get(k, 0) >= v for n in nodes)]
    return best or sorted(need)


def unavailable(item: WorkItem, missing: Iterable[str], need: Mapping[str, float],
                when: str = "") -> CellResult:
    asked = ", ".join(f"{k}={need[k]:g}" for k in missing)
    return item.empty_result().fail(Status.UNAVAILABLE, ErrorInfo(
        "ResourceUnavailable",
        f"no live node of the Ray cluster has {asked}{when}",
        "start a node that has it (ray start --resources '{\"NAME\": 1}', or --num-gpus), "
        "or change what the backend asks for with --cluster-resources BACKEND=JSON"))


def task_options(need: Mapping[str, float]) -> dict[str, Any]:
    """Ray takes CPU and GPU as their own options, every other resource by name."""
    others = {k: v for k, v in need.items() if k not in ("CPU", "GPU")}
    return {"num_cpus": need.get("CPU", 0), "num_gpus": need.get("GPU", 0),
            "resources": others, "max_retries": 0}


# --- on the node ------------------------------------------------------------------------


def node_record(node_id: str, backend: str) -> dict[str, Any]:
    """Where a cell ran: Ray's node id and that node's versions and hardware (no names, IPs)."""
    packages = registry.declared_packages([backend])
    return {"node_id": node_id, "environment": environment.capture(packages)}


def run_shipped(item: WorkItem, shipment: Shipment, timeout_s: float,
                board: Any = None, index: int = 0) -> CellResult:
    """The task body: receive the model, run the item in a child process, say where."""
    node_id = ray.get_runtime_context().get_node_id()
    if board is not None:
        board.start.remote(index, node_id)
    with tempfile.TemporaryDirectory(prefix="portable-ray-") as folder:
        try:
            model = receive(shipment, Path(folder), item.model)
        except ModelError as exc:
            result = item.empty_result().fail(Status.INVALID, ErrorInfo(
                "ModelError", str(exc), "check the network and the object store; run again"))
        else:
            result = run_in_child(dataclasses.replace(item, model=model), timeout_s)
    result.node = node_record(node_id, item.backend)
    return result


run_task = ray.remote(run_shipped)
"""`run_shipped` as a Ray task (options such as resources are given per call)."""


@ray.remote(num_cpus=0)
class _Board:
    """Which node started which item: progress, and telling queued from running."""

    def __init__(self) -> None:
        self.started: dict[int, str] = {}

    def start(self, index: int, node_id: str) -> None:
        self.started[index] = node_id

    def snapshot(self) -> dict[int, str]:
        return dict(self.started)


# --- on the client --------------------------------------------------------------------


def _head_affinity(nodes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Keep the progress board on the head node, which outlives the workers."""
    head = next((n["NodeID"] for n in nodes if HEAD_RESOURCE in n["Resources"]), None)
    return {} if head is None else {
        "scheduling_strategy": NodeAffinitySchedulingStrategy(head, soft=True)}


class _Run:
    """One launch: submitted tasks, what started where, results by item index."""

    def __init__(self, items: list[WorkItem], needs: list[dict[str, float]], timeout_s: float,
                 on_progress: Callable[[str], None] | None):
        self.items, self.needs, self.timeout_s = items, needs, timeout_s
        self.on_progress = on_progress
        self.results: dict[int, CellResult] = {}
        self.pending: dict[Any, int] = {}
        self.started: dict[int, str] = {}
        self.seen_at: dict[int, float] = {}
        self.board: Any = None
        self.last_report = ""
        self.last_check = time.monotonic()
        self.yielded = 0

    def submit(self) -> None:
        nodes = alive_nodes()
        shipments: dict[Path, Shipment] = {}
        for index, (item, need) in enumerate(zip(self.items, self.needs, strict=True)):
            if missing := missing_resources(need, nodes):
                self.results[index] = unavailable(item, missing, need)
                continue
            if self.board is None:
                self.board = _Board.options(**_head_affinity(nodes)).remote()
            if item.model.path not in shipments:
                shipments[item.model.path] = ship(item.model)
            ref = run_task.options(**task_options(need)).remote(
                item, shipments[item.model.path], self.timeout_s, self.board, index)
            self.pending[ref] = index
        self.report()

    def in_order(self) -> Iterator[CellResult]:
        for index in range(len(self.items)):
            while index not in self.results:
                self.poll()
            self.yielded = index + 1
            yield self.results[index]

    def completed_later(self) -> Iterator[CellResult]:
        """Results that finished after the first one still missing (kept on Ctrl-C)."""
        for index in sorted(i for i in self.results if i >= self.yielded):
            yield self.results[index]

    def poll(self) -> None:
        ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=POLL_S)
        for ref in ready:
            index = self.pending.pop(ref)
            self.results[index] = self._fetch(ref, index)
        self._refresh_started()
        if time.monotonic() - self.last_check >= 4 * POLL_S:
            self.last_check = time.monotonic()
            self._give_up_stranded()
        self.report()

    def _fetch(self, ref: Any, index: int) -> CellResult:
        item = self.items[index]
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            return item.empty_result().fail(Status.ERROR, ErrorInfo(
                "RayTaskError", _first_line(exc.cause or exc), "run with --debug on the node"))
        except ray.exceptions.RayError as exc:
            result = item.empty_result().fail(Status.CRASHED, ErrorInfo(
                "NodeLost", f"the Ray node or worker running it went away "
                            f"({type(exc).__name__}: {_first_line(exc)})",
                "check the node's logs; the other nodes' results are kept"))
            if index in self.started:
                result.node = {"node_id": self.started[index]}
            return result

    def _refresh_started(self) -> None:
        if self.board is None or not self.pending:
            return
        try:
            started = ray.get(self.board.snapshot.remote(), timeout=5 * POLL_S)
        except ray.exceptions.RayError:
            return
        now = time.monotonic()
        for index, node_id in started.items():
            self.started[index] = node_id
            self.seen_at.setdefault(index, now)

    def _give_up_stranded(self) -> None:
        """Queued items whose resources left with a node, and started ones long overdue."""
        nodes = alive_nodes()
        now = time.monotonic()
        for ref, index in list(self.pending.items()):
            item, need = self.items[index], self.needs[index]
            if index not in self.started and (missing := missing_resources(need, nodes)):
                result = unavailable(item, missing, need, " any more (its node left)")
            elif now - self.seen_at.get(index, now) > self.timeout_s + STALL_GRACE_S:
                result = item.empty_result().fail(Status.TIMEOUT, ErrorInfo(
                    "Timeout", f"no answer from its Ray task {self.timeout_s + STALL_GRACE_S:g}s "
                               "after it started; the task was cancelled",
                    "check the node; raise --timeout for slow backends"))
            else:
                continue
            ray.cancel(ref, force=True)
            del self.pending[ref]
            self.results[index] = result

    def cancel_all(self) -> None:
        for ref in self.pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        self.pending.clear()

    def report(self) -> None:
        if self.on_progress is None:
            return
        queued = sum(1 for index in self.pending.values() if index not in self.started)
        per_node: dict[str, list[int]] = {}
        for index in self.pending.values():
            if index in self.started:
                per_node.setdefault(self.started[index], [0, 0])[0] += 1
        for result in self.results.values():
            if result.node:
                per_node.setdefault(result.node["node_id"], [0, 0])[1] += 1
        nodes = "; ".join(f"node {node[:8]}: {running} running, {done} done"
                          for node, (running, done) in sorted(per_node.items()))
        line = (f"cluster: {len(self.results)}/{len(self.items)} done, {queued} queued"
                + (f"; {nodes}" if nodes else ""))
        if line != self.last_report:
            self.last_report = line
            self.on_progress(line)


class RayLauncher(Launcher):
    """Each work item as a Ray task on a node with the resources its backend needs."""

    name = "ray"

    def __init__(self, address: str, timeout_s: float,
                 resource_overrides: Mapping[str, Mapping[str, float]] | None = None,
                 on_progress: Callable[[str], None] | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.address = address
        self.timeout_s = timeout_s
        self.resource_overrides = dict(resource_overrides or {})
        self.on_progress = on_progress
        self.connect_timeout_s = connect_timeout_s

    def launch(self, items: Iterable[WorkItem]) -> Iterator[CellResult]:
        items = list(items)
        needs = [resources_for(item.backend, self.resource_overrides) for item in items]
        joined = not ray.is_initialized()  # a Python caller may already be a driver
        if joined:
            connect(self.address, self.connect_timeout_s)
        run = _Run(items, needs, self.timeout_s, self.on_progress)
        try:
            run.submit()
            yield from run.in_order()
        except KeyboardInterrupt:
            run.cancel_all()
            yield from run.completed_later()
            raise
        except BaseException:
            run.cancel_all()
            raise
        finally:
            if joined:
                ray.shutdown()
