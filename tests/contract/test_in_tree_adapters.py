"""The shipped adapter contract, run on every in-tree adapter that can run here."""

from portable.testing import AdapterContract


class TestOrtCpu(AdapterContract):
    backend = "ort-cpu"


class TestOpenVino(AdapterContract):
    backend = "openvino"


class TestTorch(AdapterContract):
    backend = "torch"
