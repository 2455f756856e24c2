"""Snapshot a stage's instances before its install (pre-patch snapshots, for `patchpilot rollback`)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.snapshots import snapshot_stage
from patchpilot.models.settings import PlanSettings
from patchpilot.models.snapshot_step import StageSnapshotsRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=StageSnapshotsRequest)
def handler(event: StageSnapshotsRequest, context: LambdaContext) -> dict[str, Any]:
    result = snapshot_stage(
        event,
        wiring.command_directory(),
        wiring.volume_snapshots(),
        wiring.snapshot_ledger(),
        wiring.clock(),
        PlanSettings.from_env().patch_group_tag_key,
    )
    metrics.add_metric(name="InstancesSnapshotted", unit=MetricUnit.Count, value=result.taken)
    metrics.add_metric(name="SnapshotFailures", unit=MetricUnit.Count, value=result.failed)
    logger.info("stage snapshots", extra={"stage": event.stage.name, **result.model_dump(exclude={"failures"})})
    return result.model_dump(mode="json")
