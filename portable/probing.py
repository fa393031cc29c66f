"""Deprecated import path: use `portable.kit.probing`; kept so existing vendor adapters work."""

import warnings
from typing import Any

from portable.kit import probing as _moved

warnings.warn("portable.probing moved to portable.kit.probing; import it from there",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str) -> Any:
    return getattr(_moved, name)
