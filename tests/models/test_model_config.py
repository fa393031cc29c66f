"""MoEConfig: validation, presets, overrides, serialisation, parameter counts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from portable.errors import ModelError
from portable.models.config import (
    PRESETS,
    MoEConfig,
    active_params_per_token,
    apply_overrides,
    get_preset,
    moe_layer_count,
    total_params,
)


def test_presets_are_valid_and_tiny_is_ci_sized():
    assert "moe-tiny" in PRESETS
    tiny = get_preset("moe-tiny")
    assert total_params(tiny) * 4 < 4 * 2**20  # a few MB of float32 at most
    assert moe_layer_count(tiny) >= 1
    base = PRESETS["moe-base"]
    assert (base.num_experts, base.num_shared_experts, base.top_k) == (64, 2, 6)
    assert (base.n_groups, base.topk_groups) == (8, 4)


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ModelError, match="moe-tiny"):
        get_preset("moe-huge")


def test_overrides_parse_by_field_type():
    c = apply_overrides(get_preset("moe-tiny"),
                        ["top_k=3", "route_scale=2.5", "gate=softmax", " seed = 7 "])
    assert (c.top_k, c.route_scale, c.gate, c.seed) == (3, 2.5, "softmax", 7)
    assert isinstance(c.route_scale, float)
    assert apply_overrides(c, []) == c


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("topk=3", r"unknown model config key 'topk'.*valid keys: .*top_k"),
        ("top_k=three", r"bad value 'three' for model config key 'top_k'"),
        ("route_scale=x", r"route_scale.*expected float"),
        ("top_k", r"not of the form key=value"),
        ("=3", r"not of the form key=value"),
        ("top_k=99", r"top_k=99 must be <= num_experts=8"),
        ("gate=relu", r"gate='relu' must be one of sigmoid, softmax"),
        ("dispatch=magic", r"dispatch='magic'"),
    ],
)
def test_bad_override_raises_model_error(item, match):
    with pytest.raises(ModelError, match=match):
        apply_overrides(get_preset("moe-tiny"), [item])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"num_experts": 7}, r"num_experts=7 must be divisible by n_groups=2"),
        ({"hidden": 66}, r"hidden=66 must be divisible by heads=4"),
        ({"hidden": 68, "heads": 4}, r"must be even for RoPE"),
        ({"layers": 1}, r"layers=1 must exceed dense_layers=1"),
        ({"topk_groups": 3}, r"topk_groups=3 must be <= n_groups=2"),
        ({"top_k": 5}, r"top_k=5 must be <= topk_groups \* experts per group = 1 \* 4"),
        ({"vocab_size": 0}, r"vocab_size=0 must be >= 1"),
        ({"route_scale": 0.0}, r"route_scale=0.0 must be > 0"),
    ],
)
def test_validation(changes, match):
    with pytest.raises(ModelError, match=match):
        dataclasses.replace(get_preset("moe-tiny"), **changes)


def test_dict_round_trip_and_errors():
    for config in PRESETS.values():
        assert MoEConfig.from_dict(config.to_dict()) == config
    d = get_preset("moe-tiny").to_dict()
    with pytest.raises(ModelError, match=r"unknown keys \['extra'\]"):
        MoEConfig.from_dict({**d, "extra": 1})
    del d["top_k"]
    with pytest.raises(ModelError, match=r"missing keys \['top_k'\]"):
        MoEConfig.from_dict(d)
    with pytest.raises(ModelError, match="'hidden' must be int"):
        MoEConfig.from_dict({**get_preset("moe-tiny").to_dict(), "hidden": "64"})
    # JSON may hand back an int for a float field.
    assert MoEConfig.from_dict({**get_preset("moe-tiny").to_dict(), "route_scale": 1}) \
        == get_preset("moe-tiny")


def test_cache_key_is_short_stable_and_config_sensitive():
    tiny = get_preset("moe-tiny")
    assert tiny.cache_key() == dataclasses.replace(tiny).cache_key()
    assert len(tiny.cache_key()) == 16
    assert tiny.cache_key() != dataclasses.replace(tiny, seed=1).cache_key()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_param_counts_match_the_module(name):
    """total/active counts agree with the torch module actually built from the config."""
    import torch

    from portable.models.moe import build_model

    config = get_preset(name)
    if name != "moe-tiny":  # build on the meta device: no memory, no init
        with torch.device("meta"):
            from portable.models.moe import MoETransformer
            model = MoETransformer(config)
    else:
        model = build_model(config)
    assert total_params(config) == sum(p.numel() for p in model.parameters())
    c = config
    inactive = (moe_layer_count(c) * (c.num_experts - c.top_k)
                * 3 * c.hidden * c.expert_intermediate)
    assert active_params_per_token(c) == total_params(c) - inactive
    assert active_params_per_token(c) < total_params(c)


def test_config_module_does_not_import_torch():
    code = ("import sys, portable.models, portable.models.config; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
