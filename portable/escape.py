"""Escaping text that comes from models, plugins and result files before it is shown.

Names, device strings and error messages are untrusted: a device named ``[/x]``
must not be read as rich markup, a model named ``<script>`` must not run in a
report, a backend named ``=HYPERLINK(...)`` must not become a spreadsheet
formula, and an escape sequence must not reach the terminal.
"""

from __future__ import annotations

import html
import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~!#])")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def terminal(value: Any) -> str:
    """`value` as text with control characters (escape sequences included) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def markup(value: Any) -> str:
    """`value` as rich console text: markup brackets escaped, control characters shown."""
    from rich.markup import escape

    return escape(terminal(value))


def markdown(value: Any) -> str:
    """`value` for a Markdown table cell: HTML escaped, Markdown syntax and pipes neutralised."""
    # quote=False: quotes are harmless in a table cell, and their entities (&#x27;) would
    # have their '#' escaped below and show as text
    text = html.escape(terminal(value).replace("\n", " "), quote=False)
    return _MARKDOWN.sub(r"\\\1", text)


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet reads as a formula (OWASP: prefix with a quote)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
