"""Plan a rollout (first task of the state machine): validate the request against the stage catalog."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.logic.rollout_plan import plan_rollout
from patchpilot.models.rollout import RolloutRequest
from patchpilot.models.settings import RolloutSettings
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=RolloutRequest)
def handler(event: RolloutRequest, context: LambdaContext) -> dict[str, Any]:
    plan = plan_rollout(event, RolloutSettings.from_env().stage_catalog, datetime.now(UTC))
    metrics.add_metric(name="RolloutsPlanned", unit=MetricUnit.Count, value=1)
    logger.info("rollout planned", extra={"run_id": plan.run.run_id, "stages": [s.name for s in plan.stages]})
    return plan.model_dump(mode="json")
