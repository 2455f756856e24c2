"""Write the stage completion report (HTML, CSV, JSON to the artifacts bucket) after a stage passed or failed."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.integrations.compliance_metrics import emit_stage
from patchpilot.logic.compliance_collection import update_nodes
from patchpilot.logic.reports import build_failed_stage_report, build_stage_report, store_stage_report
from patchpilot.models.report import FailedStageReportRequest, StageReportRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=StageReportRequest | FailedStageReportRequest)
def handler(event: StageReportRequest | FailedStageReportRequest, context: LambdaContext) -> dict[str, Any]:
    ports = (
        wiring.install_tracker(),
        wiring.patch_inventory(),
        wiring.exclusion_ledger(),
        wiring.fleet_source(),
        wiring.snapshot_ledger(),
    )
    if isinstance(event, FailedStageReportRequest):
        report = build_failed_stage_report(event, *ports)
    else:
        report = build_stage_report(event, *ports)
    location = store_stage_report(report, wiring.report_store())
    updated = update_nodes(
        [node.node_id for node in report.nodes],
        wiring.fleet_source(),
        wiring.compliance_store(),
        wiring.compliance_settings().rules,
        datetime.now(UTC),
    )
    emit_stage(report)
    logger.info(
        "stage report",
        extra={
            "stage": report.stage_name,
            "status": report.status,
            "nodes_updated": len(updated),
            **location.model_dump(),
        },
    )
    return location.model_dump()
