import numpy as np
import pytest

from portable.adapter import TensorSpec
from portable.errors import InputError
from portable.inputs import make_feeds, resolve_dims


def test_dims_by_name_then_position():
    specs = [TensorSpec("ids", ("batch", "sequence_length"), "int64"),
             TensorSpec("x", ("N", "d0", 3), "float32")]
    sizes = resolve_dims(specs, batch=3, seq=37)
    assert sizes == {"batch": 3, "sequence_length": 37, "N": 3, "d0": 37}


def test_feeds_are_seeded_and_ids_stay_in_vocab():
    specs = [TensorSpec("input_ids", ("batch", "seq"), "int64")]
    a = make_feeds(specs, 2, 16, seed=1, reference_config={"vocab_size": 50})
    b = make_feeds(specs, 2, 16, seed=1, reference_config={"vocab_size": 50})
    assert a["input_ids"].shape == (2, 16) and a["input_ids"].dtype == np.int64
    assert np.array_equal(a["input_ids"], b["input_ids"])
    assert a["input_ids"].max() < 50


def test_unresolvable_dim_names_the_input():
    specs = [TensorSpec("x", (2, 3, "mystery"), "float32")]
    with pytest.raises(InputError, match="input 'x': dimension 2"):
        make_feeds(specs, 1, 1)
