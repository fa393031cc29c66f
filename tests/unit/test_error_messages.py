"""Runtime messages keep their cause when they are recorded in one line (issue 15, item 8)."""

from portable.conformance import failure_message
from portable.errors import condense_message
from portable.harness import error_info
from portable.onnx_backend import _gist

OPENVINO = (
    "Exception from src/inference/src/cpp/infer_request.cpp:189:\n"
    "Check '::getPort(port, name, {_impl->get_inputs(), _impl->get_outputs()})' failed at "
    "src/inference/src/cpp/infer_request.cpp:191:\n"
    "Port for tensor name data_0 was not found.\n\n"
)
ORT = ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x for the "
       "following indices\n index: 0 Got: 2 Expected: 1\n Please fix either the inputs/outputs "
       "or the model.")


def test_openvino_keeps_its_first_line_and_cause_without_source_locations():
    text = condense_message(OPENVINO)
    assert text == ("Exception from src/inference/src/cpp/infer_request.cpp:189: "
                    "Port for tensor name data_0 was not found.")


def test_every_cause_line_is_kept_and_long_text_is_cut():
    assert condense_message(ORT).endswith(
        "following indices index: 0 Got: 2 Expected: 1 Please fix either the inputs/outputs "
        "or the model.")
    assert condense_message("one line") == "one line"
    long = condense_message("x" * 50 + "\n" + "y" * 1000, limit=100)
    assert len(long) == 100 and long.endswith("…")


def test_a_cell_error_keeps_the_cause():
    record = error_info(RuntimeError("openvino rejected the inputs: " + OPENVINO)).to_dict()
    assert "\n" not in record["message"]
    assert record["message"].endswith("Port for tensor name data_0 was not found.")


def test_a_conformance_failure_keeps_the_cause():
    longrepr = ("    def test_x():\n>       session.run(feeds)\n"
                "E       RuntimeError: Exception from "
                "src/inference/src/cpp/infer_request.cpp:189:\n"
                "E       Check 'x' failed at src/inference/src/cpp/infer_request.cpp:191:\n"
                "E       Port for tensor name data_0 was not found.\n\n"
                "backends/openvino.py:80: RuntimeError")
    assert failure_message(longrepr) == (
        "RuntimeError: Exception from src/inference/src/cpp/infer_request.cpp:189: "
        "Port for tensor name data_0 was not found.")


def test_an_onnx_node_test_failure_keeps_the_cause():
    trace = ("Traceback (most recent call last):\n  File \"x.py\", line 3, in run\n"
             "    outputs = prepared.run(inputs)\n"
             "RuntimeError: Exception from src/inference/src/cpp/infer_request.cpp:189:\n"
             "Port for tensor name data_0 was not found.\n")
    assert _gist(trace).endswith(":189: Port for tensor name data_0 was not found.")
