"""Deprecated import path: use `portable.kit.stub`; kept so existing vendor adapters work."""

import warnings
from typing import Any

from portable.kit import stub as _moved

warnings.warn("portable.stub moved to portable.kit.stub; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
