"""PyTorch eager on the reference module: the numerical reference and a baseline.

It runs what the ONNX file was exported from: the reference config stored in the
file's metadata rebuilds the module (weights are deterministic from the seed). Given the
with-past export (`past_key_values.*` inputs), it runs the module's own KV-cache step
(`KVCacheDecoder`) under the same input and output names, so the generation loop drives
it like any other session.
A user's ONNX file without that metadata is not something it can run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from portable.adapter import Adapter, Capabilities, DeviceInfo, Placement, Session, SessionConfig
from portable.environment import cpu_model, package_version
from portable.errors import BackendUnavailable, UnsupportedModel
from portable.signature import read_signature

HINT = "pip install torch"


class TorchEagerSession(Session):
    def __init__(self, module: Any, torch: Any, signature: Any):
        self._module = module
        self._torch = torch
        self.inputs = signature.inputs
        self.outputs = signature.outputs
        self._output_names = [o.name for o in signature.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._module is None:
            raise RuntimeError("session is closed")
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        with torch.inference_mode():
            values = self._module(*args)
        if not isinstance(values, tuple | list):
            values = (values,)
        return {
            name: value.detach().numpy()
            for name, value in zip(self._output_names, values, strict=True)
        }

    def placement(self) -> Placement:
        return Placement("cpu", {"cpu": 1}, source="single-device (eager module)")

    def close(self) -> None:
        self._module = None


def _reference_config(model_path: Path) -> Any:
    """The reference config in the file's metadata; UnsupportedModel for any other model."""
    from portable.models.config import load_config_from_onnx

    reference = load_config_from_onnx(model_path)
    if reference is None:
        raise UnsupportedModel(
            f"the torch backend runs only portable's reference presets (moe-tiny, moe-small, "
            f"moe-base), not {model_path.name}: it rebuilds the PyTorch module from the "
            "preset's config, and a user's ONNX file has no PyTorch module behind it; "
            "use ort-cpu or openvino for it"
        )
    return reference


class TorchEagerAdapter(Adapter):
    name = "torch"
    install_hint = HINT
    packages = ("torch",)
    device_kind = "cpu"
    vendor_modules = ("torch",)

    def probe(self) -> DeviceInfo:
        # Cheap on purpose: `portable backends` must not import torch.
        if importlib.util.find_spec("torch") is None:
            raise BackendUnavailable("torch is not installed", HINT)
        return DeviceInfo(
            "cpu", cpu_model(), runtime={"torch": package_version("torch") or "unknown"}
        )

    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=("float32",), dynamic_shapes=True)

    def op_coverage(self, model_path: Path) -> None:
        """None for a reference model (the module runs it all); UnsupportedModel otherwise."""
        _reference_config(model_path)
        return None

    def load(self, model_path: Path, config: SessionConfig) -> TorchEagerSession:
        reference = _reference_config(model_path)
        import torch

        from portable.models.moe import KVCacheDecoder, build_model

        if config.threads:
            torch.set_num_threads(config.threads)
        signature = read_signature(model_path)
        module = build_model(reference)
        if any(t.name.startswith("past_key_values.") for t in signature.inputs):
            # The with-past export: the module's own cache step, same names and order.
            module = KVCacheDecoder(module).eval()
        session = TorchEagerSession(module, torch, signature)
        session.threads = torch.get_num_threads()
        return session
