"""Plan a rollout stage (first task of the state machine)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.stage_plan import plan_stage
from patchpilot.models.settings import PlanSettings
from patchpilot.models.state import RolloutRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=RolloutRequest)
def handler(event: RolloutRequest, context: LambdaContext) -> dict[str, Any]:
    planned = plan_stage(event, wiring.command_directory(), PlanSettings.from_env().patch_group_tag_key)
    metrics.add_metric(name="InstancesTargeted", unit=MetricUnit.Count, value=planned.targeted_instances)
    logger.info("stage planned", extra=planned.model_dump())
    return planned.model_dump(mode="json")
