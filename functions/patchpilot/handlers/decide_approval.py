"""Approve or reject a waiting production stage by approval id (the small API the CLI and chat buttons call)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.approval import decide_approval
from patchpilot.models.approval import DecideApprovalRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=DecideApprovalRequest)
def handler(event: DecideApprovalRequest, context: LambdaContext) -> dict[str, Any]:
    decided = decide_approval(
        event,
        wiring.approval_store(),
        wiring.execution_callbacks(),
        wiring.alert_publisher(),
        datetime.now(UTC),
    )
    if not decided.recorded_earlier:
        metrics.add_metric(
            name="ApprovalsGranted" if decided.status == "approved" else "ApprovalsRejected",
            unit=MetricUnit.Count,
            value=1,
        )
    logger.info("approval decided", extra=decided.model_dump(mode="json"))
    return decided.model_dump(mode="json")
