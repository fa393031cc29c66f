"""`portable report` says what each run was, how backends compare, and what did not run."""

import re

from click.testing import CliRunner
from helpers import latencies, result_document
from report_docs import generate_document, precision_document

from portable.cli import cli
from portable.results import write_atomic


def _report(tmp_path, *documents, name="report.md"):
    files = [str(write_atomic(tmp_path / f"run{i}.json", d)) for i, d in enumerate(documents, 1)]
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["report", *files, "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text()


def _section(text, title):
    """The Markdown table rows under `## title`, as lists of cells."""
    block = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split(" | ")]
            for line in block.splitlines() if line.startswith("| ")][2:]


def test_repeated_runs_are_told_apart_by_file_time_and_settings(tmp_path):
    first = result_document({("ort-cpu", 1): latencies(1.0)})
    second = result_document({("ort-cpu", 1): latencies(1.1, seed=3)})
    first["created_at"] = "2026-01-01T10:00:00+00:00"
    second["created_at"] = "2026-01-02T11:00:00+00:00"
    second["settings"]["threads"] = 2
    second["results"][0]["conditions"] = {"threads": 2, "load_average_1m": 0.5, "usable_cores": 2}
    text = _report(tmp_path, first, second)
    runs = _section(text, "Runs")
    assert [r[:3] for r in runs] == [["\\#1", "run1.json", "2026-01-01T10:00:00+00:00"],
                                     ["\\#2", "run2.json", "2026-01-02T11:00:00+00:00"]]
    assert runs[0][8] == "runtime default" and runs[1][8] == "2"
    assert "batches 1" in runs[0][7] and "warm-up" in runs[0][7]
    assert [r[0] for r in _section(text, "Results")] == ["\\#1", "\\#2"]


def test_summary_gives_each_backends_speedup_against_the_files_first_backend(tmp_path):
    document = result_document({("ort-cpu", 1): latencies(2.0), ("openvino", 1): latencies(1.0),
                                ("ort-cpu", 4): latencies(4.0), ("openvino", 4): latencies(8.0)})
    rows = {(r[4], r[3]): r for r in _section(_report(tmp_path, document), "Summary")}
    assert rows[("ort-cpu", "1×8")][-1] == "1.00× vs ort-cpu"
    assert re.fullmatch(r"2\.0\d× vs ort-cpu|1\.9\d× vs ort-cpu", rows[("openvino", "1×8")][-1])
    assert re.fullmatch(r"0\.[45]\d× vs ort-cpu", rows[("openvino", "4×8")][-1])


def test_unavailable_backends_are_summarised_once_without_figures(tmp_path):
    document = result_document({("ort-cpu", 1): latencies(1.0), ("cann", 1): "unavailable",
                                ("cann", 4): "unavailable", ("ort-cpu", 4): latencies(2.0),
                                ("musa", 1): "crashed"})
    document["results"][1]["memory"] = {"peak_rss_bytes": 61 << 20}  # never ran: never shown
    text = _report(tmp_path, document)
    results = _section(text, "Results")
    assert {r[2] for r in results} == {"ort-cpu", "musa"}
    crashed = next(r for r in results if r[2] == "musa")
    assert crashed[6] == "crashed" and crashed[7] == "-" and crashed[16] == "-"
    not_run = text.split("## Not run here\n", 1)[1].split("\n## ", 1)[0]
    assert not_run.count("cann") == 1 and "cann: unavailable: unavailable" in not_run
    assert "61.0 MiB" not in text
    statuses = {r[2]: r[6] for r in results}
    assert statuses["ort-cpu"] == "ok"


def test_generate_cells_show_ttft_tpot_tokens_per_s_and_token_match(tmp_path):
    document = generate_document({("ort-cpu", 1): (5.0, 1.0), ("openvino", 1): (4.0, 2.0)},
                                 openvino=0.75)
    rows = {r[3]: r for r in _section(_report(tmp_path, document), "Generation")}
    cpu, ov = rows["ort-cpu"], rows["openvino"]
    assert cpu[5] == "64+32"
    assert abs(float(cpu[6]) - 5.0) < 0.3 and abs(float(cpu[7]) - 1.0) < 0.1
    assert abs(float(cpu[8]) - 32_000 / 36) < 1
    assert cpu[9] == "tokens 100.0% match"
    assert ov[9] == "tokens 75.0% match, first divergence at step 7 (margin 0.4)"


def test_precision_variants_side_by_side_with_size_and_agreement(tmp_path):
    fp32 = precision_document("fp32", 4.0, 40 << 20)
    int8 = precision_document("int8", 2.0, 11 << 20, expert=0.985, top1=0.99)
    rows = _section(_report(tmp_path, int8, fp32), "Precision")
    assert [(r[0], r[1], r[2]) for r in rows] == [("moe-small", "fp32", "40.0 MiB"),
                                                   ("moe-small", "int8", "11.0 MiB")]
    assert rows[0][-1].startswith("pass (max abs 1.0e-02)")
    assert rows[1][-1] == "expert agreement 98.5%; top-1 99.0%: pass"
    runs = _section(_report(tmp_path, int8, fp32), "Runs")
    assert [r[4] for r in runs] == ["int8", "fp32"]


def test_everything_from_a_result_file_is_escaped(tmp_path):
    document = result_document({("<img src=x onerror=alert(1)>", 1): latencies(1.0),
                                ("cann|x", 1): "unavailable"}, model="<script>m</script>")
    document["results"][1]["error"]["message"] = "no *runtime* <b>"
    page = _report(tmp_path, document, name="r.html")
    assert "<script>m" not in page and "<img src=x" not in page and "<b>" not in page
    assert "&lt;script&gt;m&lt;/script&gt;" in page and "no *runtime* &lt;b&gt;" in page
    text = _report(tmp_path, document)
    assert "<script>" not in text and "cann\\|x: unavailable: no \\*runtime\\*" in text


def test_quotes_in_markdown_read_as_quotes(tmp_path):
    document = result_document({("it's", 1): latencies(1.0)})
    text = _report(tmp_path, document)
    assert "| it's |" in text and "&\\#x27;" not in text
