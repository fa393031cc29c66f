"""`portable conformance` as a user meets it: a verdict, a report, an exit code."""

import json

import pytest
from click.testing import CliRunner

from portable.cli import cli


def conformance(*args):
    return CliRunner().invoke(cli, ["conformance", *args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def _cache(tiny_export):
    """The contract resolves moe-tiny through the session's cache (PORTABLE_CACHE)."""


def test_ort_cpu_passes_the_contract_and_parity():
    result = conformance("--backend", "cpu", "--node-tests", "off", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["verdict"] == "passed" and doc["backend"] == "ort-cpu"
    outcomes = {c["name"]: c["outcome"] for c in doc["contract"]}
    for dispatch in ("sparse", "dense", "fused"):  # decode shapes run the per-token branch
        for case in ("decode-1x1", "decode-1x4", "prefill-2x16"):
            assert outcomes[f"test_outputs_match_golden[moe-tiny-{dispatch}-{case}]"] == "passed"
    assert outcomes["test_no_silent_fallback"] == "passed"
    assert set(outcomes.values()) == {"passed"}


def test_unavailable_backend_is_not_run_never_passed():
    result = conformance("--backend", "cuda")
    assert result.exit_code == 3
    assert "verdict: not run" in result.stdout
    assert "skipped     test_outputs_match_golden[moe-tiny-sparse-decode-1x1]" in result.stdout
    assert "has no CUDAExecutionProvider" in result.stdout


def test_a_backend_that_breaks_the_contract_fails_with_exit_1():
    result = conformance("--backend", "null", "--node-tests", "off")  # zeros, no placement
    assert result.exit_code == 1
    assert ("failed      test_outputs_match_golden[moe-tiny-sparse-decode-1x4]: AssertionError: "
            "case decode-1x4 (input_ids int64[1, 4])") in result.stdout
    assert "failed      test_no_silent_fallback" in result.stdout
    assert "verdict: failed" in result.stdout


def test_bad_option_is_a_usage_error():
    result = conformance("--backend", "openvino", "-o", "inference_precision=int4")
    assert result.exit_code == 2 and "choose one of f32, bf16, f16" in result.output


def test_openvino_runs_decode_goldens_and_calls_fused_not_supported():
    result = conformance("--backend", "openvino", "--node-tests", "off", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    outcomes = {c["name"]: (c["outcome"], c["message"]) for c in doc["contract"]}
    for dispatch in ("sparse", "dense"):
        for case in ("decode-1x1", "decode-1x4", "prefill-2x16"):
            assert outcomes[f"test_outputs_match_golden[moe-tiny-{dispatch}-{case}]"][0] == "passed"
    outcome, message = outcomes["test_outputs_match_golden[moe-tiny-fused-decode-1x1]"]
    assert outcome == "unsupported" and message.startswith("not supported by this stack: ")
    assert doc["verdict"] == "passed"


@pytest.mark.parametrize(("fail", "outcome", "how"), [
    ("segfault_load", "crashed", "killed by SIGSEGV"),
    ("hang", "timeout", "no result after 3s"),
])
def test_a_case_that_crashes_or_hangs_is_named_and_exits_4(fail, outcome, how):
    result = conformance("--backend", "null", "-o", f"fail={fail}", "--timeout", "3")
    assert result.exit_code == 4, result.output
    case = "test_outputs_match_golden[moe-tiny-sparse-decode-1x1]"
    assert f"died: {case} ({outcome}: " in result.stdout and how in result.stdout
    assert "not run     test_close_is_idempotent: (same reason)" in result.stdout
    assert "verdict: crashed" in result.stdout
