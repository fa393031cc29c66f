"""Bad input and hostile surroundings get the documented exit code and one line (issue 14)."""

import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import add_model

from portable.cli import cli

FAST = ["--warmup", "1", "--iterations", "3", "--min-duration", "0"]


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli, list(args))


def assert_one_line_error(result, code, text):
    assert result.exit_code == code, result.output
    assert text in result.output
    assert "Traceback" not in result.output


# -- item 10, 18: options that cannot be measured are usage errors -------------------------

@pytest.mark.parametrize("args", [
    ["bench", "--timeout", "nan"],
    ["bench", "--min-duration", "nan"],
    ["bench", "--max-duration", "nan"],
    ["bench", "--max-duration", "inf"],
    ["bench", "--price-per-hour", "nan"],
    ["bench", "--price-per-hour", "inf"],
    ["bench", "--rate", "inf"],
    ["check", "-b", "cpu", "-b", "torch", "--timeout", "inf"],
    ["compare", "a.json", "b.json", "--alpha", "nan"],
])
def test_non_finite_floats_are_usage_errors(runner, args):
    assert_one_line_error(invoke(runner, *args), 2, "is not a finite number")


@pytest.mark.parametrize("command", [["bench"], ["check", "-b", "cpu", "-b", "torch"]])
def test_negative_seed_is_a_usage_error(runner, command):
    assert_one_line_error(invoke(runner, *command, "--seed", "-1"), 2, "--seed")


def test_threads_are_capped_at_a_multiple_of_the_cores(runner):
    result = invoke(runner, "bench", "--threads", "10000")
    assert_one_line_error(result, 2, "--threads")
    assert "10000 is not in the range" in result.output


# -- item 7: --output names a .json file or a folder --------------------------------------

def test_output_with_another_suffix_is_refused_before_running(runner, tmp_path):
    result = invoke(runner, "bench", "--output", str(tmp_path / "out.csv"))
    assert_one_line_error(result, 2, "must end in .json")
    assert not (tmp_path / "out.csv").exists()


def test_output_folder_with_a_dot_that_exists_is_still_a_folder(runner, tmp_path):
    folder = tmp_path / "runs.v2"
    folder.mkdir()
    model = add_model(tmp_path / "add.onnx")
    result = invoke(runner, "bench", "--model", str(model), "--output", str(folder),
                    "--no-isolate", *FAST)
    assert result.exit_code == 0, result.output
    assert len(list(folder.glob("*.json"))) == 1


# -- item 8: stdout full or closed ---------------------------------------------------------

def _portable(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "portable", *args], text=True,
                          stderr=subprocess.PIPE, timeout=120, **kwargs)


@pytest.mark.parametrize("args", [["backends"], ["backends", "--json"], ["--help"]])
def test_full_stdout_is_one_line_exit_2(args):
    with open("/dev/full", "w") as full:
        done = _portable(*args, stdout=full)
    assert done.returncode == 2
    assert done.stderr.strip() == "Error: cannot write to stdout: No space left on device"


def test_closed_stdout_is_one_line_exit_2():
    code = "import sys, runpy; sys.stdout.close(); sys.stdout = None; " \
           "sys.argv = ['portable', 'backends']; runpy.run_module('portable', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code], text=True, stderr=subprocess.PIPE,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "Error: cannot write to stdout: it is closed"


# -- item 16: Ctrl-C is exit 130 with one line, never "Aborted!" ---------------------------

def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_in_calibrate_exits_130(runner, monkeypatch, tmp_path):
    import portable.roofline

    monkeypatch.setattr(portable.roofline, "calibrate", _interrupt)
    result = invoke(runner, "calibrate", "--force")
    assert_one_line_error(result, 130, "interrupted")
    assert "Aborted" not in result.output


