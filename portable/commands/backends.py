"""`portable backends`: what can run here, and why not."""

from __future__ import annotations

import json
from typing import Any

import click

from portable import registry


def describe(name: str) -> dict[str, Any]:
    """One adapter in full: status, aliases, install hint, options and capabilities."""
    from portable.probe_isolated import is_third_party, probe

    cls = registry.load_adapter_class(name)
    report = probe(cls.name)  # a vendor plugin probes in a child process
    row = report.status
    options = {key: {"default": None if spec.default is None else str(spec.default),
                     "choices": list(spec.choices) if spec.choices else None, "help": spec.help}
               for key, spec in sorted(cls.option_spec.items())}
    capabilities: dict[str, Any] = {"error": "not asked: a vendor plugin runs in isolation"}
    if not is_third_party(cls.name):
        try:
            caps = cls().capabilities()
            capabilities = {
                "dtypes": list(caps.dtypes), "dynamic_shapes": caps.dynamic_shapes,
                "device_resident_io": caps.device_resident_io,
                "supported_ops": None if caps.supported_ops is None else len(caps.supported_ops)}
        except Exception as exc:  # capabilities() must not break the listing
            capabilities = {"error": f"{type(exc).__name__}: {exc}"}
    return {**row.to_dict(), "aliases": list(cls.aliases), "install_hint": cls.install_hint,
            "packages": list(cls.packages), "api_version": list(cls.api_version),
            "options": options, "capabilities": capabilities}


def _print_description(info: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from portable.tables import print_table

    def say(text: str) -> None:
        click.echo(text)

    state = "available" if info["available"] else f"not available: {info['reason']}"
    say(f"{info['name']} ({', '.join(info['aliases']) or 'no aliases'}): {state}")
    if info["install_hint"]:
        say(f"install: {info['install_hint']}")
    caps = info["capabilities"]
    if "error" in caps:
        say(f"capabilities: unknown ({caps['error']})")
    else:
        ops = "unknown" if caps["supported_ops"] is None else f"{caps['supported_ops']} op types"
        say(f"capabilities: dtypes {', '.join(caps['dtypes']) or 'none'}; dynamic shapes "
            f"{'yes' if caps['dynamic_shapes'] else 'no'}; device-resident IO "
            f"{'yes' if caps['device_resident_io'] else 'no'}; ops {ops}")
    table = Table(title="options (-o KEY=VALUE)", title_justify="left")
    for header in ("option", "default", "choices", "help"):
        table.add_column(header)
    for key, option in info["options"].items():
        table.add_row(*(escape(text) for text in (key, option["default"] or "-",
                                                   ", ".join(option["choices"] or ()) or "-",
                                                   option["help"])))
    print_table(table)


@click.command("backends")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include hidden test backends (null).")
def command(name: str | None, as_json: bool, show_all: bool) -> None:
    """List every backend, whether it can run here, on what device, or why not.

    With a NAME, describe that backend: its aliases, what to install, its options
    with their defaults and help, and its capabilities.

    \b
    Examples:
      portable backends
      portable backends openvino
      PORTABLE_BACKENDS=ort-cpu,torch portable backends --json
    """
    if name is not None:
        info = describe(name)
        if as_json:
            click.echo(json.dumps(info, indent=1))
        else:
            _print_description(info)
        return
    from portable.probe_isolated import survey

    rows = survey(include_hidden=show_all)
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=1))
        return
    from portable.tables import backends_table, print_table

    print_table(backends_table(rows))


