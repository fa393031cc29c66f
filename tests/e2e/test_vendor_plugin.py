"""An out-of-tree vendor package, installed for real, found by its entry point, run by the CLI.

It is installed with `pip --target` for child processes only (`vendor_examples.install_example`).
"""

import json
import os
import subprocess
import sys

import pytest
from vendor_examples import install_example

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory, tiny_cache):
    return install_example("portable-acme", tmp_path_factory)


def portable(env, *args):
    return subprocess.run([sys.executable, "-m", "portable", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_not_visible_without_the_package():
    done = portable({k: v for k, v in os.environ.items() if k != "PORTABLE_BACKENDS"},
                    "bench", "--backend", "acme")
    assert done.returncode == 2 and "unknown backend 'acme'" in done.stderr


def test_vendor_package_runs_end_to_end(plugin_env, tiny_export, tmp_path):
    listed = portable(plugin_env, "backends", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["acme"]["available"] and "Acme reference device" in rows["acme"]["device"]["name"]

    done = portable(plugin_env, "bench", "--backend", "acme", "--model", "moe-tiny",
                    "--seq", "8", "--warmup", "1", "--iterations", "3", "--min-duration", "0",
                    "--json", "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (cell,) = json.loads(done.stdout)["results"]
    assert cell["backend"] == "acme" and cell["status"] == "ok"
    assert cell["parity"]["passed"]
    assert cell["placement"]["source"] == "profiler" and not cell["placement"]["fallback"]


def test_vendor_package_passes_conformance(plugin_env, tiny_export):
    done = portable(plugin_env, "conformance", "--backend", "acme", "--node-tests", "off")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: passed" in done.stdout


def test_a_broken_plugin_never_breaks_the_cpu_path(plugin_env, tmp_path):
    broken = tmp_path / "broken_plugin"
    (broken / "portable_broken-0.1.dist-info").mkdir(parents=True)
    (broken / "portable_broken-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: portable-broken\nVersion: 0.1\n")
    (broken / "portable_broken-0.1.dist-info" / "entry_points.txt").write_text(
        "[portable.backends]\nbroken = portable_broken_missing:Adapter\n")
    env = {**plugin_env, "PYTHONPATH": f"{broken}{os.pathsep}{plugin_env['PYTHONPATH']}"}
    listed = portable(env, "backends", "--json")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert "No module named 'portable_broken_missing'" in rows["broken"]["reason"]
    assert rows["ort-cpu"]["available"] and rows["acme"]["available"]