def test_ctrl_c_in_check_and_inspect_exits_130(runner, monkeypatch, tmp_path):
    import portable.inspection
    import portable.modelsource

    model = add_model(tmp_path / "add.onnx")
    monkeypatch.setattr(portable.inspection, "backend_support", _interrupt)
    assert_one_line_error(invoke(runner, "inspect", str(model)), 130, "interrupted")
    monkeypatch.setattr(portable.modelsource, "cached_export", _interrupt, raising=False)
    monkeypatch.setattr(portable.modelsource, "resolve", _interrupt)
    result = invoke(runner, "check", "-b", "cpu", "-b", "torch")
    assert_one_line_error(result, 130, "interrupted")


def test_ctrl_c_during_conformance_exits_130(runner, monkeypatch):
    from portable import conformance

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the parent watches a case's child process

    monkeypatch.setattr(conformance, "run_stage", interrupted)
    result = invoke(runner, "conformance", "-b", "cpu", "--node-tests", "off")
    assert_one_line_error(result, 130, "interrupted")


# -- items 1, 2, 4: plugins that exit, crash or hang at import or probe; markup in names ----

@pytest.fixture
def plugin_env(tmp_path):
    import os

    from plugin_site import make_plugin_site

    site = make_plugin_site(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(site), "PORTABLE_PROBE_TIMEOUT": "2",
           "PORTABLE_BACKENDS": "ort-cpu,evil-exit,evil-segv,evil-hang,evil-markup"}
    return env


