"""Record a passed stage; after a test stage, freeze the patch set production will install."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.frozen_set import record_stage_passed
from patchpilot.models.rollout import RecordStageRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=RecordStageRequest)
def handler(event: RecordStageRequest, context: LambdaContext) -> dict[str, Any]:
    outcome = record_stage_passed(
        event, wiring.install_tracker(), wiring.patch_inventory(), wiring.patch_sets(), wiring.exclusion_ledger()
    )
    wiring.run_ledger().record_stage_passed(event.run.run_id, event.stage.name)
    metrics.add_metric(name="StagesPassed", unit=MetricUnit.Count, value=1)
    logger.info("stage passed", extra=outcome.model_dump())
    return outcome.model_dump(mode="json")
