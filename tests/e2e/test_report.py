"""`portable report`: the HTML page renders its plots in a real browser (headless Chromium)."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import latencies, result_document

from portable.cli import cli
from portable.results import write_atomic

C0_BLUE, C1_ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two series colours


@pytest.fixture
def sweep_result(tmp_path):
    cells = {(backend, batch): latencies(scale * batch ** 0.5, n=200, seed=batch)
             for backend, scale in (("ort-cpu", 1.0), ("openvino", 1.5)) for batch in (1, 4, 16)}
    cells[("cann", 1)] = "unavailable"
    return write_atomic(tmp_path / "sweep.json", result_document(cells))


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("PORTABLE_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (.ci/run installs Debian's chromium)")
        pytest.skip("no chromium on PATH (apt-get install chromium; CI installs it)")
    return found


def _pixels_of(png, colour) -> int:
    from matplotlib.image import imread

    rgb = np.rint(imread(png)[..., :3] * 255).astype(int)
    return int(np.all(np.abs(rgb - colour) <= 2, axis=-1).sum())


@pytest.mark.slow
def test_html_report_renders_its_plots_in_chromium(sweep_result, tmp_path):
    chromium = _chromium()
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(sweep_result), "--output", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert html.count('src="data:image/png;base64,') == 2  # latency + throughput, embedded
    assert "cann: unavailable: unavailable" in html and "openvino" in html
    assert "<h2>Summary</h2>" in html and "vs ort-cpu" in html
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert 'id="plot-latency-latency"' in dom.stdout
    assert 'id="plot-throughput-latency"' in dom.stdout
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    # the plots were decoded and painted: their series colours are on the screen
    assert _pixels_of(shot, C0_BLUE) > 300
    assert _pixels_of(shot, C1_ORANGE) > 100  # only the throughput plot's second line


def test_markdown_report_links_images_beside_it(sweep_result, tmp_path):
    page = tmp_path / "out" / "report.md"
    result = CliRunner().invoke(cli, ["report", str(sweep_result), "--output", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert ("![latency scenario: latency distribution (median marked)]"
            "(report_files/latency-latency.png)") in text
    assert "| ort-cpu |" in text and "- cann: unavailable: unavailable" in text
    png = page.parent / "report_files" / "throughput-latency.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_output_and_bad_inputs_write_nothing(sweep_result, tmp_path):
    runner = CliRunner()
    wrong = runner.invoke(cli, ["report", str(sweep_result), "--output", str(tmp_path / "r.pdf")])
    assert wrong.exit_code == 2 and "must end in .html or .md" in wrong.output
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    out = tmp_path / "r.html"
    result = runner.invoke(cli, ["report", str(sweep_result), str(bad), "--output", str(out)])
    assert result.exit_code == 2 and "not a readable result file" in result.output
    assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = runner.invoke(cli, ["report", str(sweep_result),
                                     "--output", str(blocker / "r.html")])
    assert unwritable.exit_code == 2 and "cannot write" in unwritable.output