def test_backends_survives_plugins_that_exit_crash_or_hang(plugin_env):
    done = _portable("backends", stdout=subprocess.PIPE, env=plugin_env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "SystemExit: 3" in out and "SIGSEGV" in out and "did not answer within 2s" in out
    assert "[/x] ([bold red]pwn <script>alert(1)</script>)" in out  # shown, not interpreted


def test_inspect_and_bench_survive_a_plugin_that_exits_at_import(plugin_env, tmp_path):
    model = add_model(tmp_path / "add.onnx")
    done = _portable("inspect", str(model), stdout=subprocess.PIPE, env=plugin_env)
    assert done.returncode == 0, done.stderr
    assert "evil-exit" in done.stdout and "ort-cpu" in done.stdout  # unusable ones: one line
    done = _portable("inspect", str(model), "-b", "evil-exit", "-b", "cpu",
                     stdout=subprocess.PIPE, env=plugin_env)
    assert done.returncode == 0, done.stderr
    assert "SystemExit: 3" in done.stdout and "ort-cpu" in done.stdout
    done = _portable("bench", "-b", "cpu", "-b", "evil-exit", "--model", str(model),
                     "--output", str(tmp_path / "r.json"), *FAST,
                     stdout=subprocess.PIPE, env=plugin_env)
    assert "Traceback" not in done.stderr
    import json

    cells = {c["backend"]: c for c in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert cells["ort-cpu"]["status"] == "ok"
    assert "SystemExit: 3" in cells["evil-exit"]["error"]["message"]


# -- items 4, 5: names from result files are text in tables, reports and CSV --------------

HOSTILE_BACKEND = "[/x]|<img src=x onerror=alert(1)>"
HOSTILE_MODEL = '=HYPERLINK("http://evil","<script>alert(1)</script>")'


@pytest.fixture
def hostile_result(tmp_path):
    import json

    from helpers import latencies, result_document

    document = result_document({(HOSTILE_BACKEND, 1): latencies(1.0)}, model=HOSTILE_MODEL)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(document))
    return path


def test_compare_prints_hostile_names_as_text(runner, hostile_result):
    result = invoke(runner, "compare", str(hostile_result), str(hostile_result))
    assert result.exit_code == 0, result.output
    assert "[/x]|<img" in result.output


def test_markdown_report_neutralises_html_and_pipes(runner, hostile_result, tmp_path):
    out = tmp_path / "report.md"
    result = invoke(runner, "report", str(hostile_result), "--output", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "<img" not in text and "<script" not in text
    assert "\\[/x\\]\\|&lt;img src=x onerror=alert(1)&gt;" in text
    header, rows = "", 0
    for line in text.splitlines():  # the name's pipe adds no column to any table
        header = line if line.startswith("| run |") else header
        if "onerror" in line and line.startswith("| "):
            assert line.count(" | ") == header.count(" | "), (header, line)
            rows += 1
    assert rows >= 2


def test_csv_export_defuses_formulas(runner, hostile_result):
    import csv
    import io

    result = invoke(runner, "export-results", str(hostile_result))
    assert result.exit_code == 0, result.output
    (row,) = csv.DictReader(io.StringIO(result.stdout))
    assert row["model"] == "'" + HOSTILE_MODEL
    assert row["p50_ms"][0].isdigit()  # numbers stay numbers


def test_bench_table_shows_a_markup_model_name_as_text(runner, tmp_path):
    model = add_model(tmp_path / "[bold red]pwn.onnx")
    result = invoke(runner, "bench", "--model", str(model), "--output", str(tmp_path),
                    "--no-isolate", *FAST)
    assert result.exit_code == 0, result.output
    assert "portable bench · [bold red]pwn" in result.stdout


# -- item 14: models a runtime cannot take are exit 2 or 3, never 4 ------------------------

def _identity(path, value_type):
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_value_info("x", value_type)],
                              [helper.make_value_info("y", value_type)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def _odd_model(tmp_path, kind):
    import onnx
    from onnx import TensorProto, helper

    path = tmp_path / f"{kind}.onnx"
    tensor = helper.make_tensor_type_proto
    if kind == "opset99":
        model = onnx.load(str(add_model(path)))
        model.opset_import[0].version = 99
        onnx.save(model, str(path))
        return path
    if kind == "no-outputs":
        model = onnx.load(str(add_model(path)))
        del model.graph.output[:]
        onnx.save(model, str(path))
        return path
    value_type = {
        "complex64": tensor(TensorProto.COMPLEX64, [2]),
        "float8": tensor(TensorProto.FLOAT8E4M3FN, [2]),
        "sequence": helper.make_sequence_type_proto(tensor(TensorProto.FLOAT, [2])),
        "optional": helper.make_optional_type_proto(tensor(TensorProto.FLOAT, [2])),
    }[kind]
    return _identity(path, value_type)


@pytest.mark.parametrize("kind, message", [
    ("opset99", "opset 99, newer than the newest released opset"),
    ("no-outputs", "has no outputs"),
    ("complex64", "has type complex64, which portable cannot generate"),
    ("float8", "has type float8_e4m3fn, which portable cannot generate"),
    ("sequence", "is not a tensor (sequence)"),
    ("optional", "is not a tensor (optional)"),
])
def test_models_portable_cannot_feed_exit_2_before_running(runner, tmp_path, kind, message):
    model = _odd_model(tmp_path, kind)
    result = invoke(runner, "bench", "-b", "cpu", "--model", str(model), "--output",
                    str(tmp_path / "out"), *FAST)
    assert_one_line_error(result, 2, message)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_inspect_does_not_call_an_opset_99_model_runnable(runner, tmp_path):
    result = invoke(runner, "inspect", str(_odd_model(tmp_path, "opset99")))
    assert_one_line_error(result, 2, "opset 99")


@pytest.mark.parametrize("backend", ["cpu", "openvino"])
def test_a_model_the_runtime_rejects_is_unsupported_exit_3_quietly(runner, tmp_path, capfd,
                                                                   backend):
    import json

    import numpy as np

    model = _odd_model(tmp_path, "complex64")
    np.savez(tmp_path / "x.npz", x=np.zeros(2, np.complex64))
    out = tmp_path / "r.json"
    result = invoke(runner, "bench", "-b", backend, "--model", str(model), "--inputs",
                    str(tmp_path / "x.npz"), "--output", str(out), "--no-isolate", *FAST)
    assert result.exit_code == 3, result.output
    assert json.loads(out.read_text())["results"][0]["status"] == "unsupported"
    assert "onnxruntime:" not in capfd.readouterr().err  # item 22: no raw runtime log lines


# -- item 11: settings LoadGen cannot measure -----------------------------------------------

def test_server_scenario_without_a_timed_window_is_a_usage_error(runner):
    result = invoke(runner, "bench", "--scenario", "server", "--iterations", "1",
                    "--min-duration", "0")
    assert_one_line_error(result, 2, "--scenario server needs --min-duration > 0")
