"""`patchpilot chat ...`: chat delivery (Slack, Teams); `chat redrive` posts what waits in the chat DLQ."""

from __future__ import annotations

from typing import Annotated

import typer

from patchpilot.integrations.chat_redrive import redrive
from patchpilot_cli.errors import InputError
from patchpilot_cli.stack import StackOutputs, default_stack_name, resolve_outputs

chat_app = typer.Typer(no_args_is_help=True, help="Chat delivery (Slack and Teams): redrive what was not delivered.")


def _outputs(stack_name: str | None, region: str | None) -> StackOutputs:
    try:
        outputs = resolve_outputs(stack_name or default_stack_name(), region)
    except InputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    missing = [key for key in ("ChatDeadLetterQueueUrl", "NotifierFunctionName") if key not in outputs.values]
    if missing:
        typer.echo(f"error: stack {outputs.stack_name!r} has no output(s) {', '.join(missing)} (deploy it again)")
        raise typer.Exit(2)
    return outputs


@chat_app.command("redrive")
def redrive_command(
    stack_name: Annotated[str | None, typer.Option(help="the stack (default: $PATCHPILOT_STACK or patchpilot)")] = None,
    region: Annotated[str | None, typer.Option(help="the AWS region (default: your AWS configuration's)")] = None,
) -> None:
    """Post again every chat message that is waiting in the chat dead-letter queue (after an outage)."""
    outputs = _outputs(stack_name, region)
    report = redrive(
        outputs.client("sqs"),
        outputs.client("lambda"),
        outputs.values["ChatDeadLetterQueueUrl"],
        outputs.values["NotifierFunctionName"],
    )
    typer.echo(f"redelivered {report.redelivered} message(s)")
    for error in report.still_failing:
        typer.echo(f"  still failing (kept): {error}")
    for reason in report.unrenderable:
        typer.echo(f"  cannot be rendered (kept): {reason}")
    if report.still_failing:
        raise typer.Exit(1)
