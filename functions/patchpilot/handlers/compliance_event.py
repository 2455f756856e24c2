"""Update one node's compliance from an SSM "Configuration Compliance State Change" event (Patch type)."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.compliance_collection import apply_compliance_event
from patchpilot.models.compliance import ComplianceStateChangeEvent
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=ComplianceStateChangeEvent)
def handler(event: ComplianceStateChangeEvent, context: LambdaContext) -> dict[str, Any]:
    outcome = apply_compliance_event(
        event, wiring.fleet_source(), wiring.compliance_store(), wiring.compliance_settings().rules
    )
    metrics.add_metric(name=f"ComplianceEvents{outcome.outcome.title()}", unit=MetricUnit.Count, value=1)
    logger.info("compliance event", extra={**outcome.model_dump(mode="json"), "received_at": datetime.now(UTC)})
    return outcome.model_dump(mode="json")
