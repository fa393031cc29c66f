import os
import stat

import numpy as np
import pytest

from portable.adapter import TensorSpec
from portable.errors import InputError
from portable.feeds import make_feeds, save_inputs
from portable.inputs import InputSpec, plan_shapes
from portable.shapes import resolve_dims, run_shape, sequence_dim

ALL_TYPES = ["float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64",
             "uint8", "uint16", "uint32", "uint64", "bool", "str"]


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


@pytest.mark.parametrize("dtype", ALL_TYPES)
def test_every_onnx_type_is_generated_seeded(dtype):
    specs = [TensorSpec("v", ("batch", 3), dtype)]
    a = make_feeds(specs, 2, 1, seed=7)["v"]
    assert a.shape == (2, 3) and str(a.dtype) == ("object" if dtype == "str" else dtype)
    assert np.array_equal(a, make_feeds(specs, 2, 1, seed=7)["v"])
    if dtype not in ("bool", "str"):
        assert np.isfinite(a.astype(np.float64)).all()


def test_other_seed_other_values():
    specs = [TensorSpec("x", (64,), "float32")]
    assert not np.array_equal(make_feeds(specs, 1, 1, seed=0)["x"],
                              make_feeds(specs, 1, 1, seed=1)["x"])


def test_unresolved_dims_are_listed_with_a_runnable_example():
    specs = [TensorSpec("images", ("N", 3, "height", "width"), "float32"),
             TensorSpec("extra", (2, None), "float32")]
    with pytest.raises(InputError) as info:
        plan_shapes(specs, 1, 128, command="portable bench --model m.onnx")
    message = str(info.value)
    assert "'images'" in message and "(height)" in message and "(width)" in message
    assert "'extra'" in message and "(unnamed)" in message
    # Sizes of 1 would hide the real cost: an image side is 224, a length the seq.
    assert message.endswith(
        "portable bench --model m.onnx --dim height=224 --dim width=224 --shape extra=2,128")
    given = InputSpec(dims={"height": 4, "width": 5}, shapes={"extra": (2, 6)})
    assert plan_shapes(specs, 2, 1, given) == {"images": (2, 3, 4, 5), "extra": (2, 6)}


def test_dim_applies_everywhere_and_shape_binds_its_dims():
    specs = [TensorSpec("a", ("batch", "k"), "float32"), TensorSpec("b", ("k", "batch"), "int64")]
    assert plan_shapes(specs, 2, 9, InputSpec(dims={"k": 5})) == {"a": (2, 5), "b": (5, 2)}
    assert plan_shapes(specs, 2, 9, InputSpec(shapes={"a": (3, 7)})) == {"a": (3, 7),
                                                                         "b": (7, 3)}


@pytest.mark.parametrize("given, match", [
    (InputSpec(shapes={"a": (2,)}), r"input 'a': expected rank 2 \[batch, 4\], --shape has rank 1"),
    (InputSpec(shapes={"a": (2, 5)}), r"expected shape \[batch, 4\], --shape gives \[2, 5\]"),
    (InputSpec(shapes={"nope": (1,)}), r"--shape: no input named 'nope'; the model's inputs are a"),
    (InputSpec(dims={"height": 2}), r"no symbolic dimension 'height'; .* are batch"),
    (InputSpec(values={"a": ("x",)}), r"--input a=x: not a valid float32 value"),
])
def test_bad_overrides_name_the_input_expected_and_given(given, match):
    with pytest.raises(InputError, match=match):
        plan_shapes([TensorSpec("a", ("batch", 4), "float32")], 1, 1, given)


def test_literal_inputs_fill_scalars_and_small_tensors():
    specs = [TensorSpec("rate", (), "int64"), TensorSpec("flags", (3,), "bool"),
             TensorSpec("fill", ("batch", 2), "float32"), TensorSpec("ids", ("n",), "int32")]
    given = InputSpec(values={"rate": ("16000",), "flags": ("1", "false", "true"),
                              "fill": ("0.5",), "ids": ("4", "5", "6", "7")})
    feeds = make_feeds(specs, 2, 1, given=given)
    assert feeds["rate"].shape == () and feeds["rate"] == 16000
    assert feeds["flags"].tolist() == [True, False, True]
    assert feeds["fill"].shape == (2, 2) and (feeds["fill"] == 0.5).all()
    assert feeds["ids"].tolist() == [4, 5, 6, 7]  # a list binds the 1-D input's dim


def test_npz_data_is_used_and_binds_dims(tmp_path):
    path = tmp_path / "data.npz"
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savez(path, x=x)
    specs = [TensorSpec("x", ("batch", 4), "float32"), TensorSpec("m", ("batch",), "bool")]
    feeds = make_feeds(specs, 1, 1, given=InputSpec(npz=path))
    assert np.array_equal(feeds["x"], x) and feeds["m"].shape == (3,)


@pytest.mark.parametrize("arrays, match", [
    ({"x": np.zeros((2, 4), np.float64)},
     r"input 'x': expected dtype float32, --inputs .* gives float64"),
    ({"x": np.zeros((2, 5), np.float32)},
     r"input 'x': expected shape \[batch, 4\], --inputs gives \[2, 5\]"),
    ({"x": np.zeros((2, 4), np.float32), "y": np.zeros(1)},
     r"arrays 'y' match no input; the model's inputs are x"),
])
def test_bad_npz_data_names_the_input(tmp_path, arrays, match):
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=match):
        make_feeds([TensorSpec("x", ("batch", 4), "float32")], 1, 1, given=InputSpec(npz=path))


