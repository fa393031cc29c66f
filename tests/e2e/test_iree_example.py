"""examples/portable-iree, a compile-ahead vendor package, installed for real and proven.

Installed with `pip --target` (IREE itself comes from the `iree` extra); its own suite
(the shipped AdapterContract, subclassed) runs under pytest, and `portable conformance`
gives the honest verdict: IREE's llvm-cpu cannot compile the reference MoE's TopK at
most shapes, which the report says per case. A small dense model runs through it, and a
second bench of the same shape loads the compiled module from the artifact cache.
"""

import json
import subprocess
import sys

import pytest
from onnx_models import dense_mlp_model
from vendor_examples import EXAMPLES, install_example

EXAMPLE = EXAMPLES / "portable-iree"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def iree_env(tmp_path_factory, tiny_cache):
    return install_example("portable-iree", tmp_path_factory)


def run(env, *args, timeout=900):
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_its_contract_suite_passes_with_unsupported_cases_skipped(iree_env, tiny_export):
    done = run(iree_env, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               str(EXAMPLE / "tests"))
    assert done.returncode == 0, done.stdout[-3000:]
    assert "not supported by this stack: IREE llvm-cpu cannot compile TopK" in done.stdout
    summary = done.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" in summary and "failed" not in summary, summary


def test_conformance_says_unsupported_per_case(iree_env, tiny_export):
    done = run(iree_env, "-m", "portable", "conformance", "--backend", "iree", "--json")
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["verdict"] == "unsupported"
    parity = {c["name"].partition("[")[2].rstrip("]"): c for c in doc["contract"]
              if c["name"].startswith("test_outputs_match_golden")}
    for case in ("sparse-decode-1x4", "sparse-prefill-2x16", "dense-decode-1x4"):
        clause = parity[f"moe-tiny-{case}"]
        assert clause["outcome"] == "unsupported"
        assert clause["message"].startswith(
            "not supported by this stack: IREE llvm-cpu cannot compile TopK at {'input_ids': ")
    assert parity["moe-tiny-sparse-decode-1x1"]["outcome"] == "passed"  # the gather branch
    assert {c["outcome"] for c in parity.values()} == {"passed", "unsupported"}
    nodes = doc["onnx_node_tests"]
    assert nodes["passed"] > 150 and nodes["failed"] == 0, nodes["failures"]


def test_dense_model_compiles_once_then_hits_the_artifact_cache(iree_env, tmp_path):
    model = dense_mlp_model(tmp_path / "mlp.onnx")
    cells = []
    for _ in range(2):
        done = run(iree_env, "-m", "portable", "bench", "-b", "iree", "-b", "cpu", "--model",
                   str(model), "--seq", "8", "--iterations", "20", "--min-duration", "0",
                   "--json", "--output", str(tmp_path))
        assert done.returncode == 0, done.stderr[-3000:]
        cells.append({c["backend"]: c for c in json.loads(done.stdout)["results"]})
    cold, warm = cells[0]["iree"], cells[1]["iree"]
    assert cold["artifact_cache"] == "miss" and warm["artifact_cache"] == "hit"
    assert warm["cross_parity"]["passed"]  # agrees with ONNX Runtime on the same inputs
    assert warm["placement"]["source"] == "single-device" and not warm["placement"]["fallback"]
    # compilation is its own phase: the first inference no longer carries it
    assert warm["first_inference_ms"] < cold["compile_ms"]
    assert cells[1]["ort-cpu"]["artifact_cache"] == "none"
