"""Result files keep the user's home and interpreter paths out (issue 14: 21)."""

import sys
from pathlib import Path

from portable import privacy
from portable.harness import error_info
from portable.modelsource import ModelSource
from portable.runtimelog import ENV_DEBUG


def _raise_in_the_standard_library():
    import json

    json.loads("{")  # the frame of json/decoder.py lives under the interpreter's prefix


def test_stored_tracebacks_name_no_interpreter_or_home_paths(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_DEBUG, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    text = f"{sys.prefix}/lib/x.py\n{tmp_path}/project/y.py"
    assert privacy.redact(text) == "<python>/lib/x.py\n~/project/y.py"
    try:
        _raise_in_the_standard_library()
    except ValueError as exc:
        record = error_info(exc, with_traceback=True).to_dict()
    assert "<python>/lib/" in record["traceback"] and "json" in record["traceback"]
    assert sys.prefix not in record["traceback"] and sys.base_prefix not in record["traceback"]


def test_debug_keeps_tracebacks_whole(monkeypatch):
    monkeypatch.setenv(ENV_DEBUG, "1")
    assert privacy.redact(f"{sys.prefix}/x.py") == f"{sys.prefix}/x.py"


def test_a_cached_export_is_recorded_relative_to_the_cache(monkeypatch, tmp_path):
    home = tmp_path / "home" / "alice"
    model = home / ".cache" / "portable" / "models" / "k" / "moe-tiny.onnx"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"onnx")
    monkeypatch.delenv("PORTABLE_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    source = ModelSource("moe-tiny", model, "preset", None, None)
    assert source.to_dict()["path"] == "<cache>/models/k/moe-tiny.onnx"
    user_file = ModelSource("mine", model, "file", None, None)
    assert user_file.to_dict()["path"] == str(model)  # what the user passed is theirs
