"""Adapters for registry tests, loaded through fake entry points."""

from portable.adapter import Adapter, Capabilities, DeviceInfo
from portable.errors import BackendUnavailable

LOADED: list[str] = []


class _Base(Adapter):
    def capabilities(self):
        return Capabilities(dtypes=("float32",))

    def load(self, model_path, config):
        raise NotImplementedError


class Good(_Base):
    name = "good"
    aliases = ("gd",)

    def probe(self):
        return DeviceInfo("cpu", "fake", runtime={"fake": "1.0"})


class Missing(_Base):
    name = "missing"

    def probe(self):
        raise BackendUnavailable("libfake.so not found", "install fake-runtime")


class ContractBreaker(_Base):
    name = "breaker"

    def probe(self):
        raise RuntimeError("boom")


class OldApi(Good):
    name = "old"
    api_version = (0, 3)


class Misnamed(Good):
    name = "something-else"


NotAnAdapter = object()
