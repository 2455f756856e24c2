"""Recover install results whose status events were lost (run when the install wait times out)."""

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.install_tracking import reconcile_install
from patchpilot.models.state import ReconcileRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=ReconcileRequest)
def handler(event: ReconcileRequest, context: LambdaContext) -> dict[str, Any]:
    outcome = reconcile_install(event, wiring.install_tracker(), wiring.command_directory(), time.time())
    metrics.add_metric(name="ResultsRecoveredByReconciliation", unit=MetricUnit.Count, value=outcome.recovered_results)
    logger.info("install reconciled", extra=outcome.model_dump())
    return outcome.model_dump(mode="json")
