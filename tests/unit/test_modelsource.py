import onnx
import pytest
from helpers import add_model

from portable.errors import ModelError
from portable.modelsource import check_onnx_file, resolve


def test_valid_file_resolves_without_golden(tmp_path):
    source = resolve(str(add_model(tmp_path / "add.onnx")))
    assert source.kind == "file" and source.golden_path is None
    assert source.reference_config is None
    assert len(source.sha256()) == 64


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        resolve(str(tmp_path / "nope.onnx"))


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 this is not protobuf \xff" * 10)
    with pytest.raises(ModelError, match="bad.onnx: not a valid ONNX file"):
        resolve(str(bad))


def test_checker_failure_is_reported(tmp_path):
    path = add_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.graph.node[0].input[1] = "undefined_tensor"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="fails the ONNX checker"):
        check_onnx_file(path)


def external_data_model(folder, location):
    """add.onnx whose constant claims to live in the external file `location`."""
    folder.mkdir(exist_ok=True)
    path = add_model(folder / "m.onnx")
    model = onnx.load(str(path))
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    onnx.save(model, str(path))
    return path


def test_external_data_outside_the_folder_is_refused(tmp_path):
    path = external_data_model(tmp_path / "model", "../../etc/passwd")
    with pytest.raises(ModelError, match="points outside the model's folder"):
        check_onnx_file(path)


@pytest.mark.parametrize("location, message", [
    ("w\0eights.bin", "contains a NUL byte"),
    ("w" * 300, "not a usable file name"),
    ("w" * 5000, "not a usable file name"),
])
def test_unusable_external_data_names_are_bad_models(tmp_path, location, message):
    path = external_data_model(tmp_path / "model", location)
    with pytest.raises(ModelError, match=message) as err:
        check_onnx_file(path)
    assert err.value.exit_code == 2 and len(str(err.value)) < 400


def test_a_preset_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    from portable.modelsource import looks_like_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "moe-tiny").mkdir()
    (tmp_path / "mine").mkdir()
    assert not looks_like_path("moe-tiny")
    assert looks_like_path("./moe-tiny") and looks_like_path("mine")
    assert looks_like_path("model.onnx")


def test_unknown_preset_lists_presets():
    with pytest.raises(ModelError, match="moe-tiny"):
        resolve("moe-huge")


def test_overrides_refused_for_files(tmp_path):
    with pytest.raises(ModelError, match="apply to presets"):
        resolve(str(add_model(tmp_path / "a.onnx")), overrides=["top_k=1"])


def test_a_golden_file_without_outputs_means_no_golden_parity(tmp_path):
    import numpy as np

    path = add_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "m.golden.npz", **{"input.x": np.zeros((1, 4), np.float32)})
    source = resolve(str(path))
    assert source.golden_path is not None and source.golden() is None


def test_the_result_records_the_models_size_on_disk(tmp_path):
    path = add_model(tmp_path / "add.onnx")
    recorded = resolve(str(path)).to_dict()
    assert recorded["size_bytes"] == path.stat().st_size > 0
    assert recorded["precision"] == "fp32"
