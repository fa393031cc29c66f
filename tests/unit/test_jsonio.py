"""Result files that defeat a naive reader are bad files, exit 2 naming them (issue 14: 10, 13)."""

import json

import pytest
from helpers import latencies, result_document

from portable import jsonio
from portable.errors import ResultFileError
from portable.results import load, write_atomic


def _ok_document():
    document = result_document({("ort-cpu", 1): latencies(1.0, n=20)})
    return json.loads(json.dumps(document))


def _mutated(mutate):
    document = _ok_document()
    mutate(document["results"][0])
    return json.dumps(document)


@pytest.mark.parametrize("text, message", [
    ('{"n": ' + "9" * 5000 + "}", "not a readable result file"),
    ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    (b"\xff\xfe not utf-8", "not a readable result file"),
    (_mutated(lambda c: c.update(raw_latency_ns=[])), "raw_latency_ns"),
    (_mutated(lambda c: c.update(moe={"total_params": 1, "active_params_per_token": 1,
                                      "expert_load": [[1, 2], [3]]})),
     "expert_load: rows of different lengths"),
    (_mutated(lambda c: c.update(parity={"reference": "golden", "passed": True,
                                         "max_abs_error": 0.0, "outputs": {}})),
     "parity/outputs"),
    (_mutated(lambda c: c.update(latency={"count": 0, "unit": "ms"})), "latency"),
])
def test_hostile_result_files_are_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ResultFileError, match=message) as err:
        load(path)
    assert str(path) in str(err.value) and err.value.exit_code == 2


def test_files_above_the_size_cap_are_not_read(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_ok_document()))
    monkeypatch.setenv(jsonio.ENV_MAX_BYTES, "1000")
    with pytest.raises(ResultFileError, match=f"larger than .* {jsonio.ENV_MAX_BYTES}"):
        load(path)
    monkeypatch.setenv(jsonio.ENV_MAX_BYTES, str(10 * 2**20))
    assert load(path)["kind"] == "portable.bench"


def test_non_finite_figures_are_written_as_null_never_as_nan(tmp_path, caplog):
    document = _ok_document()
    document["results"][0]["parity"] = {
        "reference": "golden", "passed": False, "max_abs_error": float("inf"),
        "outputs": {"y": {"dtype": "float32", "max_abs_error": float("inf"),
                          "max_rel_error": float("inf"), "tolerance": 1e-4, "mismatched": 4,
                          "passed": False, "note": "output missing"}}}
    path = write_atomic(tmp_path / "r.json", document)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    assert "results/0/parity/max_abs_error" in caplog.text
    assert load(path)["results"][0]["parity"]["max_abs_error"] is None
