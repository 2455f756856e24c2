"""Record an SSM command invocation status change (EventBridge) and resume the rollout when a stage's install ends."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.install_tracking import record_invocation_result
from patchpilot.models.events import CommandInvocationEvent
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=CommandInvocationEvent)
def handler(event: CommandInvocationEvent, context: LambdaContext) -> dict[str, Any]:
    handled = record_invocation_result(
        event.detail, wiring.install_tracker(), wiring.command_directory(), wiring.execution_callbacks()
    )
    if handled.action == "ignored_foreign_command":
        logger.info("ignoring a command PatchPilot did not start", extra={"command_id": handled.command_id})
    metrics.add_metric(name=f"InvocationEvents_{handled.action}", unit=MetricUnit.Count, value=1)
    return handled.model_dump(mode="json")
