"""Third-party probes run in a child process: a crash, hang or exit costs one row (issue 14)."""

import sys

import pytest
from plugin_site import make_plugin_site

from portable import probe_isolated, registry
from portable.errors import AdapterLoadError


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    site = make_plugin_site(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    yield site
    for name in list(sys.modules):
        if name.startswith("portable_test_"):
            del sys.modules[name]


def test_sys_exit_at_plugin_import_is_a_load_error(plugins):
    with pytest.raises(AdapterLoadError, match="SystemExit: 3"):
        registry.load_adapter_class("evil-exit")
    row = registry.status("evil-exit")
    assert row.installed and not row.available and "SystemExit" in row.reason


def test_builtin_adapters_probe_here_plugins_in_a_child(plugins):
    assert not probe_isolated.is_third_party("ort-cpu")
    assert probe_isolated.is_third_party("evil-segv")


@pytest.mark.parametrize("name, reason", [
    ("evil-segv", "its process killed by SIGSEGV"),
    ("evil-hang", "did not answer within 1s"),
])
def test_a_probe_that_crashes_or_hangs_is_a_row(plugins, name, reason):
    report = probe_isolated.probe(name, timeout=1)
    assert not report.status.available
    assert reason in report.status.reason and "broken plugin" in report.status.reason


def test_a_good_plugin_reports_its_device_from_the_child(plugins):
    report = probe_isolated.probe("evil-markup", timeout=30)
    assert report.status.available and report.status.device.device == "[/x]"
    assert "portable_test_evil_markup" not in sys.modules  # never imported here


def test_the_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(probe_isolated.ENV_TIMEOUT, "2.5")
    assert probe_isolated.timeout_s() == 2.5
    for bad in ("nan", "-1", "x"):
        monkeypatch.setenv(probe_isolated.ENV_TIMEOUT, bad)
        assert probe_isolated.timeout_s() == probe_isolated.DEFAULT_TIMEOUT_S
