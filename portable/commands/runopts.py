"""Options and plumbing shared by the commands that run work items (`bench`, `check`).

They turn the command line into a `portable.run.RunRequest` and a launcher; the
pipeline itself lives in the core (`portable.run`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import click

from portable import errors, registry, scenarios
from portable.commands import BackendOption, CliError, split_backend_options, stderr
from portable.commands.inputopts import input_options, input_spec, preflight, save_run_inputs
from portable.commands.params import FiniteFloat, Seed, Threads
from portable.launchers import InlineLauncher, Launcher, ProcessLauncher
from portable.modelsource import ModelSource
from portable.records import CellResult
from portable.run import DEFAULT_TIMEOUT_S, BackendSpec, RunRequest, check
from portable.timing import BenchSettings


def run_options(default_backends: tuple[str, ...] = ()) -> Callable[..., Any]:
    """-b, -o, --threads, --seed, --strict, --timeout, --isolate and the input options."""
    decorators = [
        click.option("-b", "--backend", "backend_names", multiple=True, cls=BackendOption,
                     default=default_backends or None, required=not default_backends,
                     show_default=bool(default_backends),
                     help="Backend to run (repeatable)" + (
                         "." if default_backends else "; the first one is the reference.")),
        click.option("-o", "--option", "option_items", multiple=True,
                     metavar="[BACKEND:]KEY=VALUE",
                     help="Backend option, e.g. -o ort-cpu:graph_optimization_level=basic. "
                          "Repeatable; `portable backends NAME` lists a backend's options."),
        click.option("--threads", type=Threads(), default=None,
                     help="Intra-op threads for every backend (default: the runtime's choice)."),
        click.option("--seed", type=Seed(), default=0, show_default=True,
                     help="Seed for generated inputs."),
        click.option("--strict", is_flag=True,
                     help="Fail (exit 1) when any node runs on a device other than the one "
                          "asked for."),
        click.option("--timeout", type=FiniteFloat(min=0, min_open=True), default=None,
                     help=f"Seconds a backend may take before it is killed "
                          f"(default {DEFAULT_TIMEOUT_S:g}; needs isolation)."),
        click.option("--isolate/--no-isolate", default=True, show_default=True,
                     help="Run each backend in its own process (a crash or hang costs one row). "
                          "--no-isolate runs in this process, without a timeout."),
        click.option("--cluster", metavar="ADDRESS", default=None,
                     help="Run each cell as a task on a Ray cluster (auto, HOST:PORT of its "
                          "head, or ray://HOST:PORT), on a node with the backend's accelerator. "
                          "Needs pip install 'portable[ray]'."),
        click.option("--cluster-resources", "cluster_resources", multiple=True,
                     type=ResourceOverride(), metavar="BACKEND=JSON",
                     help="With --cluster: the Ray resources a backend's tasks ask for besides "
                          "one CPU, e.g. cann='{\"NPU\": 1}'. Repeatable."),
    ]

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            func = decorator(func)
        return input_options(func)

    return apply


class ResourceOverride(click.ParamType):
    """`--cluster-resources BACKEND=JSON`: a backend's Ray resources, e.g. null={"NPU": 1}."""

    name = "BACKEND=JSON"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, dict[str, float]]:
        if isinstance(value, tuple):
            return value
        backend, sep, text = str(value).partition("=")
        try:
            request = json.loads(text) if sep and backend.strip() else None
        except json.JSONDecodeError as exc:
            self.fail(f"{value!r}: the resources are not JSON ({exc})", param, ctx)
        valid = isinstance(request, dict) and all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            and v >= 0 for k, v in request.items())
        if not valid:
            self.fail(f"{value!r}: expected BACKEND={{\"RESOURCE\": AMOUNT, ...}} with amounts "
                      ">= 0", param, ctx)
        return registry.canonical_name(backend.strip()), {k: float(v) for k, v in request.items()}


def launcher(isolate: bool, timeout: float | None, cluster: str | None = None,
             cluster_resources: Sequence[tuple[str, dict[str, float]]] = (),
             on_progress: Callable[[str], None] | None = None) -> Launcher:
    """A child process per item with a timeout, this process (which refuses a timeout), or,
    with `cluster`, a Ray task per item (each in a child process on its node)."""
    if cluster is None:
        if cluster_resources:
            raise click.UsageError("--cluster-resources needs --cluster")
        return ProcessLauncher(timeout or DEFAULT_TIMEOUT_S) if isolate else InlineLauncher(timeout)
    if not isolate:
        raise click.UsageError("--cluster runs every cell in its own process on its node; "
                               "drop --no-isolate")
    try:
        from portable.ray_launcher import RayLauncher
    except ImportError:
        raise CliError("--cluster needs Ray: pip install 'portable[ray]'",
                       errors.EXIT_UNAVAILABLE) from None
    return RayLauncher(cluster, timeout or DEFAULT_TIMEOUT_S, dict(cluster_resources),
                       on_progress)


def launcher_for(params: dict[str, Any], on_progress: Callable[[str], None] | None
                     ) -> Launcher:
    """`launcher` for the run options in `params` (what `bench` and `check` call)."""
    backends = {registry.canonical_name(name) for name in params["backend_names"]}
    for name, _ in params["cluster_resources"]:
        if name not in backends:
            raise click.BadParameter(f"{name} is not a --backend of this run",
                                     param_hint="--cluster-resources")
    return launcher(params["isolate"], params["timeout"], params["cluster"],
                    params["cluster_resources"], on_progress)


def backend_specs(names: Sequence[str], option_items: Sequence[str]) -> tuple[BackendSpec, ...]:
    canonical = list(dict.fromkeys(registry.canonical_name(b) for b in names))
    per_backend = split_backend_options(option_items, canonical)
    return tuple(BackendSpec(name, per_backend[name]) for name in canonical)


def build_request(command: str, model: str, params: dict[str, Any],
                  resolve_model: Callable[[], ModelSource], settings: BenchSettings,
                  **fields: Any) -> RunRequest:
    """The request for the run and input options in `params`, checked before anything runs.

    Backends, options and the scenario are checked before the model is resolved (a
    preset may need exporting); the inputs are resolved against the model (exit 2).
    """
    specs = backend_specs(params["backend_names"], params["option_items"])
    check(specs, fields.get("scenario", "latency"), settings)
    source = resolve_model()
    given = input_spec(params["shapes"], params["dims"], params["values"], params["npz"])
    request = RunRequest(source, specs, settings=settings, inputs=given, **fields)
    scenario = scenarios.get(request.scenario)
    if not scenario.signature_inputs:  # the scenario makes its own feeds: it checks them
        scenario.check_model(source, settings, given)
    for size in request.batch_sizes if scenario.signature_inputs else ():
        preflight(command, model, params["backend_names"], source.path, size, settings.seq,
                  given)
    save_run_inputs(params["save_inputs"], source, request.batch_sizes, settings.seq,
                    settings.seed, given)
    return request


def report_result(result: CellResult) -> None:
    """One line on stderr for a result that did not run, and its warnings."""
    if not result.ok and result.error is not None:
        stderr(f"  {result.backend}: {result.status}: {result.error.message}")
    for warning in result.warnings:
        stderr(f"  {result.backend} batch {result.batch}: {warning}")


def settings_from(params: dict[str, Any], **fields: Any) -> BenchSettings:
    return BenchSettings(threads=params["threads"], strict=params["strict"],
                         seed=params["seed"], **fields)

