"""Park the rollout before a production stage (a `.waitForTaskToken` task) until on-call answers by approval id."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.approval import request_approval
from patchpilot.models.approval import ApprovalRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=ApprovalRequest)
def handler(event: ApprovalRequest, context: LambdaContext) -> dict[str, Any]:
    requested = request_approval(
        event,
        wiring.approval_store(),
        wiring.execution_callbacks(),
        wiring.alert_publisher(),
        datetime.now(UTC),
    )
    metrics.add_metric(
        name="ApprovalDecisionsRedelivered" if requested.decision_redelivered else "ApprovalsRequested",
        unit=MetricUnit.Count,
        value=1,
    )
    logger.info("approval requested", extra=requested.model_dump(mode="json"))
    return requested.model_dump(mode="json")
