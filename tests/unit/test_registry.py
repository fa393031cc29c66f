import sys
from importlib import metadata

import pytest

from portable import registry
from portable.errors import AdapterLoadError, BackendNotFound, BackendUnavailable


def _ep(name, value):
    return metadata.EntryPoint(name=name, value=value, group=registry.GROUP)


@pytest.fixture
def fake_eps(monkeypatch):
    eps = [
        _ep("good", "fake_adapters:Good"),
        _ep("missing", "fake_adapters:Missing"),
        _ep("breaker", "fake_adapters:ContractBreaker"),
        _ep("old", "fake_adapters:OldApi"),
        _ep("misnamed", "fake_adapters:Misnamed"),
        _ep("notadapter", "fake_adapters:NotAnAdapter"),
        _ep("broken", "no_such_module_xyz:Adapter"),
    ]
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: eps)
    sys.modules.pop("fake_adapters", None)
    return eps


def test_listing_imports_nothing(fake_eps):
    names = registry.installed_names()
    assert "good" in names and "broken" in names
    assert "fake_adapters" not in sys.modules


def test_lookup_loads_one_entry_point(fake_eps):
    cls = registry.load_adapter_class("good")
    assert cls.name == "good"
    assert "fake_adapters" in sys.modules
    assert "no_such_module_xyz" not in sys.modules


def test_unknown_name_lists_known_ones(fake_eps):
    with pytest.raises(BackendNotFound) as err:
        registry.load_adapter_class("nope")
    assert "good" in str(err.value) and "gd" in str(err.value)  # names and declared aliases
    assert err.value.exit_code == 2


def test_aliases_are_declared_by_the_adapter_class(fake_eps):
    assert registry.canonical_name("GD") == "good"
    assert registry.load_adapter_class("gd").name == "good"
    assert registry.aliases() == {"gd": "good"}


def test_install_hints_live_on_the_adapter_class():
    cls = registry.load_adapter_class("ascend")  # alias of cann, declared by CannAdapter
    assert cls.name == "cann" and "portable[cann]" in cls.install_hint
    assert "openvino" in registry.load_adapter_class("openvino").packages


def test_api_major_mismatch_names_both_versions(fake_eps):
    with pytest.raises(AdapterLoadError, match=r"API 0\.3.*speaks 1\.\d"):
        registry.load_adapter_class("old")


@pytest.mark.parametrize("name, message", [
    ("misnamed", "does not match"),
    ("notadapter", "is not a portable.adapter.Adapter"),
    ("broken", "importing no_such_module_xyz:Adapter failed"),
])
def test_bad_plugins_raise_load_errors(fake_eps, name, message):
    with pytest.raises(AdapterLoadError, match=message):
        registry.load_adapter_class(name)


def test_survey_reports_every_failure_without_raising(fake_eps):
    rows = {row.name: row for row in registry.survey()}
    assert rows["good"].available and rows["good"].device.runtime == {"fake": "1.0"}
    assert rows["missing"].reason == "libfake.so not found"
    assert rows["missing"].hint == "install fake-runtime"
    assert "broke the adapter contract" in rows["breaker"].reason
    assert "No module named" in rows["broken"].reason


def test_env_filter_limits_what_loads(fake_eps, monkeypatch):
    monkeypatch.setenv(registry.ENV_FILTER, "good")
    assert registry.installed_names() == ["good"]
    with pytest.raises(BackendUnavailable, match="disabled by PORTABLE_BACKENDS"):
        registry.load_adapter_class("missing")


def test_aliases():
    assert registry.canonical_name("CPU") == "ort-cpu"
    assert registry.canonical_name("ascend") == "cann"
    assert registry.canonical_name("cuda") == "ort-cuda"


def test_builtin_adapters_are_registered_by_entry_point():
    assert {"ort-cpu", "torch", "null"} <= set(registry.installed_names())
