"""Result files written before the core pipeline (and typed results) still load, validate,
compare, report and export: schema version 1 only grew optional keys."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from portable import results
from portable.cli import cli

DATA = Path(__file__).resolve().parents[1] / "data"
OLD = sorted(DATA.glob("result-v1-before-pipeline-*.json"))


@pytest.mark.parametrize("path", OLD, ids=lambda p: p.stem)
def test_an_old_file_validates(path):
    document = results.load(path)
    assert {c["status"] for c in document["results"]} <= {"ok", "unavailable"}


def test_old_files_compare_report_and_export(tmp_path):
    latency = str(DATA / "result-v1-before-pipeline-latency.json")
    runner = CliRunner()
    same = runner.invoke(cli, ["compare", latency, latency])
    assert same.exit_code == 0, same.output
    report = runner.invoke(cli, ["report", *map(str, OLD), "--output", str(tmp_path / "r.md")])
    assert report.exit_code == 0, report.output
    assert "ort-cpu" in (tmp_path / "r.md").read_text()
    csv = runner.invoke(cli, ["export-results", *map(str, OLD)])
    assert csv.exit_code == 0 and csv.output.count("\n") == 1 + 3 + 2
