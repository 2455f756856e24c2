"""Plan a stage step: the install, scan and health commands the state machine sends."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.stage_plan import plan_stage_step
from patchpilot.models.rollout import StageStepRequest
from patchpilot.models.settings import HealthCheckSettings, PlanSettings
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=StageStepRequest)
def handler(event: StageStepRequest, context: LambdaContext) -> dict[str, Any]:
    planned = plan_stage_step(
        event,
        wiring.command_directory(),
        wiring.patch_sets(),
        PlanSettings.from_env().patch_group_tag_key,
        wiring.clock(),
        wiring.change_calendar(),
        wiring.canary_tags(),
        health_document=HealthCheckSettings.from_env().health_check_document,
    )
    metrics.add_metric(name="InstancesTargeted", unit=MetricUnit.Count, value=planned.targeted_instances)
    logger.info(
        "stage step planned",
        extra={"stage": event.stage.name, "phase_set": event.phase_set, **planned.start.model_dump(mode="json")},
    )
    return planned.model_dump(mode="json")
