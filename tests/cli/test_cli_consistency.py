"""One meaning per flag, in every command (issue 15, item 13)."""

import logging
import os
import re
import stat

import pytest
from click.testing import CliRunner
from onnx_models import multi_input_model

from portable.cli import cli
from portable.errors import ModelError


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def flat(text):
    """Help and tables as one line: wrapped words (and words wrapped at a hyphen) rejoined."""
    return " ".join(re.sub(r"-\n\s+", "-", text).split())


@pytest.mark.parametrize("command", [["report", "r.json"], ["export"],
                                     ["export-results", "r.json"]])
def test_o_is_never_output(command, tmp_path):
    result = invoke(*command, "-o", tmp_path / "x.html")
    assert result.exit_code == 2 and "No such option '-o'" in result.output


@pytest.mark.parametrize("command", ["bench", "check", "inspect", "conformance"])
def test_backend_help_lists_the_installed_backends(command):
    text = flat(invoke(command, "--help").output)
    assert "Installed: " in text and "ort-cpu" in text and "cpu=ort-cpu" in text


def test_debug_and_verbose_work_after_the_subcommand(tmp_path):
    missing = tmp_path / "missing.onnx"
    plain = invoke("inspect", missing)
    assert plain.exit_code == 2 and "no such file" in plain.output
    debug = invoke("inspect", missing, "--debug")
    assert isinstance(debug.exception, ModelError)  # raised for its traceback, not one line
    root = logging.getLogger()
    level = root.level
    try:
        invoke("backends", "-v")
        assert root.level == logging.INFO
    finally:
        root.setLevel(level)


def test_export_takes_model_like_bench_and_honours_the_umask(tiny_export, tmp_path):
    old = os.umask(0o022)
    try:
        result = invoke("export", "--model", "moe-tiny", "--output", tmp_path / "tiny.onnx")
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for name in ("tiny.onnx", "tiny.golden.npz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    assert "exporting" not in result.output  # cached: nothing to wait for


def test_a_first_export_says_so_on_stderr(tiny_export, monkeypatch):
    from portable.models import cache, export

    monkeypatch.setattr(cache, "cached_export", lambda config, **kw: None)
    monkeypatch.setattr(export, "ensure_exported", lambda config, **kw: tiny_export)
    result = invoke("export", "--model", "moe-tiny")
    assert result.exit_code == 0, result.output
    assert "exporting moe-tiny to ONNX with golden outputs (first use; cached afterwards)" in (
        result.stderr)
    assert "exported moe-tiny in " in result.stderr


def test_check_says_how_its_tolerance_applies(tmp_path):
    model = multi_input_model(tmp_path / "m.onnx")
    result = invoke("check", "--model", model, "-b", "cpu", "-b", "null", "--seq", "4",
                    "--no-isolate")
    assert "tolerance (abs/rel)" in result.stdout
    assert "absolute below 1, relative above" in flat(result.stdout)
    count = next(line for line in result.stdout.splitlines() if "│ count" in line)
    assert "exact" in count  # an int64 output must match exactly


def test_torch_on_a_user_model_says_it_runs_only_the_reference_presets(tmp_path):
    model = multi_input_model(tmp_path / "m.onnx")
    result = invoke("bench", "-b", "torch", "--model", model, "--seq", "4", "--no-isolate",
                    "--output", tmp_path)
    assert result.exit_code == 3
    assert "runs only portable's reference presets" in " ".join(result.output.split())
