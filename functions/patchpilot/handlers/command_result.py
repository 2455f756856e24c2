"""Record SSM command invocation status changes (EventBridge -> SQS, in batches) and resume the rollout.

The SQS event source mapping reports partial batch failures (`ReportBatchItemFailures`): a malformed event and the
events of a command whose recording failed (a transient AWS error, a conflict) are returned as failed items, SQS
redelivers them after the visibility timeout, and after `maxReceiveCount` receives moves them to the dead-letter
queue. Recording is idempotent, so a redelivered event has no second effect.
"""

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import SqsModel, SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from patchpilot.handlers import wiring
from patchpilot.logic.install_tracking import TrackingPorts, group_by_command, record_command_results
from patchpilot.models.events import CommandInvocationDetail, CommandInvocationEvent
from patchpilot.observability import logger, metrics, tracer


def _parse(record: SqsRecordModel) -> CommandInvocationDetail | None:
    if not isinstance(record.body, str):  # an SQS body is a string; Powertools' model also admits a model here
        logger.warning("rejected a command status event whose body is not text", extra={"message_id": record.messageId})
        return None
    try:
        return CommandInvocationEvent.model_validate_json(record.body).detail
    except ValidationError as error:
        logger.warning(
            "rejected a malformed command status event (kept for the dead-letter queue)",
            extra={"message_id": record.messageId, "errors": error.errors(include_input=False, include_url=False)},
        )
        return None


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=SqsModel)
def handler(event: SqsModel, context: LambdaContext) -> dict[str, Any]:
    failed: list[str] = []
    details: list[CommandInvocationDetail] = []
    message_ids: dict[int, str] = {}
    for record in event.Records:
        detail = _parse(record)
        if detail is None:
            failed.append(record.messageId)
            continue
        message_ids[id(detail)] = record.messageId
        details.append(detail)
    ports = TrackingPorts(wiring.install_tracker(), wiring.command_directory(), wiring.execution_callbacks())
    for command_id, events in group_by_command(details).items():
        try:
            handled = record_command_results(command_id, events, ports, time.time())
        except Exception:
            logger.exception(
                "recording failed: the command's events go back to the queue", extra={"command_id": command_id}
            )
            failed.extend(message_ids[id(detail)] for detail in events)
            continue
        for name, value in (
            ("Recorded", handled.recorded),
            ("Duplicates", handled.duplicates),
            ("Progress", handled.progress),
        ):
            metrics.add_metric(name=f"InvocationEvents{name}", unit=MetricUnit.Count, value=value)
        if handled.ignored_foreign:
            logger.info("ignoring a command PatchPilot did not start", extra={"command_id": command_id})
    metrics.add_metric(name="InvocationEventsRejected", unit=MetricUnit.Count, value=len(failed))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
