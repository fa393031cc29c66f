import json

import pytest

from portable.errors import ResultFileError
from portable.results import SCHEMA_VERSION, build_document, load, write_atomic


def _doc():
    return build_document({"name": "m"}, {"batch": 1}, [{"backend": "null", "status": "ok"}])


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
