"""The scheduled full compliance refresh: re-read the fleet, replace the statuses, publish the metrics."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict

from patchpilot.handlers import wiring
from patchpilot.integrations.compliance_metrics import emit_compliance
from patchpilot.logic.compliance import production_rate
from patchpilot.logic.compliance_collection import refresh
from patchpilot.observability import logger, metrics, tracer


class RefreshRequest(BaseModel):
    """The schedule's payload (its content does not matter)."""

    model_config = ConfigDict(extra="allow")


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=RefreshRequest)
def handler(event: RefreshRequest, context: LambdaContext) -> dict[str, Any]:
    settings, store = wiring.compliance_settings(), wiring.compliance_store()
    outcome = refresh(wiring.fleet_source(), store, wiring.alert_publisher(), settings.rules, datetime.now(UTC))
    if outcome.summary is not None:
        emit_compliance(outcome.summary, settings.rules, production_rate(store.nodes(), settings.rules))
    logger.info("compliance refresh", extra=outcome.model_dump(mode="json", exclude={"summary"}))
    return outcome.model_dump(mode="json", exclude={"summary"})