def test_npz_is_never_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="member 'x' is not a valid .npy array"):
        make_feeds([TensorSpec("x", (1,), "float32")], 1, 1, given=InputSpec(npz=path))


def test_missing_npz_file_is_a_usage_error(tmp_path):
    with pytest.raises(InputError, match="--inputs .*gone.npz: no such file"):
        plan_shapes([TensorSpec("x", (1,), "float32")], 1, 1,
                    InputSpec(npz=tmp_path / "gone.npz"))


IMAGE = TensorSpec("images", (None, 3, None, None), "float32")
TOKENS = TensorSpec("input_ids", ("batch", "sequence_length"), "int64")


@pytest.mark.parametrize(("specs", "expected"), [
    ([TOKENS], ("input_ids", 1)),
    ([TensorSpec("x", ("time", "batch", 4), "float32")], ("x", 0)),  # named, not placed
    ([TensorSpec("feats", ("N", "frames_dyn", 80), "float32")], ("feats", 1)),  # placed
    ([IMAGE], None),
    ([TensorSpec("images", ("N", "C", "H", "W"), "float32")], None),  # an image's C is no seq
])
def test_sequence_dim_only_where_the_model_has_one(specs, expected):
    assert sequence_dim(specs) == expected


def test_image_channels_are_not_sized_by_seq():
    specs = [TensorSpec("images", ("N", "C", "H", "W"), "float32")]
    with pytest.raises(InputError, match=r"--dim C=3 --dim H=224 --dim W=224$"):
        plan_shapes(specs, 1, 128)


def test_run_shape_comes_from_the_arrays_run():
    images = {"images": np.zeros((4, 3, 224, 224), np.float32)}
    assert run_shape([IMAGE], images) == (4, None)  # --shape images=4,3,224,224
    tokens = {"input_ids": np.zeros((2, 64), np.int64)}
    assert run_shape([TOKENS], tokens) == (2, 64)  # --inputs of (2, 64) arrays
    gru = [TensorSpec("x", ("time", "batch", 4), "float32")]
    assert run_shape(gru, {"x": np.zeros((7, 3, 4), np.float32)}) == (3, 7)
    assert run_shape([TensorSpec("s", (), "int64")], {"s": np.array(3)}) == (1, None)


@pytest.mark.parametrize(("spec", "metadata", "flag"), [
    (IMAGE, {}, "--shape images=1,3,224,224"),
    (IMAGE, {"imgsz": "[640, 480]"}, "--shape images=1,3,640,480"),  # as ultralytics writes
    (TensorSpec("img", (None, None, None, 3), "uint8"), {}, "--shape img=1,224,224,3"),
    (TensorSpec("x", ("batch", "seq", "depth"), "float32"), {"depth": "12"}, "--dim depth=12"),
])
def test_suggested_sizes_come_from_metadata_or_common_defaults(spec, metadata, flag):
    with pytest.raises(InputError) as info:
        plan_shapes([spec], 1, 128, metadata=metadata)
    assert str(info.value).endswith(flag)


def test_masks_positions_and_type_ids_hold_what_a_tokenizer_gives():
    specs = [TOKENS, TensorSpec("attention_mask", ("batch", "sequence_length"), "int64"),
             TensorSpec("token_type_ids", ("batch", "sequence_length"), "int64"),
             TensorSpec("position_ids", ("batch", "sequence_length"), "int64"),
             TensorSpec("mask", ("batch", "sequence_length"), "bool"),
             TensorSpec("key_padding_mask", ("batch", "sequence_length"), "bool")]
    feeds = make_feeds(specs, 2, 5, seed=3)
    assert (feeds["attention_mask"] == 1).all() and (feeds["mask"]).all()
    assert (feeds["token_type_ids"] == 0).all()
    assert feeds["position_ids"].tolist() == [[0, 1, 2, 3, 4]] * 2
    assert len(np.unique(feeds["input_ids"])) > 2  # ids stay random
    assert not feeds["key_padding_mask"].all()  # ones there would mean "ignore every token"


def test_saved_inputs_load_back_without_pickle_with_umask_mode(tmp_path):
    feeds = {"file": np.arange(6, dtype=np.float32).reshape(2, 3),
             "words": np.array(["alpha", "beta"], dtype=object), "s": np.array(7)}
    old = os.umask(0o027)
    try:
        path = save_inputs(tmp_path / "in.npz", feeds)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with np.load(path, allow_pickle=False) as data:
        assert data["file"].tolist() == feeds["file"].tolist()
        assert data["words"].tolist() == ["alpha", "beta"] and data["s"].shape == ()
    assert [p.name for p in tmp_path.iterdir()] == ["in.npz"]  # no temporary left behind


def test_saving_into_a_missing_folder_parent_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="--save-inputs"):
        save_inputs(blocker / "in.npz", {"x": np.zeros(2)})


@pytest.mark.parametrize("member, content", [
    ("x", b"plain bytes, not an array"),
    ("x.npy", b"\x93NUMPY garbage header"),
])
def test_zip_member_that_is_not_an_npy_is_named(tmp_path, member, content):
    import zipfile

    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, content)
    with pytest.raises(InputError, match="member 'x' is not a"):
        plan_shapes([TensorSpec("x", (1,), "float32")], 1, 1, InputSpec(npz=path))
