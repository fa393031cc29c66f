"""Click parameter types that refuse what a run cannot use, before anything is measured."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import click

THREADS_PER_CORE = 4
"""`--threads` above this many per core only oversubscribes the machine until the timeout."""

MAX_SEED = 2**32 - 1
"""Seeds reach numpy and MLPerf LoadGen (an unsigned 64-bit field); 32 bits fit everywhere."""


class FiniteFloat(click.FloatRange):
    """A float in a range that is also finite: ``nan`` and ``inf`` are usage errors."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Threads(click.IntRange):
    """Intra-op threads: at least 1, at most `THREADS_PER_CORE` × the machine's cores."""

    def __init__(self) -> None:
        super().__init__(min=1, max=THREADS_PER_CORE * (os.cpu_count() or 1))


class Seed(click.IntRange):
    """A non-negative seed that every consumer (numpy, LoadGen) accepts."""

    def __init__(self) -> None:
        super().__init__(min=0, max=MAX_SEED)


class SafePath(click.Path):
    """A path as a `pathlib.Path`; a NUL byte (which no file name can hold) is a usage error."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Path:
        if "\0" in str(value):
            self.fail(f"{str(value)!r} contains a NUL byte", param, ctx)
        return Path(super().convert(value, param, ctx))
