"""The compliance report: at the end of a cycle (its summary goes into the cycle-finished alert) and on demand."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.integrations.compliance_metrics import emit_compliance
from patchpilot.logic.compliance import production_rate
from patchpilot.logic.reports import build_compliance_report, cycle_compliance
from patchpilot.models.report import CycleReportRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=CycleReportRequest)
def handler(event: CycleReportRequest, context: LambdaContext) -> dict[str, Any]:
    rules = wiring.compliance_settings().rules
    report, location = build_compliance_report(
        wiring.fleet_source(),
        wiring.compliance_store(),
        wiring.report_store(),
        wiring.exclusion_ledger() if event.run_id else None,
        rules,
        datetime.now(UTC),
        run_id=event.run_id,
        run_started_at=event.run_started_at,
        on_demand=event.action == "on_demand",
        stopped_by=event.stopped_by,
    )
    emit_compliance(report.summary, rules, production_rate(report.nodes, rules))
    summary = report.cycle or cycle_compliance(report.summary, None, None)
    result = summary.model_copy(update={"report_uri": location.html})
    logger.info("compliance report", extra=result.model_dump(mode="json"))
    return result.model_dump(mode="json")
