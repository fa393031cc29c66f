"""Fixtures for the reference-model tests: one moe-tiny export per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_session(tiny_export):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(
        str(tiny_export.onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_config):
    from portable.models.moe import build_model

    return build_model(tiny_config)
