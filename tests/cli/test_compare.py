"""`portable compare` as a CI gate: significant regressions beyond the threshold exit 1."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import latencies, result_document
from report_docs import generate_document, precision_document

from portable.cli import cli
from portable.results import write_atomic


def _files(tmp_path, base_cells, new_cells, **new_model):
    base = write_atomic(tmp_path / "base.json", result_document(base_cells))
    new = write_atomic(tmp_path / "new.json", result_document(new_cells, **new_model))
    return str(base), str(new)


def _compare(*args):
    return CliRunner().invoke(cli, ["compare", *args])


def _verdicts(result):
    return {(c["backend"], c["batch"]): c for c in json.loads(result.stdout)["cells"]}


def test_same_distribution_passes(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10, seed=1)},
                       {("cpu", 1): latencies(10, seed=2)})
    result = _compare(base, new, "--json")
    assert result.exit_code == 0, result.output
    cell = _verdicts(result)[("cpu", 1)]
    assert not cell["significant"] and cell["verdict"] == "no significant change"
    assert abs(cell["p50_change"]) < 0.02


def test_significant_slowdown_beyond_threshold_exits_1(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10, seed=1), ("cpu", 4): latencies(20)},
                       {("cpu", 1): latencies(11, seed=2), ("cpu", 4): latencies(20, seed=3)})
    result = _compare(base, new, "--threshold", "5%")
    assert result.exit_code == 1, result.output
    assert "REGRESSION" in result.stdout and "1 regression(s) beyond 5.0%" in result.stderr
    as_json = _verdicts(_compare(base, new, "--json"))
    assert as_json[("cpu", 1)]["regression"] and as_json[("cpu", 1)]["p_value"] < 0.01
    assert as_json[("cpu", 1)]["p50_change"] == pytest.approx(0.1, abs=0.03)
    assert not as_json[("cpu", 4)]["regression"]


def test_significant_but_small_change_is_within_threshold(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10, n=4000, seed=1)},
                       {("cpu", 1): latencies(10.3, n=4000, seed=2)})
    result = _compare(base, new, "--threshold", "5", "--json")
    assert result.exit_code == 0, result.output
    cell = _verdicts(result)[("cpu", 1)]
    assert cell["significant"] and cell["verdict"] == "significant, within threshold"
    assert _compare(base, new, "--threshold", "1%").exit_code == 1


def test_speedup_is_an_improvement(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10)}, {("cpu", 1): latencies(8, seed=5)})
    result = _compare(base, new, "--json")
    assert result.exit_code == 0 and _verdicts(result)[("cpu", 1)]["verdict"] == "improvement"


def test_a_backend_that_starts_crashing_is_a_regression(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10)}, {("cpu", 1): "crashed"})
    result = _compare(base, new, "--json")
    assert result.exit_code == 1
    assert _verdicts(result)[("cpu", 1)]["verdict"] == "status ok -> crashed"


def test_results_of_different_models_are_refused(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10)}, {("cpu", 1): latencies(10)},
                       model="other")
    result = _compare(base, new)
    assert result.exit_code == 2
    assert "measured different models (add vs other" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_another_schema_version_is_refused(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10)}, {("cpu", 1): latencies(10)})
    document = json.loads(Path(new).read_text())
    document["schema_version"] = 2
    Path(new).write_text(json.dumps(document))
    result = _compare(base, new)
    assert result.exit_code == 2
    assert "schema version 2; this portable reads version 1" in result.output


@pytest.mark.parametrize("bad", ["x%", "-5%"])
def test_bad_threshold_is_a_usage_error(tmp_path, bad):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10)}, {("cpu", 1): latencies(10)})
    assert _compare(base, new, "--threshold", bad).exit_code == 2


def test_the_table_shows_base_and_new_values_beside_the_change(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10, seed=1)},
                       {("cpu", 1): latencies(12, seed=2)})
    result = _compare(base, new)
    cell = _verdicts(_compare(base, new, "--json"))[("cpu", 1)]
    p50 = cell["figures"]["p50_ms"]
    assert p50["base"] == pytest.approx(10, rel=0.02) and p50["new"] == pytest.approx(12, rel=0.02)
    assert f"{p50['base']:.3f} → {p50['new']:.3f} ({p50['change']:+.1%})" in result.stdout
    rate = cell["figures"]["samples_per_s"]
    assert f"{rate['base']:.1f} → {rate['new']:.1f}" in result.stdout


def _with_scenario(document, scenario):
    document["settings"]["scenario"] = scenario
    for cell in document["results"]:
        cell["scenario"] = scenario
    return document


@pytest.mark.parametrize("args", [["--json"], []])
def test_a_latency_run_against_a_throughput_run_compares_nothing(tmp_path, args):
    base = write_atomic(tmp_path / "base.json", result_document({("cpu", 1): latencies(10)}))
    new = write_atomic(tmp_path / "new.json", _with_scenario(
        result_document({("cpu", 1): latencies(10)}), "throughput"))
    result = _compare(str(base), str(new), *args)
    assert result.exit_code == 2 and result.stdout == ""
    assert "different scenarios (latency vs throughput)" in result.output


def test_files_without_a_matching_cell_compare_nothing(tmp_path):
    base, new = _files(tmp_path, {("cpu", 1): latencies(10)}, {("cpu", 4): latencies(10)})
    result = _compare(base, new)
    assert result.exit_code == 2 and "no cell of NEW matches a cell of BASE" in result.output


def test_generate_cells_compare_ttft_tpot_and_output_tokens_per_s(tmp_path):
    base = write_atomic(tmp_path / "base.json",
                        generate_document({("ort-cpu", 1): (5.0, 1.0)}))
    new = write_atomic(tmp_path / "new.json",
                       generate_document({("ort-cpu", 1): (5.0, 1.5)}, ort_cpu=0.5))
    result = _compare(str(base), str(new), "--json")
    figures = json.loads(result.stdout)["cells"][0]["figures"]
    assert figures["tpot_p50_ms"]["new"] / figures["tpot_p50_ms"]["base"] == pytest.approx(1.5)
    assert figures["ttft_p50_ms"]["change"] == pytest.approx(0.0)
    assert figures["output_tokens_per_s"]["change"] < -0.2
    assert figures["token_match"] == {"base": 1.0, "new": 0.5, "change": -0.5}
    table = _compare(str(base), str(new)).stdout
    assert "TTFT p50 ms" in table and "TPOT p50 ms" in table
    assert "100.0% → 50.0% (-50.0 pt)" in table


def test_precision_agreement_change_is_shown_and_a_failing_verdict_regresses(tmp_path):
    base_doc = precision_document("int8", 2.0, 1 << 20, expert=0.99, top1=0.995)
    new_doc = precision_document("int8", 2.0, 1 << 20, expert=0.95, top1=0.97, seed=1)
    new_doc["results"][0]["parity"]["precision"]["passed"] = False
    base = write_atomic(tmp_path / "base.json", base_doc)
    new = write_atomic(tmp_path / "new.json", new_doc)
    result = _compare(str(base), str(new))
    assert result.exit_code == 1, result.output
    assert "99.0% → 95.0% (-4.0 pt)" in result.stdout  # expert agreement
    assert "99.5% → 97.0% (-2.5 pt)" in result.stdout  # top-1 agreement
    assert "precision verdict pass -> FAIL" in result.stdout
