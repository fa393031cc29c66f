import json

import pytest

from portable.errors import ResultFileError
from portable.results import SCHEMA_VERSION, build_document, load, write_atomic

SETTINGS = {"batch": 1, "seq": 8, "warmup": 0, "iterations": 1, "min_duration_s": 0.0,
            "max_duration_s": 1.0, "seed": 0}


def _doc():
    cell = {"backend": "null", "options": {}, "scenario": "latency", "batch": 1, "seq": 8,
            "status": "unavailable", "device": None,
            "error": {"type": "BackendUnavailable", "message": "no device", "hint": ""}}
    return build_document({"name": "m", "kind": "file"}, SETTINGS, [cell])


def test_round_trip(tmp_path):
    path = write_atomic(tmp_path / "r.json", _doc())
    loaded = load(path)
    assert loaded["schema_version"] == SCHEMA_VERSION
    assert loaded["results"][0]["backend"] == "null"
    assert "cpu" in loaded["environment"] and "packages" in loaded["environment"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp files left


def test_environment_records_no_home_paths_or_env_vars(tmp_path):
    text = json.dumps(_doc()["environment"])
    import os

    assert os.path.expanduser("~") not in text
    assert "PATH" not in text


def test_failed_write_keeps_old_file(tmp_path):
    path = write_atomic(tmp_path / "r.json", _doc())
    with pytest.raises(TypeError):
        write_atomic(path, {"unserialisable": object()})
    assert load(path)["model"]["name"] == "m"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not a readable result file"),
        ('{"kind": "something-else"}', "not a portable result file"),
        ('{"kind": "portable.bench", "schema_version": 99}', "schema version 99"),
    ],
)
def test_bad_files_are_rejected_clearly(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultFileError, match=message):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(ResultFileError, match="no such result file"):
        load(tmp_path / "nope.json")


def test_a_document_that_breaks_the_schema_is_refused_saying_where(tmp_path):
    document = _doc()
    document["results"][0]["status"] = "ok"  # an ok cell must carry its measurements
    path = tmp_path / "r.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultFileError, match="does not match the result schema: at results/0"):
        load(path)
