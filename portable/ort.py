"""Deprecated import path: use `portable.kit.ort`; kept so existing vendor adapters work."""

import warnings
from typing import Any

from portable.kit import ort as _moved

warnings.warn("portable.ort moved to portable.kit.ort; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
