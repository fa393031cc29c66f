"""A raising, segfaulting or hanging backend costs its own cell, never the matrix or the file."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from helpers import add_model

from portable.cli import cli

FAST = ["--warmup", "1", "--iterations", "3", "--min-duration", "0"]


@pytest.fixture(scope="module")
def add_onnx(tmp_path_factory):
    return add_model(tmp_path_factory.mktemp("models") / "add.onnx")


@pytest.mark.parametrize(
    "fail, status, message",
    [
        ("run", "error", "null backend asked to fail on run"),
        ("segfault", "crashed", "killed by SIGSEGV"),
        ("hang", "timeout", "no result after 3s"),
    ],
)
def test_failing_cell_is_recorded_and_the_others_go_on(add_onnx, tmp_path, fail, status, message):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        "bench", "-b", "null", "-o", f"null:fail={fail}", "-b", "cpu", "--model", str(add_onnx),
        "--timeout", "3", "--output", str(out), *FAST,
    ])
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.stderr
    cells = {c["backend"]: c for c in json.loads(out.read_text())["results"]}
    assert cells["null"]["status"] == status
    assert message in cells["null"]["error"]["message"]
    assert cells["ort-cpu"]["status"] == "ok" and cells["ort-cpu"]["latency"]["count"] >= 3


def test_keyboard_interrupt_keeps_completed_cells(add_onnx, tmp_path, monkeypatch):
    import portable.launchers
    from portable.harness import run_work_item

    calls = []

    def interrupt_second(item, timeout_s):
        calls.append(item.settings.batch)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_work_item(item)

    monkeypatch.setattr(portable.launchers, "run_in_child", interrupt_second)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        "bench", "-b", "null", "--model", str(add_onnx), "--scenario", "throughput",
        "--batch", "1,2,4", "--output", str(out), *FAST,
    ])
    assert result.exit_code == 130, result.output
    assert "keeping 1 of 3 completed cells" in result.stderr
    document = json.loads(out.read_text())
    assert document["interrupted"] is True
    assert [(c["batch"], c["status"]) for c in document["results"]] == [(1, "ok")]
    assert calls == [1, 2]  # nothing ran after the interrupt


@pytest.mark.parametrize("target", ["parent", "process group"])
def test_ctrl_c_on_a_real_run_kills_the_child_and_writes_the_file(add_onnx, tmp_path, target):
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "portable", "bench", "-b", "null", "-o", "fail=hang",
         "--model", str(add_onnx), "--timeout", "120", "--output", str(out), *FAST],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    try:
        assert "bench null" in proc.stderr.readline()
        time.sleep(1.0)  # let the spawned child reach its hang
        # a terminal's Ctrl-C signals the whole foreground group, the child included
        if target == "parent":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        proc.kill()
    stderr = proc.stderr.read()
    assert "interrupted: keeping 0 of 1 completed cells" in stderr and "Traceback" not in stderr
    document = json.loads(out.read_text())
    assert document["interrupted"] is True and document["results"] == []
