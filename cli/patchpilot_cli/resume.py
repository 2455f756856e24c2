"""`patchpilot resume`: continue a FAILED cycle from where it stopped, idempotently.

The StartRolloutFunction does the work (so chat and the CLI resume the same way): it finds the run's latest attempt
and, when that attempt FAILED, TIMED_OUT or was ABORTED, starts the next one (`cycle-2026-12-r2`) with the same run
id and settings, skipping the stages any attempt recorded as passed. Resuming twice starts one attempt.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from patchpilot_cli import operator
from patchpilot_cli.errors import InputError
from patchpilot_cli.stack import default_stack_name, resolve_outputs


def describe_resume(answer: dict[str, Any]) -> list[str]:
    """What the operator is told about a resume request's answer."""
    name, run = answer["execution_name"], answer["run_id"]
    if answer.get("started"):
        skipped = answer.get("skipped_stages") or []
        lines = [f"resumed run {run}: started execution {name} after {answer.get('resumed_from')}"]
        lines.append(f"  skipping stages that passed: {', '.join(skipped)}" if skipped else "  no stage had passed yet")
    elif answer.get("status") in ("RUNNING", "SUCCEEDED"):
        lines = [f"nothing to resume: execution {name} (run {run}) is {answer['status']}"]
    else:
        lines = [f"resume of run {run} already started: execution {name}"]
    return [*lines, f"  {answer['execution_arn']}"]


def resume(
    cycle: Annotated[str | None, typer.Option(help="YYYY-MM (default: this month)")] = None,
    manual: Annotated[
        bool, typer.Option("--manual", help="resume the manual run (patchpilot start), not the schedule's")
    ] = False,
    stack_name: Annotated[str | None, typer.Option("--stack-name", help="the deployed stack")] = None,
    region: Annotated[str | None, typer.Option("--region", help="AWS region of the stack")] = None,
) -> None:
    """Continue a FAILED cycle from the stage where it stopped (stages that passed are not patched again)."""
    try:
        request = operator.build_start_request(mode="manual" if manual else "scheduled", cycle=cycle, resume=True)
        outputs = resolve_outputs(stack_name or default_stack_name(), region)
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        answer = operator.start(outputs, request)
    except operator.HandlerFailed as error:
        typer.echo(f"error: {error.function} refused the resume: " + "; ".join(error.lines), err=True)
        raise typer.Exit(1) from None
    for line in describe_resume(answer):
        typer.echo(line)
