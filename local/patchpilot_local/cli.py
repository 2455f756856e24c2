"""The `patchpilot` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from patchpilot_local.invoke import (
    InputError,
    InvokeReport,
    error_lines,
    function_names,
    invoke_event,
    is_eventbridge_event,
    load_event,
    resolve_function,
)
from patchpilot_local.scenarios import SCENARIOS
from patchpilot_local.simulate import SimulationOptions, run_simulation

app = typer.Typer(add_completion=False, no_args_is_help=True, help="PatchPilot: staged, self-healing OS patching.")
console = Console(highlight=False)


@app.callback()
def _root() -> None:
    """PatchPilot command line."""


@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help=f"one of: {', '.join(SCENARIOS)}")] = "healthy",
    instances: Annotated[int, typer.Option(help="size of the simulated fleet (all groups)")] = 40,
    seed: Annotated[int, typer.Option(help="seed of the fleet and its behaviour")] = 7,
    out: Annotated[Path, typer.Option(help="where summary.json and lambda.log go")] = Path("out/demo"),
    time_scale: Annotated[
        float, typer.Option(help="simulated seconds per real second for fleet activity (bakes: a day per second)")
    ] = 3_600.0,
    as_json: Annotated[bool, typer.Option("--json", help="print summary.json instead of progress")] = False,
) -> None:
    """Run one patch cycle locally: moto, the real state machine and handlers, a simulated fleet."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    if instances <= 0:
        raise typer.BadParameter("--instances must be at least 1")
    if time_scale <= 0:
        raise typer.BadParameter("--time-scale must be positive")
    options = SimulationOptions(instances=instances, scenario=scenario, seed=seed, time_scale=time_scale, out_dir=out)
    say = (lambda _: None) if as_json else (lambda line: console.print(line, markup=False, soft_wrap=True))
    summary = run_simulation(options, say)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, out)
    raise typer.Exit(0 if summary["outcome_as_expected"] else 1)


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    console.print()
    for stage in summary["stages"]:
        frozen = stage.get("frozen_patch_count")
        console.print(
            f"stage {stage['name']:8} {stage['status']:9} {stage['succeeded']}/{stage['targeted']} instances healthy"
            + (f", froze {frozen} patches for production" if frozen is not None else ""),
            markup=False,
        )
    for patch in summary["excluded_patches"]:
        console.print(
            f"excluded {patch['patch_id']} at {patch['stage']}: on {patch['failing_with']}/{patch['failing_total']} "
            f"unhealthy and {patch['healthy_with']}/{patch['healthy_total']} healthy instances",
            markup=False,
        )
    error = f" ({summary['error']})" if summary["error"] else ""
    console.print(f"execution: {summary['status']}{error}", markup=False)
    console.print(
        f"state transitions {summary['state_transitions']}, largest state payload "
        f"{summary['max_state_payload_bytes']} bytes, alerts {summary['notifications']}, "
        f"lost events {summary['lost_events']}, dead letters {summary['dead_letters']}",
        markup=False,
    )
    verdict = "as the scenario expects" if summary["outcome_as_expected"] else "NOT as the scenario expects"
    console.print(f"scenario {summary['scenario']}: ended {verdict}; summary in {out / 'summary.json'}", markup=False)


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit code 2, no traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def invoke(
    event: Annotated[Path, typer.Option("--event", "-e", help="JSON file: an EventBridge event or a direct payload")],
    function: Annotated[
        str | None, typer.Option("--function", "-f", help="invoke this function directly (template logical id)")
    ] = None,
) -> None:
    """Run one event through the template's rules (or one payload through --function) in the local runtime."""
    try:
        payload = load_event(event)
        target = resolve_function(function, function_names()) if function is not None else None
    except InputError as error:
        fail(str(error))
    report = invoke_event(payload, target)
    if not report.outcomes:
        _print_unmatched(payload)
        raise typer.Exit(0)
    _print_report(report)
    raise typer.Exit(2 if report.failed else 0)


def _print_unmatched(payload: dict[str, Any]) -> None:
    if is_eventbridge_event(payload):
        typer.echo(
            f"no rule in template.yaml matches this event (source {payload['source']!r}, detail-type "
            f"{payload['detail-type']!r}): nothing was invoked"
        )
    else:
        typer.echo(
            "no rule matches: this is not an EventBridge event (no source/detail-type); to send it to a function "
            f"directly pass --function, one of: {', '.join(function_names())}"
        )


def _print_report(report: InvokeReport) -> None:
    for outcome in report.outcomes:
        via = f" (rule {outcome.rule})" if outcome.rule else ""
        if outcome.result.failed:
            typer.echo(f"{outcome.function}{via}: rejected the event")
            for line in error_lines(outcome.result.error_type, outcome.result.error_message):
                typer.echo(f"  {line}")
        else:
            typer.echo(f"{outcome.function}{via}: ok")
            typer.echo(json.dumps(outcome.result.payload, indent=2))
    for arn in report.stopped_executions:
        typer.echo(f"stopped execution {arn} (the local runtime ends here; `patchpilot simulate` runs a whole cycle)")


def main() -> None:
    app()
