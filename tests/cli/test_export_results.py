"""`portable export-results`: one CSV row per cell, nothing half-written on bad input."""

import csv
import io

from click.testing import CliRunner
from helpers import latencies, result_document

from portable.cli import cli
from portable.results import CSV_COLUMNS, write_atomic


def test_one_row_per_cell_with_figures(tmp_path):
    path = write_atomic(tmp_path / "r.json", result_document(
        {("ort-cpu", 1): latencies(10), ("ort-cpu", 4): latencies(30), ("cann", 1): "crashed"}))
    result = CliRunner().invoke(cli, ["export-results", str(path)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["backend"], r["batch"], r["status"]) for r in rows] == [
        ("ort-cpu", "1", "ok"), ("ort-cpu", "4", "ok"), ("cann", "1", "crashed")]
    assert abs(float(rows[0]["p50_ms"]) - 10) < 0.5 and rows[1]["samples_per_s"]
    assert rows[2]["p50_ms"] == "" and rows[2]["error"] == "crashed"


def test_a_bad_file_among_good_ones_writes_nothing(tmp_path):
    good = write_atomic(tmp_path / "r.json", result_document({("cpu", 1): latencies(1)}))
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "portable.bench", "schema_version": 7}')
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(cli, ["export-results", str(good), str(bad), "--output", str(out)])
    assert result.exit_code == 2 and "schema version 7" in result.output
    assert not out.exists()
    again = CliRunner().invoke(cli, ["export-results", str(good), "--output", str(out)])
    assert again.exit_code == 0
    assert out.read_text().startswith("created_at,model,backend")
