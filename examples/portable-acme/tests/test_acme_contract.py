"""The vendor's whole conformance suite: portable's shipped contract, subclassed."""

from portable.testing import AdapterContract


class TestAcme(AdapterContract):
    backend = "acme"
