"""Exit codes are decided in one place (`portable.records.exit_code`) and mean what the
README says, for bench and check alike."""

import json

import pytest
from click.testing import CliRunner
from helpers import add_model

from portable import errors
from portable.cli import cli
from portable.records import CellResult, Status, exit_code

FAST = ["--warmup", "0", "--iterations", "2", "--min-duration", "0"]


@pytest.fixture(scope="module")
def add_onnx(tmp_path_factory):
    return str(add_model(tmp_path_factory.mktemp("models") / "add.onnx"))


def _bench(*args):
    return CliRunner().invoke(cli, ["bench", *args, *FAST])


def test_the_mapping_orders_statuses_and_checks():
    def result(status, **fields):
        return CellResult("x", {}, "latency", 1, 1, status, **fields)

    ok = result(Status.OK)
    assert exit_code([ok]) == errors.EXIT_OK
    assert exit_code([ok, result(Status.REFUSED)]) == errors.EXIT_CHECK_FAILED
    assert exit_code([result(Status.REFUSED), result(Status.INVALID)]) == errors.EXIT_USAGE
    assert exit_code([result(Status.INVALID), result(Status.UNSUPPORTED)]) == 3
    assert exit_code([result(Status.UNAVAILABLE), result(Status.TIMEOUT)]) == 4
    assert exit_code([result(Status.CRASHED)], interrupted=True) == errors.EXIT_INTERRUPTED
    failed = result(Status.OK, cross_parity={"passed": False})
    assert exit_code([ok, failed]) == errors.EXIT_CHECK_FAILED


@pytest.mark.parametrize("command", ["bench", "check"])
def test_strict_placement_refusal_is_a_failed_check(add_onnx, tmp_path, command):
    args = [command, "-b", "cpu", "-b", "null", "-o", "null:fallback=true", "--strict",
            "--model", add_onnx]
    if command == "bench":
        args += ["--output", str(tmp_path), *FAST]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "nodes ran off null" in result.output


def test_fallback_without_strict_is_recorded_not_failed(add_onnx, tmp_path):
    out = tmp_path / "r.json"
    result = _bench("-b", "null", "-o", "null:fallback=true", "--model", add_onnx,
                    "--output", str(out))
    assert result.exit_code == 0, result.output
    cell = json.loads(out.read_text())["results"][0]
    assert cell["placement"]["fallback"] and cell["placement"]["fallback_op_types"] == ["Gather"]


def test_crashed_cell_exits_4_and_unavailable_exits_3(add_onnx, tmp_path):
    crashed = _bench("-b", "null", "-o", "null:fail=segfault", "--model", add_onnx,
                     "--output", str(tmp_path))
    assert crashed.exit_code == 4 and "SIGSEGV" in crashed.output
    unavailable = _bench("-b", "cuda", "--model", add_onnx, "--output", str(tmp_path),
                         "--no-isolate")
    assert unavailable.exit_code == 3 and "CUDAExecutionProvider" in unavailable.output


def test_a_bad_model_in_a_cell_exits_2_not_4(add_onnx, tmp_path):
    result = _bench("-b", "null", "-o", "null:fail=load", "--model", add_onnx,
                    "--output", str(tmp_path))
    assert result.exit_code == 2 and "invalid" in result.output


def test_no_isolate_refuses_a_timeout_instead_of_ignoring_it(add_onnx, tmp_path):
    result = _bench("-b", "null", "--model", add_onnx, "--output", str(tmp_path),
                    "--no-isolate", "--timeout", "5")
    assert result.exit_code == 2 and "a timeout needs isolation" in result.output


@pytest.mark.parametrize("name, message", [
    ("out.csv", "must end in .json"),
    ("x" * 245 + ".json", "file name is too long"),
])
def test_bad_outputs_are_refused_before_measuring(add_onnx, tmp_path, name, message):
    result = _bench("-b", "null", "-o", "null:probe_delay_ms=0", "--model", add_onnx,
                    "--output", str(tmp_path / name))
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / name).exists() and "result:" not in result.output


def test_an_existing_directory_named_like_a_file_is_refused(add_onnx, tmp_path):
    (tmp_path / "x.json").mkdir()
    result = _bench("-b", "null", "--model", add_onnx, "--output", str(tmp_path / "x.json"))
    assert result.exit_code == 2 and "is a directory" in result.output


def test_a_write_that_fails_at_the_end_keeps_the_run(add_onnx, tmp_path, monkeypatch):
    from portable import results

    monkeypatch.chdir(tmp_path)
    real = results.write_atomic

    def fail_once(path, document):
        if path.name == "asked.json":
            raise OSError(28, "No space left on device")
        return real(path, document)

    monkeypatch.setattr(results, "write_atomic", fail_once)
    result = _bench("-b", "null", "--model", add_onnx, "--output", str(tmp_path / "asked.json"))
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output and "written to results/" in result.output
    saved = list((tmp_path / "results").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["results"][0]["status"] == "ok"
