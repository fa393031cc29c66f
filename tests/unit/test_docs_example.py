"""The ORT-EP adapter in docs/adapters.md is real code, within the promised 60 lines."""

import re
from pathlib import Path

import pytest

from portable.errors import BackendUnavailable, InvalidOption

DOC = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"


def test_ort_ep_adapter_in_the_docs_works_and_is_short():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    source = next(b for b in blocks if "class AcmeAdapter(OrtAdapter)" in b)
    assert len(source.strip().splitlines()) <= 60
    namespace: dict = {}
    exec(compile(source, str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    adapter_class = namespace["AcmeAdapter"]
    adapter = adapter_class({"precision_mode": "fp16", "enable_graph": "true"})
    assert adapter.provider_options() == {"device_id": "0", "precision_mode": "fp16",
                                          "enable_graph": "1"}
    assert adapter.compute_precision() == "float16" and adapter.default_strict
    with pytest.raises(BackendUnavailable, match="has no AcmeExecutionProvider.*/dev/acme"):
        adapter.probe()
    with pytest.raises(InvalidOption, match="valid: allow_fallback, device_id, enable_graph"):
        adapter_class({"bogus": "1"})
