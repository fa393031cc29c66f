"""Fuzzing the CLI: any arguments, any mutated model or result file, a documented exit code.

Whatever hypothesis throws at `portable`, it must end with 0, 1, 2, 3, 4 or 130
and never print a traceback without --debug (issue 14). Runs in-process with
--no-isolate and tiny timing settings, bounded to well under a minute.
"""

import json
import os

import pytest
from click.testing import CliRunner
from helpers import add_model, latencies, result_document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portable.cli import cli

pytestmark = pytest.mark.slow

DOCUMENTED = {0, 1, 2, 3, 4, 130}
FAST = ["--no-isolate", "--warmup", "0", "--iterations", "1", "--min-duration", "0",
        "--max-duration", "0.05"]
EXAMPLES = os.environ.get("FUZZ_EXAMPLES")  # more, and random, for a longer hunt by hand
FUZZ = settings(max_examples=int(EXAMPLES or 40), deadline=None, database=None,
                derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

EDGE_VALUES = ["0", "-1", "1", "2", "3", "nan", "-nan", "inf", "1e309", "", "abc", "[/x]",
               "=1+1", "x=1", "x=", "=", "a:b=c", "1,2", "0,0", "1,-1", "\x00", "ß" * 300,
               "9" * 40]
BENCH_OPTIONS = ["--batch", "--seq", "--threads", "--seed", "--timeout", "--price-per-hour",
                 "--rate", "-o", "--shape", "--dim", "--input", "-b", "--scenario",
                 "--p99-bound-ms"]
FLAGS = ["--json", "--strict", "--find-peak", "--debug-not-an-option"]


def _check(result):
    assert result.exit_code in DOCUMENTED, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception), result.output)
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    model = add_model(folder / "add.onnx")
    document = result_document({("ort-cpu", 1): latencies(1.0, n=30),
                                ("openvino", 1): "crashed"})
    good = folder / "good.json"
    good.write_text(json.dumps(document))
    return folder, model, good, json.loads(good.read_text())


option_values = st.tuples(st.sampled_from(BENCH_OPTIONS), st.sampled_from(EDGE_VALUES))


@FUZZ
@given(pairs=st.lists(option_values, max_size=4), flags=st.lists(st.sampled_from(FLAGS),
                                                                  max_size=2))
def test_bench_arguments(files, pairs, flags):
    folder, model, _, _ = files
    args = ["bench", "--model", str(model), "--output", str(folder / "out"), *FAST]
    for option, value in pairs:
        args += [option, value]
    _check(CliRunner().invoke(cli, [*args, *flags]))


@FUZZ
@given(command=st.sampled_from(["inspect", "compare", "export-results", "backends", "bench",
                                "check"]),
       words=st.lists(st.sampled_from([*EDGE_VALUES, "--json", "-b", "--all", "--alpha",
                                       "--threshold", "-o"]), max_size=4))
def test_any_command_with_odd_words(files, command, words):
    _, model, good, _ = files
    extra = {"bench": ["--model", str(model), *FAST], "check": ["--model", str(model),
                                                                "--no-isolate"]}
    _check(CliRunner().invoke(cli, [command, *extra.get(command, []), *words]))


@st.composite
def mutated_bytes(draw, original: bytes):
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        where = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            data[where] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[where:where + draw(st.integers(1, 16))]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(data=st.data())
def test_mutated_model_files(files, data, tmp_path_factory):
    folder, model, _, _ = files
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    path.write_bytes(data.draw(mutated_bytes(model.read_bytes())))
    _check(CliRunner().invoke(cli, ["inspect", str(path), "-b", "cpu"]))
    _check(CliRunner().invoke(cli, ["bench", "-b", "cpu", "--model", str(path), "--output",
                                    str(folder / "out"), *FAST]))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.sampled_from(["[/x]", "<script>", "=1", "ok", "latency"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from _paths(item, (*prefix, index))


@FUZZ
@given(data=st.data())
def test_mutated_result_files(files, data, tmp_path_factory):
    _, _, good, document = files
    document = json.loads(json.dumps(document))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in _paths(document) if p]))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            parent[path[-1]] = data.draw(json_values)
        elif isinstance(parent, dict):
            del parent[path[-1]]
    bad = tmp_path_factory.mktemp("result") / "bad.json"
    bad.write_text(json.dumps(document))
    _check(CliRunner().invoke(cli, ["compare", str(good), str(bad)]))
    _check(CliRunner().invoke(cli, ["export-results", str(bad)]))
