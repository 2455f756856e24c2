"""Register the install wait (a `.waitForTaskToken` task): store the token, resume at once if already complete."""

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.install_tracking import register_install_wait
from patchpilot.models.state import AwaitInstallRequest
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=AwaitInstallRequest)
def handler(event: AwaitInstallRequest, context: LambdaContext) -> dict[str, Any]:
    tally = register_install_wait(
        event, wiring.install_tracker(), wiring.execution_callbacks(), wiring.command_directory(), time.time()
    )
    metrics.add_metric(name="InstallWaitsRegistered", unit=MetricUnit.Count, value=1)
    logger.info("install wait registered", extra=tally.model_dump())
    return tally.model_dump(mode="json")
