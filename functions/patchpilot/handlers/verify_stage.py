"""Verify a stage step's health from every signal (commands, reachability, patch states, alarms)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.health import verify_stage_health
from patchpilot.models.rollout import VerifyStageRequest
from patchpilot.models.settings import PlanSettings
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=VerifyStageRequest)
def handler(event: VerifyStageRequest, context: LambdaContext) -> dict[str, Any]:
    verdict = verify_stage_health(
        event,
        wiring.install_tracker(),
        wiring.command_directory(),
        wiring.alarm_monitor(),
        wiring.patch_compliance(),
        PlanSettings.from_env().patch_group_tag_key,
    )
    metrics.add_metric(name="UnhealthyInstances", unit=MetricUnit.Count, value=verdict.unhealthy)
    logger.info("stage verified", extra={"stage": verdict.stage_name, "healthy": verdict.healthy, **verdict.reasons})
    return verdict.model_dump(mode="json")
