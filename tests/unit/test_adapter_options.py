import pytest

from portable import registry
from portable.errors import InvalidOption


def test_unknown_option_lists_valid_ones():
    with pytest.raises(InvalidOption) as err:
        registry.create("ort-cpu", {"threads_please": "2"})
    message = str(err.value)
    assert "threads_please" in message
    assert "intra_op_threads" in message and "graph_optimization_level" in message


def test_bad_choice_and_bad_value():
    with pytest.raises(InvalidOption, match="choose one of disable, basic, extended, all"):
        registry.create("cpu", {"graph_optimization_level": "max"})
    with pytest.raises(InvalidOption, match="intra_op_threads='-1'"):
        registry.create("cpu", {"intra_op_threads": "-1"})


def test_options_are_parsed_and_defaulted():
    adapter = registry.create("cpu", {"intra_op_threads": "2"})
    assert adapter.options["intra_op_threads"] == 2
    assert adapter.options["graph_optimization_level"] == "all"
