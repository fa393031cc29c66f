"""What a result document must satisfy beyond its JSON Schema, before a reader trusts it."""

from __future__ import annotations

from typing import Any


def shape_error(document: dict[str, Any]) -> str | None:
    """The first figure whose shape no reader can use, as ``at a/b/c: what``; None if all fit.

    JSON Schema cannot say that the rows of a matrix have one length: the expert
    load of a cell is a layer × expert table and must be rectangular.
    """
    for index, cell in enumerate(document["results"]):
        load = (cell.get("moe") or {}).get("expert_load")
        if load and len({len(row) for row in load}) > 1:
            return f"at results/{index}/moe/expert_load: rows of different lengths"
    return None
