"""Verify a stage's health; an unhealthy stage raises StageHealthCheckFailed, which the state machine catches."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.health import verify_stage_health
from patchpilot.models.state import VerifyStageRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=VerifyStageRequest)
def handler(event: VerifyStageRequest, context: LambdaContext) -> dict[str, Any]:
    verdict = verify_stage_health(event, wiring.install_tracker())
    metrics.add_metric(name="StagesVerifiedHealthy", unit=MetricUnit.Count, value=1)
    logger.info("stage healthy", extra=verdict.model_dump())
    return verdict.model_dump(mode="json")
