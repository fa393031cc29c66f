"""Vendors import `portable.ort.OrtAdapter` (contract 1.0 docs): the old paths still work,
say where the kit moved, and hand out the very same classes."""

import importlib
import sys

import pytest

from portable.kit import ort, probing, stub


@pytest.mark.parametrize("old, new, name", [
    ("portable.ort", ort, "OrtAdapter"),
    ("portable.probing", probing, "VendorRuntime"),
    ("portable.stub", stub, "VendorStubAdapter"),
])
def test_old_import_paths_warn_and_re_export(old, new, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"moved to {new.__name__}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(new, name)
