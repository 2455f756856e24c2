"""Start a rollout (monthly schedule, CLI, chat) under an idempotent execution name."""

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from patchpilot.handlers import wiring
from patchpilot.logic.cycle import start_rollout
from patchpilot.models.cycle import StartRolloutRequest
from patchpilot.models.settings import StarterSettings
from patchpilot.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=StartRolloutRequest)
def handler(event: StartRolloutRequest, context: LambdaContext) -> dict[str, Any]:
    ledger = wiring.run_ledger() if event.resume else None
    defaults = StarterSettings.from_env().default_wait_limits
    started = start_rollout(event, wiring.rollout_starter(), datetime.now(UTC), ledger, defaults)
    metrics.add_metric(
        name="RolloutsStarted" if started.started else "RolloutStartsDeduplicated", unit=MetricUnit.Count, value=1
    )
    logger.info("rollout start requested", extra=started.model_dump())
    return started.model_dump(mode="json")
