"""Post every alert of the AlertTopic (and the dead-letter alarms) to Slack and Teams (SNS -> Lambda, asynchronous)."""

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import SnsModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.chat_delivery import notify_messages
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=SnsModel)
def handler(event: SnsModel, context: LambdaContext) -> dict[str, Any]:
    report = notify_messages(
        [(record.Sns.MessageId, str(record.Sns.Message), record.model_dump(mode="json")) for record in event.Records],
        wiring.chat_secret(),
        wiring.poster(),
        wiring.chat_ledger(),
        wiring.rejected_inputs(),
        time.sleep,
        lambda: context.get_remaining_time_in_millis() / 1000,
    )
    metrics.add_metric(name="ChatMessagesPosted", unit=MetricUnit.Count, value=report.posted)
    if report.rejected:
        metrics.add_metric(name="ChatAlertsRejected", unit=MetricUnit.Count, value=report.rejected)
    logger.info("chat delivery", extra=report.model_dump(mode="json"))
    report.raise_failures()
    return report.model_dump(mode="json")
