"""One module per CLI command; each exposes `command`. Shared bits for them live here."""

from __future__ import annotations

import click


class CliError(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def stderr(message: str) -> None:
    click.echo(message, err=True)


