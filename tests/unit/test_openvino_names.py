"""OpenVINO finds a model's tensors by every name their ports carry, then by position."""

import numpy as np
import openvino as ov
import pytest
from onnx_models import dropout_model, many_defaults_model, renamed_output_model

from portable.adapter import SessionConfig
from portable.backends.openvino import OpenVinoAdapter, port_indices
from portable.errors import InputError, ModelError


class Port:
    def __init__(self, *names):
        self._names = set(names)

    def get_names(self):
        return self._names


def test_a_name_is_found_among_all_of_a_ports_names_then_by_position():
    ports = [Port("softmaxout_1"), Port("b", "b_alias")]
    assert port_indices("input", ["data_0", "b_alias"], ports) == {"data_0": 0, "b_alias": 1}
    with pytest.raises(ModelError, match=r"no input port for 'nope'; .* names: a; b; c$"):
        port_indices("input", ["a", "nope"], [Port("a"), Port("b"), Port("c")])  # 2 names, 3 ports


def test_a_one_op_model_whose_input_name_openvino_dropped_runs(tmp_path):
    model = dropout_model(tmp_path / "dropout.onnx")
    assert "data_0" not in ov.Core().read_model(str(model)).inputs[0].get_names()
    x = np.arange(3, dtype=np.float32).reshape(1, 3)
    with OpenVinoAdapter().load(model, SessionConfig()) as session:
        assert session.run({"data_0": x})["softmaxout_1"].tolist() == x.tolist()


def test_an_output_whose_primary_name_differs_is_found(tmp_path):
    model = renamed_output_model(tmp_path / "renamed.onnx")
    compiled = ov.Core().compile_model(str(model), "CPU")
    assert compiled.outputs[0].get_any_name() != "z"  # what a lookup by any_name missed
    x = np.array([[-1, 0, 2]], np.float32)
    with OpenVinoAdapter().load(model, SessionConfig()) as session:
        assert session.run({"x": x})["z"].tolist() == [[0, 0, 2]]


def test_feeding_an_input_openvino_made_a_constant_says_so(tmp_path):
    model = many_defaults_model(tmp_path / "defaults.onnx", count=2)
    feeds = {"x": np.zeros(2, np.float32), "p0": np.zeros(2, np.float32)}
    with (OpenVinoAdapter().load(model, SessionConfig()) as session,
          pytest.raises(InputError, match=r"cannot feed 'p0'.*initializer.*inputs are x")):
        session.run(feeds)
